"""Progress bars for long work: shown on a terminal, silent with --quiet or off a TTY."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, quiet: bool = False) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr unless ``quiet`` or stderr is not a TTY."""
    return tqdm(iterable, desc=desc, total=total, disable=quiet or not sys.stderr.isatty(), leave=False)


@contextmanager
def stage_bar(stages: Sequence[str], *, desc: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A bar over the named stages of one job; call what it yields with each stage's name as it starts.

    Shown like ``progress`` (stderr, a TTY, not ``quiet``); it counts the
    stages done and names the one running.
    """
    bar = tqdm(
        total=len(stages), desc=desc, disable=quiet or not sys.stderr.isatty(), leave=False,
        bar_format="{desc}: {n_fmt}/{total_fmt}{postfix} [{elapsed}]",
    )
    started = 0

    def start(name: str) -> None:
        nonlocal started
        if started:
            bar.update(1)
        started += 1
        bar.set_postfix_str(name)

    try:
        yield start
    finally:
        bar.close()
