"""Building a walk: factored actions laid end to end over a song's beats.

A walk is what ``engine.plan.plan_from_actions`` takes: ``(type, size,
amount)`` name triples (``engine.actions``), each covering its size in
beats from where the previous one ended. Styles build it section by
section with ``Walk``; every section is covered by actions whose sizes add
up to exactly its length, so each beat of the song has one action
covering it.
"""

from __future__ import annotations

from editorbot.engine import actions as vocab

#: One action of a walk: ``(type, size, amount)`` names from ``engine.actions``.
Triple = tuple[str, str, str]
#: One piece of a planned section end: ``(type, n_beats, amount)``.
Piece = tuple[str, int, str]

_SIZE_BY_BEATS: dict[int, str] = {b: vocab.SIZES[i] for i, b in enumerate(vocab.SIZE_BEATS)}


class Walk:
    """A walk of actions built section by section.

    Attributes
    ----------
    actions : list of Triple
        The walk so far, in order.
    n : int
        Beats covered so far.
    """

    def __init__(self) -> None:
        self.actions: list[Triple] = []
        self.n = 0

    def add(self, type_name: str, n_beats: int, amount: str = "NEUTRAL") -> None:
        """Append one action of exactly ``n_beats`` beats (a size in ``SIZE_BEATS``).

        Raises
        ------
        ValueError
            ``n_beats`` is not an action size.
        """
        if n_beats not in _SIZE_BY_BEATS:
            raise ValueError(f"{n_beats} beats is not an action size")
        self.actions.append((type_name, _SIZE_BY_BEATS[n_beats], amount))
        self.n += n_beats

    def fill(self, type_name: str, n_beats: int, amount: str = "NEUTRAL", *, max_beats: int = 32) -> None:
        """Cover ``n_beats`` beats with ``type_name`` actions, largest sizes first (each at most ``max_beats``)."""
        left = n_beats
        for size in sorted(vocab.SIZE_BEATS, reverse=True):
            if size > max_beats:
                continue
            while left >= size:
                self.add(type_name, size, amount)
                left -= size

    def keep(self, n_beats: int) -> None:
        """Leave ``n_beats`` beats untouched (KEEP actions)."""
        self.fill("KEEP", n_beats)


def fit(n_beats: int, wanted: int) -> int:
    """The largest action size in beats <= ``min(wanted, n_beats)`` (0 if ``n_beats`` is 0)."""
    limit = min(wanted, n_beats)
    fits = [b for b in vocab.SIZE_BEATS if b <= limit]
    return max(fits) if fits else 0


def keep_then(w: Walk, n: int, tail: list[Piece]) -> None:
    """KEEP the first beats of an ``n``-beat span and end it with ``tail``.

    Pieces are dropped from the front of ``tail`` until it fits in ``n``
    beats; an empty ``tail`` keeps the whole span.
    """
    length = sum(b for _, b, _ in tail)
    while tail and length > n:
        length -= tail[0][1]
        tail = tail[1:]
    w.keep(n - length)
    for t, b, a in tail:
        w.add(t, b, a)
