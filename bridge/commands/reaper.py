"""``editorbot reaper install``: the Reaper scripts and JS effects, copied where Reaper finds them.

``editorbot reaper install [--resource-dir DIR] [--scripts-dir DIR] [--effects-dir DIR] [--force] [--print]``

The files are the package data ``editorbot/reaper_scripts/editorbot/``
(found through ``importlib.resources``, so a wheel install has them as a
checkout does). The Lua scripts go to ``<resource path>/Scripts/editorbot/``
and the JS effects to ``<resource path>/Effects/editorbot/``, where
``editorbot_lib.lua`` looks for them (``JS: editorbot/<file>``). REAPER's
resource path (Options > Show REAPER resource path) defaults to
``~/.config/REAPER`` on Linux, ``~/Library/Application Support/REAPER`` on
macOS and ``%APPDATA%\\REAPER`` on Windows; ``--resource-dir`` names another
(a portable install). ``--scripts-dir`` alone puts the effects beside the
scripts unless ``--effects-dir`` names their folder.

Nothing is replaced silently: a file that is already there with the same
bytes is left alone, one that differs is replaced only with ``--force``,
and a destination that is a symbolic link (a file, or the install folder
itself) is refused, never followed. Every destination is checked before the
first file is written, so a refusal writes nothing; each file is written
atomically (``engine.atomic``). ``--print`` writes nothing and prints the
packaged files, one absolute path a line, then the ReaPack index generator
(``make_index.py``, docs/reaper.md "With ReaPack").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from editorbot.engine.errors import BadInput

#: Packaged files with these suffixes are JS effects; every other file is a script.
EFFECT_SUFFIXES = (".jsfx",)
#: The folder, below REAPER's Scripts and Effects folders, that holds editorbot's files.
FOLDER = "editorbot"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-parsers of ``editorbot reaper`` (one: ``install``)."""
    sub = p.add_subparsers(dest="reaper_command", metavar="SUBCOMMAND", required=True)
    install = sub.add_parser(
        "install",
        help="copy the Lua scripts and JS effects into REAPER's Scripts and Effects folders",
        description="Copy the Lua scripts into <resource path>/Scripts/editorbot and the JS effects into "
        "<resource path>/Effects/editorbot. An existing file that differs is replaced only with --force; "
        "symbolic links are refused.",
    )
    install.add_argument(
        "--resource-dir", metavar="DIR",
        help="REAPER's resource path (default: ~/.config/REAPER, ~/Library/Application Support/REAPER or %%APPDATA%%\\REAPER)",
    )  # fmt: skip
    install.add_argument("--scripts-dir", metavar="DIR", help="folder for the Lua scripts (default: RESOURCE/Scripts/editorbot)")
    install.add_argument(
        "--effects-dir", metavar="DIR",
        help="folder for the JS effects (default: RESOURCE/Effects/editorbot; with only --scripts-dir, that folder)",
    )  # fmt: skip
    install.add_argument("--force", action="store_true", help="replace files that differ from the packaged ones")
    install.add_argument("--print", action="store_true", dest="print_only", help="write nothing; print where the packaged files are")
    install.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only")
    install.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")


def packaged_folder() -> Traversable:
    """``editorbot/reaper_scripts/editorbot``: the scripts and effects as package data."""
    return resources.files("editorbot") / "reaper_scripts" / FOLDER


def packaged_files() -> list[Traversable]:
    """The packaged scripts and effects, sorted by name (BadInput when the package has none)."""
    folder = packaged_folder()
    files = sorted((f for f in folder.iterdir() if f.is_file()), key=lambda f: f.name) if folder.is_dir() else []
    if not files:
        raise BadInput(str(folder), "no Reaper scripts in this editorbot installation")
    return files


def default_resource_dir(platform: str = sys.platform, environ: Mapping[str, str] = os.environ, home: Path | None = None) -> Path:
    """REAPER's default resource path on ``platform`` (``sys.platform`` values).

    BadInput (naming ``--resource-dir``) on Windows without ``%APPDATA%``.
    """
    home = Path.home() if home is None else home
    if platform == "win32":
        appdata = environ.get("APPDATA")
        if not appdata:
            raise BadInput("--resource-dir", "%APPDATA% is not set, so REAPER's resource path is unknown; name it")
        return Path(appdata) / "REAPER"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "REAPER"
    return home / ".config" / "REAPER"


@dataclass(frozen=True)
class Destinations:
    """Where the scripts and the effects go."""

    scripts: Path
    effects: Path


