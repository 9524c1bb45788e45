"""The corpus list: one plain line per track, read back as written."""

from pathlib import Path

from bench.corpus import Track, load_tracks, write_list


def test_list_round_trip_has_plain_lines(tmp_path: Path) -> None:
    tracks = [
        Track("supertux-data/a.ogg", "dev", 93.5, "supertux-data", tmp_path / "a.ogg"),
        Track("neverball-data/b c.ogg", "test", 120.25, "neverball-data", tmp_path / "b c.ogg"),
    ]
    listing = write_list(tmp_path, tracks)
    raw = listing.read_bytes()
    assert b"\r" not in raw  # shell tools (cut, awk, read) see the paths as written
    assert raw.count(b"\n") == 3
    assert load_tracks(tmp_path) == tracks
    assert load_tracks(tmp_path, split="test") == tracks[1:]
