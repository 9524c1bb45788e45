"""Atomic file writes for exporters and plots (temp file + ``os.replace``).

A writer never leaves a partial file at the destination: the content goes to
a temporary file in the destination's directory, is flushed and synced, and
only then renamed over the destination. On any failure the temporary file is
removed and an existing destination is left untouched. A destination that is
the same file as a protected input (the plan's source audio) is refused with
``BadInput`` before anything is written.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable

from engine.errors import BadInput

log = logging.getLogger(__name__)


def _same_file(a: str, b: str) -> bool:
    """True when paths ``a`` and ``b`` name the same file (existing or not)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_destination(path: str | os.PathLike, protect: Iterable[str | os.PathLike | None] = ()) -> str:
    """Validate an output path and return it as ``str``.

    Raises ``BadInput`` when ``path`` is one of the ``protect`` files (inputs
    that must never be overwritten), is a directory, or its directory does
    not exist.
    """
    dest = os.fspath(path)
    if not dest:
        raise BadInput(None, "empty output path")
    for p in protect:
        if p is not None and os.fspath(p) and _same_file(dest, os.fspath(p)):
            raise BadInput(dest, "refusing to overwrite an input file (the plan's source audio)")
    if os.path.isdir(dest):
        raise BadInput(dest, "output path is a directory")
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise BadInput(dest, f"output directory does not exist: {parent}")
    return dest


def write_atomic(
    path: str | os.PathLike,
    write: Callable[[str], None],
    *,
    protect: Iterable[str | os.PathLike | None] = (),
) -> str:
    """Call ``write(tmp_path)`` then rename the temp file to ``path``.

    Parameters
    ----------
    path:
        Destination file.
    write:
        Writes the complete content to the temporary path it is given.
    protect:
        Input files the destination must not be (compared after resolving
        links); ``None`` entries are ignored.

    Returns
    -------
    The destination path as ``str``.
    """
    dest = check_destination(path, protect)
    directory = os.path.dirname(os.path.abspath(dest))
    base = os.path.basename(dest)
    # O_EXCL with mode 0o666: a fresh name, and the usual permissions after umask
    # (mkstemp would leave the file readable by its owner only).
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    log.debug("wrote %s", dest)
    return dest


def write_text_atomic(
    path: str | os.PathLike,
    text: str,
    *,
    protect: Iterable[str | os.PathLike | None] = (),
) -> str:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)

    return write_atomic(path, _write, protect=protect)