def destinations(args: argparse.Namespace) -> Destinations:
    """The two folders the flags name (see the module docstring for the defaults).

    The default resource path must exist: a missing one means REAPER is not
    installed there (or is a portable install), and is refused rather than
    created.
    """
    if args.scripts_dir and not args.resource_dir:
        scripts = Path(args.scripts_dir)
        return Destinations(scripts, Path(args.effects_dir) if args.effects_dir else scripts)
    resource = Path(args.resource_dir) if args.resource_dir else default_resource_dir()
    if not resource.is_dir():
        flag = "--resource-dir" if args.resource_dir else "REAPER's resource path"
        raise BadInput(resource, f"{flag}: no such folder (is REAPER installed? name its resource path with --resource-dir, "
                                 "or the folders with --scripts-dir and --effects-dir)")
    return Destinations(
        Path(args.scripts_dir) if args.scripts_dir else resource / "Scripts" / FOLDER,
        Path(args.effects_dir) if args.effects_dir else resource / "Effects" / FOLDER,
    )


@dataclass(frozen=True)
class Copy:
    """One packaged file and what installing it does: ``new``, ``same`` (left alone) or ``replace``."""

    source: Traversable
    dest: Path
    action: str


def _check_folder(folder: Path) -> None:
    """BadInput unless ``folder`` is a real folder or missing (then it is created); a link is never followed."""
    if folder.is_symlink():
        raise BadInput(folder, "is a symbolic link; not followed (install into the folder it points to, by name)")
    if folder.exists() and not folder.is_dir():
        raise BadInput(folder, "exists and is not a folder")


def plan_copies(files: list[Traversable], where: Destinations, *, force: bool) -> list[Copy]:
    """What installing each file does, every destination checked before anything is written.

    Raises
    ------
    BadInput
        A destination folder or file that is a symbolic link, a file where a
        folder belongs (or the reverse), or a file that differs from the
        packaged one without ``force``.
    """
    for folder in {where.scripts, where.effects}:
        _check_folder(folder)
    copies = []
    for source in files:
        dest = (where.effects if source.name.endswith(EFFECT_SUFFIXES) else where.scripts) / source.name
        if dest.is_symlink():
            raise BadInput(dest, "is a symbolic link; not followed or replaced (remove it to install)")
        if not dest.exists():
            copies.append(Copy(source, dest, "new"))
        elif not dest.is_file():
            raise BadInput(dest, "exists and is not a file")
        elif dest.read_bytes() == source.read_bytes():
            copies.append(Copy(source, dest, "same"))
        elif force:
            copies.append(Copy(source, dest, "replace"))
        else:
            raise BadInput(dest, "exists and differs from the packaged file; --force replaces it")
    return copies


def install(copies: list[Copy]) -> None:
    """Create the missing folders, then write each new or replaced file atomically."""
    from editorbot.engine.atomic import write_bytes_atomic

    for folder in sorted({c.dest.parent for c in copies}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BadInput(folder, f"cannot create the folder: {err.strerror or err}") from None
        _check_folder(folder)  # made just now, or turned into a link meanwhile
    for c in copies:
        if c.action == "same":
            continue
        try:
            write_bytes_atomic(c.dest, c.source.read_bytes(), protect=[str(c.source)])
        except OSError as err:
            raise BadInput(c.dest, f"cannot write: {err.strerror or err}") from None


def print_packaged(files: list[Traversable]) -> None:
    """One absolute path a line: the scripts and effects, then ``make_index.py``."""
    for f in files:
        print(f)
    make_index = resources.files("editorbot") / "reaper_scripts" / "make_index.py"
    if make_index.is_file():
        print(make_index)


def run(args: argparse.Namespace) -> int:
    """Install (or print); one line per file; 0 on success."""
    files = packaged_files()
    if args.print_only:
        print_packaged(files)
        return 0
    where = destinations(args)
    copies = plan_copies(files, where, force=args.force)
    install(copies)
    words = {"new": "installed", "same": "unchanged", "replace": "replaced"}
    for c in copies:
        print(f"{words[c.action]:<10} {c.dest}")
    print(f"In REAPER: Actions > Show action list > New action > Load ReaScript, and load the .lua files of {where.scripts} "
          "except editorbot_lib.lua (docs/reaper.md).")
    if where.effects == where.scripts and any(c.dest.name.endswith(EFFECT_SUFFIXES) for c in copies):
        print("The JS effects are beside the scripts: REAPER loads them from <resource path>/Effects/editorbot "
              "(give --effects-dir to put them there).")
    return 0
