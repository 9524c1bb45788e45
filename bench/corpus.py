"""The real-music corpus of the benchmarks: freely licensed game soundtracks from Debian.

``make corpus`` runs this script. It fetches Debian's data packages
(``apt-get download``, no install), unpacks each with ``dpkg -x`` into the
cache folder ``$EDITORBOT_CORPUS`` (default ``~/.cache/editorbot/corpus``,
never inside the repository), and lists every music track of at least
``MIN_TRACK_S`` seconds in ``tracks.tsv`` there: track id, split, duration,
package and path. Nothing is converted: the Ogg Vorbis files are read where
they lie. A second run finds the packages unpacked and only re-lists.

The split into dev and test halves is fixed here, once: a track is ``test``
when the first byte of the SHA-1 of its file name (the track id, e.g.
``wesnoth-1.16-music/battle.ogg``) is odd, else ``dev``. Tuning looks at
dev only; benchmarks report both.

    python bench/corpus.py [--dir DIR] [--list]

Only the standard library and ``soundfile`` are used, so the reference-grid
script in its own environment (``bench/grid_reference.py``) reads the same
list with the same split.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Package -> folders (inside the unpacked package) that hold its music.
# neverball-data is fetched too: Debian's build of it ships no music (its
# background tracks are not in the package), which the listing shows as 0.
PACKAGES: dict[str, tuple[str, ...]] = {
    "supertux-data": ("usr/share/games/supertux2/music",),
    "wesnoth-1.16-music": ("usr/share/games/wesnoth/1.16/data/core/music",),
    "extremetuxracer-data": ("usr/share/games/etr/music",),
    "neverball-data": ("usr/share/games/neverball/bgm",),
}
AUDIO_SUFFIXES = (".ogg", ".flac", ".wav", ".mp3", ".opus")
# Jingles (victory, level done, short intros) are too short to hold a tempo.
MIN_TRACK_S = 30.0
TRACKS_FILE = "tracks.tsv"
# Benchmarks score the first EXCERPT_S seconds of each track (the tracker
# sees only that, the reference at least that): madmom's tracker runs at
# about real time on a shared 2-core machine, and 86 whole tracks would take
# hours. A reference computed on a longer excerpt (its JSON says which) is
# kept, as scoring only looks at the first EXCERPT_S seconds.
EXCERPT_S = 60.0


@dataclass(frozen=True)
class Track:
    """One corpus recording.

    Attributes
    ----------
    track_id : str
        ``package/relative/path.ogg``, stable across machines; the split hashes it.
    split : str
        ``"dev"`` or ``"test"``.
    duration_s : float
        length in seconds.
    package : str
        the Debian package it comes from.
    path : Path
        the file in the cache folder.
    """

    track_id: str
    split: str
    duration_s: float
    package: str
    path: Path


def corpus_dir(override: str | os.PathLike | None = None) -> Path:
    """The corpus cache folder: ``override``, else ``$EDITORBOT_CORPUS``, else ``~/.cache/editorbot/corpus``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("EDITORBOT_CORPUS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "editorbot" / "corpus"


def split_of(track_id: str) -> str:
    """``"test"`` when the first byte of ``sha1(track_id)`` is odd, else ``"dev"`` (the fixed split rule)."""
    return "test" if hashlib.sha1(track_id.encode("utf-8")).digest()[0] % 2 else "dev"


def reference_path(root: Path, track_id: str) -> Path:
    """Where ``bench/grid_reference.py`` caches the reference grid of ``track_id`` (JSON)."""
    return root / "reference" / f"{hashlib.sha1(track_id.encode('utf-8')).hexdigest()}.json"


def _download(package: str, debs: Path) -> Path:
    """The package's .deb in ``debs``, fetched with ``apt-get download`` unless already there."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    debs.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download", package]
    if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
        # A fresh machine may not have the package lists yet.
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(cmd, cwd=debs, check=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} left no .deb in {debs}")
    return found[-1]


def _unpack(deb: Path, dest: Path) -> None:
    """``dpkg -x`` into ``dest`` once (a stamp file records a finished unpack)."""
    stamp = dest / ".unpacked"
    if stamp.exists() and stamp.read_text() == deb.name:
        return
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    stamp.write_text(deb.name)


def fetch(root: Path) -> None:
    """Download and unpack every package of ``PACKAGES`` under ``root`` (idempotent)."""
    for package in PACKAGES:
        deb = _download(package, root / "debs")
        _unpack(deb, root / "packages" / package)


def scan(root: Path) -> list[Track]:
    """Every music file of at least ``MIN_TRACK_S`` in the unpacked packages, sorted by id."""
    import soundfile

    tracks = []
    for package, folders in PACKAGES.items():
        base = root / "packages" / package
        for folder in folders:
            for path in sorted((base / folder).rglob("*")):
                if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                    continue
                duration_s = soundfile.info(str(path)).duration
                if duration_s < MIN_TRACK_S:
                    continue
                track_id = f"{package}/{path.relative_to(base / folder).as_posix()}"
                tracks.append(Track(track_id, split_of(track_id), float(duration_s), package, path))
    return sorted(tracks, key=lambda t: t.track_id)


def write_list(root: Path, tracks: list[Track]) -> Path:
    """Write ``tracks.tsv`` in ``root`` (through a temporary file, so a reader never sees half a list)."""
    out = root / TRACKS_FILE
    tmp = out.with_suffix(".tsv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")  # plain lines for cut, awk and read
        w.writerow(["track_id", "split", "duration_s", "package", "path"])
        for t in tracks:
            w.writerow([t.track_id, t.split, f"{t.duration_s:.2f}", t.package, str(t.path)])
    os.replace(tmp, out)
    return out


def load_tracks(root: Path | None = None, *, split: str | None = None) -> list[Track]:
    """The tracks listed by ``make corpus`` (``split`` = "dev" or "test" keeps one half).

    Raises
    ------
    FileNotFoundError
        naming the missing list and ``make corpus``.
    """
    root = corpus_dir(root)
    listing = root / TRACKS_FILE
    if not listing.exists():
        raise FileNotFoundError(f"{listing}: no corpus list; run `make corpus` first")
    with open(listing, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    tracks = [
        Track(r["track_id"], r["split"], float(r["duration_s"]), r["package"], Path(r["path"])) for r in rows
    ]
    return [t for t in tracks if split is None or t.split == split]


def summary(root: Path, tracks: list[Track]) -> str:
    """Count, minutes and licence file per package, and per split."""
    lines = [f"corpus in {root}: {len(tracks)} tracks, {sum(t.duration_s for t in tracks) / 60:.1f} min"]
    for package in PACKAGES:
        mine = [t for t in tracks if t.package == package]
        licence = root / "packages" / package / "usr/share/doc" / package / "copyright"
        lines.append(
            f"  {package:<22} {len(mine):>3} tracks {sum(t.duration_s for t in mine) / 60:6.1f} min  "
            f"licence: {licence if licence.exists() else 'MISSING'}"
        )
    for split in ("dev", "test"):
        mine = [t for t in tracks if t.split == split]
        lines.append(f"  {split:<5} {len(mine):>3} tracks {sum(t.duration_s for t in mine) / 60:6.1f} min")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    parser.add_argument("--list", action="store_true", help="print every track with its split and length")
    args = parser.parse_args(argv)
    root = corpus_dir(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    fetch(root)
    tracks = scan(root)
    write_list(root, tracks)
    if args.list:
        for t in tracks:
            print(f"{t.split:<5} {t.duration_s:7.1f} s  {t.track_id}")
    print(summary(root, tracks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
