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
