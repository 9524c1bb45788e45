"""Atomic file writes: a temp file next to the destination, then one rename.

Every writer in editorbot goes through here. ``atomic_path`` yields a fresh
temp path in the destination's folder; when the block ends without an
exception the temp file is synced and ``os.replace``d over the destination,
so readers see the old file or the complete new one, never a partial write.
On an exception the temp file is removed and the destination is untouched.

``reserve_path`` claims a new output name by creating it empty with
``O_EXCL`` (never through a symbolic link): a server picking names for its
jobs' outputs reserves them first, so an earlier run's file is never
replaced; the atomic write then renames over the reserved, empty file.

``check_destination`` validates an output path before anything is written:
it refuses a path that is (or links to, symbolically or by a hard link) one
of the protected inputs, a directory, or a path whose folder does not exist,
each as one ``BadInput`` line. ``write_bytes_atomic``, ``write_text_atomic``
and ``write_json_atomic`` are the two together for whole-content writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from editorbot.engine.errors import BadInput

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, *, suffix: str | None = None) -> Iterator[str]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` in one rename.

    The temp file exists (empty) when the block starts and gets the usual
    permissions after the umask (``mkstemp`` would leave it readable by its
    owner only). ``suffix`` (default: ``path``'s extension) ends the temp
    name, for libraries that pick a format from the extension.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1] if suffix is None else suffix
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.partial{ext}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def reserve_path(path: PathLike) -> str:
    """Create ``path`` empty and exclusively; returns it as ``str``.

    Raises
    ------
    BadInput
        ``path`` exists (a file, folder or link of that name): it is
        never replaced; or its folder does not exist.
    """
    dest = os.fspath(path)
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except FileExistsError:
        raise BadInput(dest, "exists already; outputs never replace an earlier file") from None
    except FileNotFoundError:
        raise BadInput(dest, f"directory {os.path.dirname(os.path.abspath(dest))} does not exist") from None
    os.close(fd)
    return dest


def _same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same file: one path after resolving
    symbolic links, or (both existing) the same inode, which catches hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def check_destination(path: PathLike, protect: Iterable[PathLike | None] = ()) -> str:
    """Validate an output path before writing; returns it as ``str``.

    Parameters
    ----------
    path : PathLike
        the file about to be written.
    protect : Iterable[PathLike | None]
        inputs that must never be overwritten (the source audio,
        the plan); ``None`` and empty entries are skipped.

    Raises
    ------
    BadInput
        ``path`` is empty, is the same file as a protected one
        (also through a symbolic or hard link), is a directory, or its
        folder does not exist.
    """
    dest = os.fspath(path)
    if not dest:
        raise BadInput(None, "empty output path")
    for p in protect:
        p = os.fspath(p) if p is not None else ""
        if p and _same_file(dest, p):
            raise BadInput(dest, f"refusing to overwrite the input file {p}")
    if os.path.isdir(dest):
        raise BadInput(dest, "is a directory")
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise BadInput(dest, f"directory {directory} does not exist")
    return dest


def check_destinations(paths: Mapping[str, str], protect: Iterable[PathLike | None] = ()) -> None:
    """``check_destination`` for every output of one command (``{what: path}``), and no two the same file.

    Raises
    ------
    BadInput
        As ``check_destination``, or two outputs would be written to one path.
    """
    protect = list(protect)
    seen: dict[str, str] = {}
    for what, p in paths.items():
        key = os.path.abspath(p)
        if key in seen:
            raise BadInput(p, f"both the {seen[key]} and the {what} would be written here")
        seen[key] = what
        check_destination(p, protect)


def write_bytes_atomic(path: PathLike, data: bytes, *, protect: Iterable[PathLike | None] = ()) -> str:
    """``check_destination`` then write ``data`` to ``path`` atomically; returns the path."""
    dest = check_destination(path, protect)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    log.debug("wrote %s", dest)
    return dest


def write_text_atomic(path: PathLike, text: str, *, protect: Iterable[PathLike | None] = ()) -> str:
    """Write ``text`` as UTF-8 with ``\\n`` line ends, as ``write_bytes_atomic``."""
    return write_bytes_atomic(path, text.encode("utf-8"), protect=protect)


def write_json_atomic(
    path: PathLike, obj: Any, *, indent: int | None = 1, protect: Iterable[PathLike | None] = ()
) -> str:
    """Write ``obj`` as strict JSON (no NaN or infinity) and a newline, as ``write_bytes_atomic``.

    ``indent=None`` writes one compact line.
    """
    separators = (",", ":") if indent is None else None
    text = json.dumps(obj, indent=indent, separators=separators, allow_nan=False) + "\n"
    return write_text_atomic(path, text, protect=protect)
