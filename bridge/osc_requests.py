"""What the OSC server accepts: datagram shape, type tags, addresses and arguments.

Everything here reads untrusted bytes and either returns what it found or
raises ``RequestError``, whose message the server sends back as
``/editorbot/error``. Nothing here touches the file system or the job queue
(``bridge.server`` does; ``bridge.paths`` checks paths).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Sequence
from typing import Any

PREFIX = "/editorbot/"
#: Longest options JSON accepted (characters).
MAX_OPTIONS_CHARS = 16384
#: Messages of one bundle that are handled; the rest are refused.
MAX_BUNDLE_MESSAGES = 16
#: OSC address-pattern characters; patterns are refused, not expanded.
_PATTERN_CHARS = set("*?[]{}!,")
#: Deepest bundle nesting accepted (python-osc copies each level while parsing it recursively).
MAX_BUNDLE_DEPTH = 8
#: OSC 1.0/1.1 type tags python-osc decodes (it skips others silently, so they are refused here).
_KNOWN_TAGS = set("ifsbhdtTFNIcrm[]")


class RequestError(Exception):
    """A request the server refuses; the message goes back as ``/editorbot/error``."""


def parse_datagram(data: bytes) -> list[Any]:
    """The OSC messages (``pythonosc.osc_message.OscMessage``) of one non-empty datagram.

    A bundle gives its messages in order, at most ``MAX_BUNDLE_MESSAGES``
    (``check_bundle_size`` refuses the rest after they are handled).

    Raises
    ------
    RequestError
        Not OSC, a bundle too deep or malformed, an empty bundle, or a
        message with unknown or missing type tags.
    """
    from pythonosc.osc_packet import OscPacket, ParseError

    if not bundle_shape_ok(data):
        raise RequestError(f"OSC bundle nested deeper than {MAX_BUNDLE_DEPTH} levels or malformed ({len(data)} bytes)")
    try:
        messages = [m.message for m in OscPacket(data).messages]
    except (ParseError, RecursionError, ValueError, IndexError, TypeError, OverflowError, struct.error):
        raise RequestError(f"not an OSC message or bundle ({len(data)} bytes)") from None
    if not messages:
        raise RequestError("empty OSC bundle")
    for msg in messages[:MAX_BUNDLE_MESSAGES]:
        tags = type_tags(msg.dgram)
        if tags is None or not set(tags) <= _KNOWN_TAGS:
            raise RequestError(f"{msg.address[:80]!r}: unknown or missing OSC type tags")
    return messages


def check_bundle_size(n_messages: int) -> None:
    """Refuse a bundle of more than ``MAX_BUNDLE_MESSAGES`` (after its first ones were handled)."""
    if n_messages > MAX_BUNDLE_MESSAGES:
        raise RequestError(f"bundle of {n_messages} messages: only the first {MAX_BUNDLE_MESSAGES} were handled")


def route_name(address: str, routes: Collection[str]) -> str:
    """The request name of ``/editorbot/NAME`` when ``NAME`` is one of ``routes`` (no address patterns)."""
    shown = address[:80]
    if not address.startswith(PREFIX):
        raise RequestError(f"unknown address {shown!r} (editorbot answers /editorbot/...)")
    name = address[len(PREFIX) :]
    if any(c in _PATTERN_CHARS for c in name):
        raise RequestError(f"address patterns are not accepted: {shown!r}")
    if name not in routes:
        raise RequestError(f"unknown address {shown!r} (known: {', '.join(PREFIX + r for r in routes)})")
    return name


def check_count(name: str, args: list[Any], lo: int, hi: int) -> None:
    """Refuse ``/editorbot/name`` unless it has ``lo`` to ``hi`` arguments."""
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise RequestError(f"/editorbot/{name} takes {want} argument(s), got {len(args)}")


def check_string(name: str, what: str, value: Any, limit: int) -> str:
    """``value`` when it is a string of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise RequestError(f"/editorbot/{name}: {what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise RequestError(f"/editorbot/{name}: {what} is {len(value)} characters (at most {limit})")
    return value


def parse_options(name: str, args: list[Any], allowed: Sequence[str]) -> dict[str, Any]:
    """The options JSON object of ``args[1]`` (``{}`` when absent or empty), only keys in ``allowed``."""
    if len(args) < 2 or args[1] == "":
        return {}
    text = check_string(name, "options", args[1], MAX_OPTIONS_CHARS)
    try:
        options = json.loads(text, parse_constant=lambda c: None)
    except (ValueError, RecursionError):
        raise RequestError(f"/editorbot/{name}: options are not valid JSON") from None
    if not isinstance(options, dict):
        raise RequestError(f"/editorbot/{name}: options must be a JSON object")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(map(str, unknown))[:100]
        raise RequestError(f"/editorbot/{name}: unknown option(s) {listed} (known: {', '.join(allowed)})")
    return options


def type_tags(dgram: bytes) -> str | None:
    """The type tags of an OSC message datagram (without the comma), None if it has none."""
    end = dgram.find(b"\x00")
    if end < 0:
        return None
    start = (end // 4 + 1) * 4
    stop = dgram.find(b"\x00", start)
    if stop < 0 or dgram[start : start + 1] != b",":
        return None
    try:
        return dgram[start + 1 : stop].decode("ascii")
    except UnicodeDecodeError:
        return None


def bundle_shape_ok(data: bytes, max_depth: int = MAX_BUNDLE_DEPTH) -> bool:
    """False for a bundle nested deeper than ``max_depth`` or whose element sizes overrun it.

    Walks element headers by offset (no copies), so a hostile 64 KiB datagram
    of thousands of nested bundles costs nothing to refuse.
    """
    header = b"#bundle\x00"
    if not data.startswith(header):
        return True
    stack = [(0, len(data), 1)]
    while stack:
        start, end, depth = stack.pop()
        if depth > max_depth:
            return False
        pos = start + 16  # "#bundle\0" + 8-byte time tag
        while pos < end:
            if pos + 4 > end:
                return False
            size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            pos += 4
            if size < 0 or pos + size > end:
                return False
            if data.startswith(header, pos):
                stack.append((pos, pos + size, depth + 1))
            pos += size
    return True
