"""bridge.osc_requests: what the server accepts, checked without a socket."""

from __future__ import annotations

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from editorbot.bridge.osc_requests import (
    MAX_BUNDLE_DEPTH,
    RequestError,
    bundle_shape_ok,
    check_bundle_size,
    check_count,
    parse_datagram,
    parse_options,
    route_name,
)


def _message(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def _bundle(*elements: bytes) -> bytes:
    """An OSC bundle (time tag "immediately") of raw element datagrams."""
    return b"#bundle\x00" + (1).to_bytes(8, "big") + b"".join(len(e).to_bytes(4, "big") + e for e in elements)


def _nested(depth: int) -> bytes:
    inner = _message("/editorbot/ping")
    for _ in range(depth):
        inner = _bundle(inner)
    return inner


def test_a_message_and_a_bundle_parse_in_order() -> None:
    assert [m.address for m in parse_datagram(_message("/editorbot/ping", 1, "x"))] == ["/editorbot/ping"]
    both = _bundle(_message("/editorbot/ping"), _message("/editorbot/status"))
    assert [m.address for m in parse_datagram(both)] == ["/editorbot/ping", "/editorbot/status"]


def test_deep_or_broken_bundles_and_unknown_tags_are_refused() -> None:
    assert bundle_shape_ok(_nested(MAX_BUNDLE_DEPTH)) and not bundle_shape_ok(_nested(MAX_BUNDLE_DEPTH + 1))
    with pytest.raises(RequestError, match="nested deeper"):
        parse_datagram(_nested(MAX_BUNDLE_DEPTH + 1))
    truncated = _nested(2)[:-3]
    with pytest.raises(RequestError):
        parse_datagram(truncated)
    with pytest.raises(RequestError, match="not an OSC"):
        parse_datagram(b"hello world\x00")
    odd_tag = _message("/editorbot/ping", 1).replace(b",i", b",X")
    with pytest.raises(RequestError, match="type tags"):
        parse_datagram(odd_tag)
    with pytest.raises(RequestError, match="only the first 16"):
        check_bundle_size(17)
    check_bundle_size(16)


def test_addresses_patterns_and_arguments() -> None:
    routes = {"ping": None, "edit": None}
    assert route_name("/editorbot/edit", routes) == "edit"
    for bad, why in (("/other/edit", "editorbot answers"), ("/editorbot/e*", "patterns"), ("/editorbot/rm", "known")):
        with pytest.raises(RequestError, match=why):
            route_name(bad, routes)
    check_count("edit", ["a"], 1, 2)
    with pytest.raises(RequestError, match="1 to 2 argument"):
        check_count("edit", [], 1, 2)


def test_options_json_is_an_object_of_known_keys() -> None:
    assert parse_options("render", ["p"], ("name",)) == {}
    assert parse_options("render", ["p", ""], ("name",)) == {}
    assert parse_options("render", ["p", '{"name": "x", "n": NaN}'], ("name", "n")) == {"name": "x", "n": None}
    for text, why in (("[1]", "JSON object"), ("{", "not valid JSON"), ('{"rm": 1}', "unknown option"), (3, "string")):
        with pytest.raises(RequestError, match=why):
            parse_options("render", ["p", text], ("name",))
