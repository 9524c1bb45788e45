"""Progress bars for long work: shown on a terminal, silent with --quiet or off a TTY."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, quiet: bool = False) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr unless ``quiet`` or stderr is not a TTY."""
    return tqdm(iterable, desc=desc, total=total, disable=quiet or not sys.stderr.isatty(), leave=False)
