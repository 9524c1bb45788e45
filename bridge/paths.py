"""Which files a request may name: the one path check the OSC server and the spool share.

Every path that arrives in a request (an OSC message or a spool request
file) is untrusted. ``allowed_path`` accepts it only when it is an absolute
path that resolves, symbolic links followed, to an existing regular file
inside one of the allowed roots (``--allow``; default: the user's home and the
working directory). The refusal is one line naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from editorbot.engine.errors import BadRequest

#: Longest path accepted (characters).
MAX_PATH_CHARS = 4096


class PathRefused(ValueError):
    """A path a request may not use; ``str(err)`` is one line naming it."""


def default_roots() -> list[Path]:
    """The user's home and the working directory."""
    return [Path.home(), Path.cwd()]


def resolve_roots(roots: Sequence[str | os.PathLike]) -> list[Path]:
    """``roots`` with symbolic links resolved, as ``allowed_path`` compares them."""
    return [Path(os.path.realpath(r)) for r in roots]


def inside(path: str | os.PathLike, roots: Sequence[Path]) -> bool:
    """True when ``path`` (already resolved) is one of ``roots`` or lies below one."""
    real = Path(path)
    return any(real == root or root in real.parents for root in roots)


def allowed_path(value: Any, roots: Sequence[Path], *, what: str = "path", context: str = "") -> str:
    """The resolved path of ``value`` if a request may read it; ``PathRefused`` otherwise.

    Parameters
    ----------
    value:
        What the request holds (anything: it is checked to be a string).
    roots:
        Allowed folders, resolved (``resolve_roots``).
    what:
        The field's name in messages (``path``, ``model``, ``chain``...).
    context:
        Prefix of messages that cannot name a path (e.g. ``/editorbot/edit``).
    """
    lead = f"{context}: " if context else ""
    if not isinstance(value, str):
        raise PathRefused(f"{lead}{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_PATH_CHARS:
        raise PathRefused(f"{lead}{what} is {len(value)} characters (at most {MAX_PATH_CHARS})")
    if not value or "\x00" in value:
        raise PathRefused(f"{lead}empty {what} or {what} with a NUL character")
    if not os.path.isabs(value):
        raise PathRefused(f"{value}: {what} must be absolute")
    real = Path(os.path.realpath(value))
    if not inside(real, roots):
        raise PathRefused(f"{value}: outside the allowed folders ({', '.join(map(str, roots))})")
    if not real.is_file():
        raise PathRefused(f"{value}: no such file" if not real.exists() else f"{value}: not a regular file")
    return str(real)


def request_path_check(roots: Sequence[Path], *, context: str | None = None) -> Callable[[str, str], str]:
    """``resolve_path`` for ``export.request.EditRequest.from_fields``: ``allowed_path`` in ``roots``.

    Parameters
    ----------
    roots : sequence of Path
        Allowed folders, resolved (``resolve_roots``).
    context : str or None
        Prefix of messages that cannot name a path (default: the field's name).

    Returns
    -------
    callable
        ``check(field, value) -> resolved path``, raising ``BadRequest`` naming the field.
    """

    def check(field: str, value: str) -> str:
        try:
            return allowed_path(value, roots, what=field, context=context or field)
        except PathRefused as err:
            raise BadRequest(field, str(err)) from None

    return check
