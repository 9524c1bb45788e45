"""Hand-written audio-only baselines of the relational personas' rules.

Each baseline reads only the song's analysis (``engine.analysis.analyze``:
the grid and the per-beat features) and applies the persona's rule as one
would write it by hand from its description: it never sees the persona's
edit, its truth labels or the persona's own measurements
(``training.data.editors.measure``). Bars are 4-beat blocks from each of
the analysis grid's downbeats (not from the persona's sections); loudness
is the mean of the per-beat ``rms`` feature over the bar, timbre the mean
of the ``chroma_*`` and ``mfcc_*`` columns. Where these choices of bar and
measure differ from the persona's, the baseline's F1 shows what a fixed
rule on the analysis gets, the figure a learned policy must beat.

The rule's numbers (how many loops, the share cut, the quantile) are the
persona's published params (``persona_params``), as a user describing the
editor would give them.

    labels = baseline_labels("loud_loop@1", analysis)   # (n_beats, 3) type, size, amount
"""

from __future__ import annotations

from typing import Any

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.training.data.editors import AMOUNT_CHOICES, get_style, parse_persona
from editorbot.training.data.editors.measure import repeat_similarity

BAR = 4


def _bars(analysis: Any) -> np.ndarray:
    """``(n_bars,)`` first beats of 4-beat bars laid from each downbeat (overlaps and partial bars left out)."""
    n = int(analysis.features.shape[0])
    out: list[int] = []
    for d in sorted(int(x) for x in analysis.grid.downbeats):
        if d + BAR <= n and (not out or d >= out[-1] + BAR):
            out.append(d)
    return np.asarray(out, dtype=np.int64)


def _columns(analysis: Any, prefix: str) -> np.ndarray:
    """``(n_beats, k)`` float64 feature columns whose name starts with ``prefix``."""
    names = list(analysis.feature_names)
    idx = [k for k, name in enumerate(names) if name.startswith(prefix)]
    return np.asarray(analysis.features, dtype=np.float64)[:, idx]


def _bar_mean(x: np.ndarray, bars: np.ndarray) -> np.ndarray:
    """``(n_bars, k)`` mean of ``x`` ``(n_beats, k)`` over each bar."""
    return np.stack([x[b : b + BAR].mean(axis=0) for b in bars.tolist()]) if bars.size else np.zeros((0, x.shape[1]))


def baseline_decisions(style: str, analysis: Any) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The bars the rule edits and how: ``(first beats (k,), [(type, amount)] * k)``.

    Raises
    ------
    ValueError
        ``style`` is not a relational persona (``BASE@N`` of ``RELATIONAL_STYLES``).
    """
    parsed = parse_persona(style)
    if parsed is None or parsed[0] not in ("loud_loop", "repeat_cut", "quiet_filter"):
        raise ValueError(f"{style!r} is not a relational persona (loud_loop@N, repeat_cut@N, quiet_filter@N)")
    p = get_style(style).draw_params(np.random.default_rng(0))  # a persona's params ignore the generator
    bars = _bars(analysis)
    if bars.size == 0:
        return bars, []
    # The rms column is linear amplitude: compare levels in dB, as the rule is stated.
    level = 20.0 * np.log10(_bar_mean(_columns(analysis, "rms"), bars)[:, 0] + 1e-6)
    base = parsed[0]
    if base == "loud_loop":
        order = np.lexsort((bars, -level))[: int(p["n_loops"])]
        # "One step less" on the four amounts, as the rule says.
        lesser = AMOUNT_CHOICES[max(AMOUNT_CHOICES.index(p["amount"]) - 1, 0)]
        return bars[order], [("LOOP", p["amount"] if r == 0 else lesser) for r in range(order.size)]
    if base == "repeat_cut":
        timbre = np.concatenate([_bar_mean(_columns(analysis, c), bars) for c in ("chroma_", "mfcc_0", "mfcc_1")], axis=1)
        sim, _ = repeat_similarity(timbre, int(p["min_gap"]))
        n_cut = min(int(np.floor(float(p["cut_share"]) * bars.size)), bars.size // 2)
        order = np.array([k for k in np.lexsort((bars, -sim))[:n_cut] if sim[k] >= float(p["min_sim"])], dtype=np.int64)
        return bars[order], [("CUT", "NEUTRAL")] * order.size
    cut = float(np.quantile(level, float(p["quantile"])))
    quiet = np.flatnonzero(level < cut)
    deep = float(np.median(level[quiet])) if quiet.size else cut
    return bars[quiet], [(p["filter"], "NEG_LARGE" if level[k] <= deep else "NEG_SMALL") for k in quiet.tolist()]


def baseline_labels(style: str, analysis: Any) -> np.ndarray:
    """``(n_beats, 3)`` int64 (type, size, amount) per analysis beat: the rule's edit, KEEP elsewhere."""
    n = int(analysis.features.shape[0])
    out = np.zeros((n, 3), dtype=np.int64)
    out[:, 0] = vocab.type_index("KEEP")
    out[:, 1] = vocab.size_index("BEAT")
    out[:, 2] = vocab.amount_index("NEUTRAL")
    starts, what = baseline_decisions(style, analysis)
    for b, (t, a) in zip(starts.tolist(), what, strict=True):
        out[b : b + BAR] = (vocab.type_index(t), vocab.size_index("BAR"), vocab.amount_index(a))
    return out
