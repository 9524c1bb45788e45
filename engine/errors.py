"""The one error type for bad input (DESIGN section 11).

Every entry point turns bad input into a ``BadInput`` whose message is one
line naming the file (or flag) and the problem; the CLI prints it and exits 2,
the bridge sends it as ``/editorbot/error``.
"""

from __future__ import annotations

import os


class BadInput(Exception):
    """Bad input: ``str(err)`` is ``"PATH: problem"`` on one line."""

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class BadRequest(BadInput):
    """A request field with a bad value: ``str(err)`` is ``"FIELD: problem"``.

    ``field`` is the name the edit request gives it (``export.request``);
    the CLI says it as its flag, the server and the spool as the JSON key.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(field, problem)


class ActivationUnavailable(RuntimeError):
    """The learned beat tracker's network weights (``models/beatnet``) are missing."""
