"""engine.atomic: temp file + rename, clean-up on failure, umask permissions,
and the destination checks (protected inputs through links, folders)."""

from __future__ import annotations

import json
import os

import pytest

from editorbot.engine import atomic
from editorbot.engine.atomic import (
    atomic_path,
    check_destination,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from editorbot.engine.errors import BadInput


def test_atomic_path_replaces_the_file_in_one_rename(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old")
    with atomic_path(dest) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and os.path.exists(tmp)
        assert dest.read_text() == "old"  # untouched until the block ends
        with open(tmp, "w") as f:
            f.write("new")
    assert dest.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            with open(tmp, "w") as f:
                f.write("partial")
            raise RuntimeError("writer crashed")
    assert dest.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_path_cleans_up_when_the_rename_fails(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(tmp_path / "out.txt", "x")
    assert os.listdir(tmp_path) == []


def test_temp_name_keeps_the_extension_or_the_suffix(tmp_path):
    with atomic_path(tmp_path / "song.flac") as tmp:
        assert os.path.basename(tmp).startswith(".song.flac.") and tmp.endswith(".flac")
    with atomic_path(tmp_path / "song.flac", suffix=".wav") as tmp:
        assert tmp.endswith(".wav")


def test_atomic_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            with open(tmp, "w") as f:
                f.write("x")
        write_bytes_atomic(tmp_path / "out.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644


def test_check_destination_refuses_protected_files_also_through_links(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"audio")
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    hard = tmp_path / "hard.wav"
    os.link(src, hard)
    for dest in (src, link, hard, tmp_path / "." / "song.wav"):
        with pytest.raises(BadInput, match="refusing to overwrite the input file") as err:
            check_destination(dest, [None, "", src])
        assert err.value.path == os.fspath(dest)
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_text_atomic(link, "x", protect=[src])
    assert src.read_bytes() == b"audio"
    assert check_destination(tmp_path / "other.wav", [src, None]) == str(tmp_path / "other.wav")


def test_check_destination_refuses_folders_and_missing_parents(tmp_path):
    with pytest.raises(BadInput, match="is a directory"):
        check_destination(tmp_path)
    with pytest.raises(BadInput, match="does not exist"):
        check_destination(tmp_path / "nope" / "out.txt")
    with pytest.raises(BadInput, match="empty output path"):
        check_destination("")


def test_text_bytes_and_json_helpers(tmp_path):
    assert write_text_atomic(tmp_path / "a.txt", "é\nb\n") == str(tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_bytes() == "é\nb\n".encode()
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    doc = {"a": [1, 2.5], "b": "x"}
    write_json_atomic(tmp_path / "c.json", doc)
    assert (tmp_path / "c.json").read_text() == json.dumps(doc, indent=1) + "\n"
    write_json_atomic(tmp_path / "d.json", doc, indent=None)
    assert (tmp_path / "d.json").read_text() == '{"a":[1,2.5],"b":"x"}\n'
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "e.json", {"x": float("nan")})
    assert not (tmp_path / "e.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "c.json", "d.json"]


def test_check_destinations_refuses_two_outputs_on_one_file_and_an_input(tmp_path):
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF")
    atomic.check_destinations({"audio": str(tmp_path / "a.wav"), "plan": str(tmp_path / "a.json")}, [song])
    with pytest.raises(BadInput, match="both the audio and the tsv would be written here"):
        atomic.check_destinations({"audio": str(tmp_path / "a.wav"), "tsv": str(tmp_path / "." / "a.wav")})
    with pytest.raises(BadInput, match="refusing to overwrite the input file"):
        atomic.check_destinations({"plan": str(tmp_path / "a.json"), "audio": str(song)}, [song])
