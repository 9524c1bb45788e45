"""export.request: one edit request, validated once, for the CLI, the server and the spool."""

from __future__ import annotations

import pytest

from editorbot.engine.errors import BadRequest
from editorbot.engine.formats import EXPORT_FORMATS
from editorbot.export.request import MAX_KEEP, EditRequest, parse_exports, parse_keep_range


def test_fields_from_any_front_end_give_one_request() -> None:
    cli = EditRequest.from_fields({"audio": "/a.wav", "target_duration_s": 90, "keep": ["1.5-3", "10-12"], "exports": ["rpp,midi", "tsv"]})
    spool = EditRequest.from_fields({"audio": "/a.wav", "target_duration_s": 90.0, "keep": [[1.5, 3], [10, 12]], "exports": "rpp,midi,tsv"})
    assert cli == spool
    assert cli.keep == ((1.5, 3.0), (10.0, 12.0)) and cli.exports == ("rpp", "midi", "tsv")
    assert EditRequest.from_fields({"audio": "/a.wav", "seed": None}) == EditRequest("/a.wav")


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"target_duration_s": 0}, "target_duration_s"),
        ({"target_duration_s": float("nan")}, "target_duration_s"),
        ({"target_duration_s": True}, "target_duration_s"),
        ({"target_duration_s": "long"}, "target_duration_s"),
        ({"keep": 5}, "keep"),
        ({"keep": ["9-3"]}, "keep"),
        ({"keep": ["-1-2"]}, "keep"),
        ({"keep": [[1, 2, 3]]}, "keep"),
        ({"keep": ["0-1"] * (MAX_KEEP + 1)}, "keep"),
        ({"seed": -1}, "seed"),
        ({"seed": 2.5}, "seed"),
        ({"exports": "rpp,wav"}, "exports"),
        ({"exports": 3}, "exports"),
        ({"model": "/m.onnx", "checkpoint": "/c.pt"}, "checkpoint"),
        ({"model": "dp"}, "model"),
        ({"start_s": 5, "end_s": 5}, "end_s"),
        ({"format": "mp3"}, "format"),
        ({"min_keep": 1.5}, "min_keep"),
        ({"min_keep": "most"}, "min_keep"),
        ({"subtype": "PCM_8"}, "subtype"),
        ({"name": "..//"}, "name"),
        ({"colour": "red"}, "colour"),
        ({"audio": ""}, "audio"),
    ],
)
def test_a_bad_field_is_named(given: dict, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        EditRequest.from_fields({"audio": "/a.wav", **given})
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")


def test_paths_go_through_the_callers_check_but_dp_is_no_path() -> None:
    seen: list[tuple[str, str]] = []

    def check(field: str, value: str) -> str:
        seen.append((field, value))
        if value.startswith("/outside"):
            raise BadRequest(field, "outside the allowed folders")
        return "/real" + value

    req = EditRequest.from_fields({"audio": "/a.wav", "model": "/m.onnx"}, resolve_path=check)
    assert (req.audio, req.model) == ("/real/a.wav", "/real/m.onnx") and seen == [("model", "/m.onnx"), ("audio", "/a.wav")]
    assert EditRequest.from_fields({"audio": "/a.wav", "model": "dp", "target_duration_s": 3}, resolve_path=check).model == "dp"
    with pytest.raises(BadRequest, match="checkpoint: outside"):
        EditRequest.from_fields({"audio": "/a.wav", "checkpoint": "/outside/c.pt"}, resolve_path=check)


def test_keep_and_exports_parsers() -> None:
    assert parse_keep_range("1.5-3") == (1.5, 3.0) and parse_keep_range([0, 2]) == (0.0, 2.0)
    for bad in ("5", "a-b", "9-3", "-1-2", [2, 1], [0, float("inf")]):
        with pytest.raises(BadRequest, match="keep"):
            parse_keep_range(bad)
    assert parse_exports(None) == () and parse_exports(["tsv", "tsv,rpp"]) == ("tsv", "rpp")
    assert parse_exports(",".join(EXPORT_FORMATS)) == EXPORT_FORMATS
