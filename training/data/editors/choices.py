"""The two ways a style makes a choice: drawn from a generator, or by a rule on the song.

A style's section program asks its choices object at each decision
point. The style's own (drawn) choices stand for a population of editors:
they read the params drawn per song and draw more from the pair's
``np.random.Generator``, in a fixed order. A persona's choices stand for
one editor: they read the persona's fixed params and replace every draw
with a rule on what a listener hears (the section's role, ordinal,
length, energy and what comes next), and never read the generator.

This module holds the draws (``draw_*``) and their rule counterparts
(``rule_*``) that more than one style uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from editorbot.training.data.editors.sections import SectionView
from editorbot.training.data.editors.walk import Piece

#: The four amounts an amount type allows, NEG_LARGE .. POS_LARGE.
AMOUNT_CHOICES: tuple[str, ...] = ("NEG_LARGE", "NEG_SMALL", "POS_SMALL", "POS_LARGE")
#: Section energy from which a section counts as loud (synth choruses are
#: 0.85-1.0, verses 0.45-0.6; inferred sections are normalised to 0..1).
LOUD_ENERGY = 0.7
#: Length in beats from which a section counts as long (two phrases).
LONG_BEATS = 32


# -- draws: one or more values from the generator, always in the same order


def draw_amount(rng: np.random.Generator, favourite: str | None = None, p_favourite: float = 0.6) -> str:
    """An amount for an amount type: ``favourite`` with probability ``p_favourite``, else any of the four.

    Draws one uniform when ``favourite`` is given, then one integer unless
    the favourite was taken.
    """
    if favourite is not None and rng.random() < p_favourite:
        return favourite
    return AMOUNT_CHOICES[int(rng.integers(len(AMOUNT_CHOICES)))]


def draw_choice(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None) -> Any:
    """One of ``options`` (any objects), optionally weighted by ``p`` (any positive scale)."""
    if p is not None:
        w = np.asarray(p, dtype=np.float64)
        return options[int(rng.choice(len(options), p=w / w.sum()))]
    return options[int(rng.integers(len(options)))]


def draw_sweep(rng: np.random.Generator, n_steps: int, *, rising: bool) -> list[str]:
    """``n_steps`` amounts in ascending (``rising``) or descending order, for a filter sweep."""
    replace = n_steps > len(AMOUNT_CHOICES)
    idx = np.sort(rng.choice(len(AMOUNT_CHOICES), size=n_steps, replace=replace))
    names = [AMOUNT_CHOICES[int(i)] for i in idx]
    return names if rising else names[::-1]


def draw_build(rng: np.random.Generator, kind: str) -> list[Piece]:
    """The last beats of a section before a chorus, drawn: ``(type, n_beats, amount)`` pieces.

    Parameters
    ----------
    rng : np.random.Generator
        Every shape and amount is drawn from it.
    kind : str
        ``"stutter"`` (slices getting finer, sometimes ending on a silent
        beat), ``"reverse"`` (a reversed bar or beat) or ``"gap"`` (silence:
        a beat, two, a bar or two bars).

    Returns
    -------
    list of Piece
        In walk order; 1 to 8 beats in all.
    """
    if kind == "stutter":
        shape = draw_choice(rng, ("beats", "beats_gap", "bar", "two_bars"))
        if shape == "beats":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL", "NEG_LARGE")]
        if shape == "beats_gap":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL")] + [("SILENCE", 1, "NEUTRAL")]
        if shape == "bar":
            return [("STUTTER", 4, draw_amount(rng))]
        return [("STUTTER", 4, "POS_SMALL"), ("STUTTER", 4, "NEG_SMALL")]
    if kind == "reverse":
        return [("REVERSE", int(draw_choice(rng, (1, 4), (0.3, 0.7))), "NEUTRAL")]
    return [("SILENCE", b, "NEUTRAL") for b in draw_choice(rng, ((1,), (1, 1), (4,), (8,)), (0.2, 0.2, 0.4, 0.2))]


# -- rules: the same decisions without a draw


def rule_sweep(n_steps: int, *, rising: bool) -> list[str]:
    """``draw_sweep`` without a draw: ``n_steps`` amounts spread evenly from NEG_LARGE to POS_LARGE.

    ``n_steps`` below 1 gives one step; callers with no bars ask for none.
    """
    idx = np.round(np.linspace(0, len(AMOUNT_CHOICES) - 1, max(1, n_steps))).astype(int)
    names = [AMOUNT_CHOICES[int(i)] for i in idx]
    return names if rising else names[::-1]


def rule_build(kind: str, sec: SectionView) -> list[Piece]:
    """``draw_build`` without a draw: the shape follows the section it ends.

    A long section (two phrases or more) builds longer: two stuttered bars,
    a two-bar gap. A verse's stutter is four beat slices; other sections end
    theirs on a silent beat. A reverse is a bar (a beat in a tiny section).

    Parameters
    ----------
    kind : str
        ``"stutter"``, ``"reverse"`` or ``"gap"``.
    sec : SectionView
        The section the build ends.

    Returns
    -------
    list of Piece
        In walk order; 1 to 8 beats in all.
    """
    long = sec.n_beats >= LONG_BEATS
    if kind == "stutter":
        if long:
            return [("STUTTER", 4, "POS_SMALL"), ("STUTTER", 4, "NEG_SMALL")]
        if sec.name == "verse":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL", "NEG_LARGE")]
        return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL")] + [("SILENCE", 1, "NEUTRAL")]
    if kind == "reverse":
        return [("REVERSE", 4 if sec.n_beats >= 8 else 1, "NEUTRAL")]
    return [("SILENCE", 8 if long else 4 if sec.n_beats >= 8 else 1, "NEUTRAL")]


def top(weights: Sequence[float], options: Sequence[str], among: Sequence[str]) -> str:
    """The option of ``among`` with the highest weight.

    ``weights`` is aligned with ``options``; ties go to the option listed
    first in ``among``.
    """
    return max(among, key=lambda o: (weights[options.index(o)], -among.index(o)))
