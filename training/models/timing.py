"""The learned timing and output level of the supervised model: where another editor's audio sits, how loud.

A plan label inference found for a person's edit places its segments where
the alignment put them, but the person's tools join pieces their own way:
an overlapping splice at every join, KEEP joins included, skips a few to
tens of milliseconds of source, so the edit runs ahead of the plan's render
by a growing amount (a staircase, one step per join; measured on the
foreign-editor pairs, about 6 ms per second of edit, 100-200 ms by the end
of a 30 s excerpt). Where each join sits is not in the plan; how fast the
edit drifts on average is, once learned from pairs. The edit's level is
the editor's too (e.g. a peak normalisation of the whole edit).

``TimingModel`` is that part of the supervised model, learned from
(raw, plan, edited) pairs before the spectral network and applied to the
DSP render (and to the structural re-sequencing) before it:

- **timing**: the lag of the edit against the render, in seconds, per block
  of the output timeline (the plan's beats mapped onto it;
  ``timing_blocks``), is a linear function of the block's features
  (``BLOCK_FEATURES``: seconds since the output's start, the plan's beats
  and splices before it, a constant; an editor who joins pieces every few
  beats drifts by beats, not seconds), fitted by Huber regression on the lags measured
  by cross-correlation between the render and the edit on training pairs
  (``measure_lags``). ``retime`` reads block ``k`` of the render at
  ``t - lag_k`` with a short linear cross-fade at every block edge: what the
  editor's splices do, at the average rate.
- **level**: one of three rules, the one whose output level is closest to
  the training edits' (mean absolute dB error of the RMS level): ``none``,
  ``offset`` (a fixed gain) or ``peak`` (normalise the whole render's peak
  to a learned level).

An identity model (``TimingModel()``) changes nothing, so a model that was
never fitted renders the DSP plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from editorbot.engine.plan import EditPlan

log = logging.getLogger(__name__)

#: Names of the per-block features the lag is a linear function of.
BLOCK_FEATURES: tuple[str, ...] = ("seconds", "beats", "splices", "const")
#: Largest lag searched when measuring a block's lag against the edit, seconds.
MAX_LAG_S = 0.3
#: Blocks whose best normalised correlation is below this are left out of the fit (effects, wrong labels).
MIN_CORRELATION = 0.8
#: Blocks shorter than this are neither measured nor retimed on their own (merged into the previous one).
MIN_BLOCK_S = 0.2
#: Cross-fade at every block edge of ``retime``, seconds.
RETIME_XFADE_S = 0.01
#: Huber threshold of the lag regression, seconds.
HUBER_S = 0.02
LEVEL_RULES: tuple[str, ...] = ("none", "offset", "peak")


@dataclass
class TimingBlocks:
    """Blocks of a plan's output timeline and their features.

    Attributes
    ----------
    starts : np.ndarray
        ``(n_blocks,)`` int64 first sample of each block; the first is 0,
        each block ends where the next starts (the last at the timeline's end).
    features : np.ndarray
        ``(n_blocks, len(BLOCK_FEATURES))`` float64, at each block's centre.
    """

    starts: np.ndarray
    features: np.ndarray

    def ends(self, n_samples: int) -> np.ndarray:
        """``(n_blocks,)`` one past the last sample of each block."""
        return np.append(self.starts[1:], n_samples).astype(np.int64)


def _output_beats(plan: EditPlan) -> tuple[list[float], np.ndarray]:
    """``(block edges, beats)``: the segment starts and the grid beats some segment plays, mapped onto
    the output timeline (seconds, sorted), and the mapped beats alone."""
    beats = np.asarray(plan.grid.beat_times, dtype=np.float64) if plan.grid is not None else np.zeros(0)
    out: list[float] = [0.0]
    mapped: list[float] = []
    for seg in plan.segments:
        out.append(float(seg.dst_start_s))
        lo, hi = min(seg.src_start_s, seg.src_end_s), max(seg.src_start_s, seg.src_end_s)
        inside = beats[(beats > lo) & (beats < hi)]
        if seg.reverse:
            t = seg.dst_start_s + (hi - inside) / seg.rate
        else:
            t = seg.dst_start_s + (inside - lo) / seg.rate
        out.extend(float(x) for x in t)
        mapped.extend(float(x) for x in t)
    return sorted(set(out)), np.sort(np.asarray(mapped, dtype=np.float64))


def _splice_times(plan: EditPlan) -> np.ndarray:
    """Output times (seconds) where the plan's source is not continuous: a splice of the plan."""
    times = []
    for a, b in zip(plan.segments, plan.segments[1:]):
        contiguous = (not a.reverse and not b.reverse and a.rate == b.rate
                      and abs(a.src_end_s - b.src_start_s) < 1e-3)
        if not contiguous:
            times.append(float(b.dst_start_s))
    return np.asarray(times, dtype=np.float64)


def timing_blocks(plan: EditPlan, n_samples: int, sample_rate: int) -> TimingBlocks:
    """Blocks of the plan's output timeline (its beats; none shorter than ``MIN_BLOCK_S``) and their features."""
    sr = float(sample_rate)
    starts: list[int] = []
    edges, beats = _output_beats(plan)
    for t in edges:
        s = int(round(t * sr))
        if s >= n_samples:
            break
        if not starts or s - starts[-1] >= MIN_BLOCK_S * sr:
            starts.append(s)
    if not starts:
        starts = [0]
    starts_a = np.asarray(starts, dtype=np.int64)
    ends = np.append(starts_a[1:], n_samples)
    centres = 0.5 * (starts_a + ends) / sr
    splices = _splice_times(plan)
    feats = np.stack([centres, np.searchsorted(beats, centres, side="right").astype(np.float64),
                      np.searchsorted(splices, centres, side="right").astype(np.float64), np.ones_like(centres)], axis=1)
    return TimingBlocks(starts_a, feats)


def measure_lags(render: np.ndarray, target: np.ndarray, blocks: TimingBlocks, sample_rate: int,
                 max_lag_s: float = MAX_LAG_S) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the lag (seconds) of ``target`` against ``render`` and its normalised correlation.

    Parameters
    ----------
    render, target : np.ndarray
        ``(n,)`` mono, the same timeline (the common length is used).
    blocks : TimingBlocks
        Of ``render``'s timeline.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(n_blocks,)`` lags in seconds (``target[t] ~ render[t - lag]``)
        and ``(n_blocks,)`` correlations in [-1, 1] (0 for silent or too
        short blocks).
    """
    from scipy.signal import correlate

    n = min(render.shape[0], target.shape[0])
    x, y = np.asarray(render[:n], dtype=np.float64), np.asarray(target[:n], dtype=np.float64)
    lag_max = int(max_lag_s * sample_rate)
    lags = np.zeros(len(blocks.starts))
    scores = np.zeros(len(blocks.starts))
    for k, (a, b) in enumerate(zip(blocks.starts, blocks.ends(n), strict=True)):
        a, b = int(a), int(min(b, n))
        seg = x[a:b]
        energy = float(seg @ seg)
        if b - a < MIN_BLOCK_S * sample_rate / 2 or energy <= 1e-8:
            continue
        lo, hi = max(0, a - lag_max), min(n, b + lag_max)
        win = y[lo:hi]
        corr = correlate(win, seg, mode="valid", method="fft")
        csum = np.concatenate([[0.0], np.cumsum(win * win)])
        sliding = np.sqrt(np.maximum(csum[b - a :] - csum[: csum.size - (b - a)], 0.0) * energy) + 1e-12
        corr = corr / sliding
        i = int(np.argmax(corr))
        lags[k], scores[k] = (lo + i - a) / sample_rate, float(corr[i])
    return lags, scores


def retime(x: np.ndarray, blocks: TimingBlocks, lags_s: np.ndarray, sample_rate: int,
           xfade_s: float = RETIME_XFADE_S) -> np.ndarray:
    """Read block ``k`` of ``x`` at ``t - lags_s[k]`` (zeros outside), cross-fading linearly at block edges.

    Parameters
    ----------
    x : np.ndarray
        ``(..., n)`` audio (channels first, or mono).
    lags_s : np.ndarray
        ``(n_blocks,)`` seconds.

    Returns
    -------
    np.ndarray
        The same shape and dtype as ``x``; ``x`` itself when every lag rounds to 0 samples.
    """
    n = x.shape[-1]
    shifts = np.round(np.asarray(lags_s, dtype=np.float64) * sample_rate).astype(np.int64)
    if not np.any(shifts):
        return x
    half = max(1, int(round(xfade_s * sample_rate)) // 2)
    out = np.zeros(x.shape, dtype=np.float64)
    weight = np.zeros(n)
    ends = blocks.ends(n)
    for k, (a, b) in enumerate(zip(blocks.starts, ends, strict=True)):
        a0, b0 = max(0, int(a) - (half if k else 0)), min(n, int(b) + (half if k + 1 < len(ends) else 0))
        if b0 <= a0:
            continue
        w = np.ones(b0 - a0)
        if k:
            ramp = min(2 * half, b0 - a0)
            w[:ramp] = np.linspace(0.0, 1.0, ramp + 2)[1:-1]
        if k + 1 < len(ends):
            ramp = min(2 * half, b0 - a0)
            w[-ramp:] = np.minimum(w[-ramp:], np.linspace(1.0, 0.0, ramp + 2)[1:-1])
        src0, src1 = a0 - int(shifts[k]), b0 - int(shifts[k])
        seg = np.zeros(x.shape[:-1] + (b0 - a0,))
        i0, i1 = max(0, src0), min(n, src1)
        if i1 > i0:
            seg[..., i0 - src0 : i1 - src0] = x[..., i0:i1]
        out[..., a0:b0] += seg * w
        weight[a0:b0] += w
    return (out / np.maximum(weight, 1e-6)).astype(x.dtype)


def _rms_db(x: np.ndarray) -> float:
    return float(10.0 * np.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-12)))


def _peak_db(x: np.ndarray) -> float:
    return float(20.0 * np.log10(max(float(np.max(np.abs(x))) if x.size else 0.0, 1e-9)))


@dataclass
class TimingModel:
    """Learned lag of the edit against the plan's render, per output block, and the output level rule.

    Attributes
    ----------
    weights : list[float]
        Lag in seconds = ``features @ weights`` (``BLOCK_FEATURES``); zeros: no retiming.
    level_rule : str
        ``"none"``, ``"offset"`` (add ``level_db``) or ``"peak"`` (scale the
        render so its peak is ``level_db`` dBFS).
    level_db : float
    fit : dict
        What the fit saw (pairs, blocks used, mean absolute lag before and
        after, level errors per rule), for the record.
    """

    weights: list[float] = field(default_factory=lambda: [0.0] * len(BLOCK_FEATURES))
    level_rule: str = "none"
    level_db: float = 0.0
    fit: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> TimingModel:
        """The model of ``to_dict``'s output; the identity for None (checkpoints from before timing)."""
        if not doc:
            return cls()
        model = cls(**doc)
        if len(model.weights) != len(BLOCK_FEATURES) or model.level_rule not in LEVEL_RULES:
            raise ValueError(f"timing model {doc!r} does not fit features {BLOCK_FEATURES} / rules {LEVEL_RULES}")
        return model

    @property
    def is_identity(self) -> bool:
        return not any(self.weights) and self.level_rule == "none"

    def lags(self, blocks: TimingBlocks) -> np.ndarray:
        """``(n_blocks,)`` predicted lags, seconds, bounded to ``+-MAX_LAG_S``."""
        return np.clip(blocks.features @ np.asarray(self.weights, dtype=np.float64), -MAX_LAG_S, MAX_LAG_S)

    def level_gain_db(self, render: np.ndarray) -> float:
        """The gain in dB the level rule gives ``render`` (any shape)."""
        if self.level_rule == "offset":
            return float(self.level_db)
        if self.level_rule == "peak":
            return float(self.level_db - _peak_db(render))
        return 0.0

    def apply(self, renders: Sequence[np.ndarray], blocks: TimingBlocks, sample_rate: int,
              level_of: np.ndarray | None = None) -> list[np.ndarray]:
        """Retime each of ``renders`` (``(..., n)``, one timeline) and scale it by the level rule's gain.

        The gain is computed from ``level_of`` (default ``renders[0]``) after
        retiming, so the render and its re-sequencing get the same gain.
        """
        lags = self.lags(blocks)
        out = [retime(r, blocks, lags, sample_rate) for r in renders]
        ref = out[0] if level_of is None else retime(level_of, blocks, lags, sample_rate)
        g = 10.0 ** (self.level_gain_db(ref) / 20.0)
        return [(o * g).astype(o.dtype) if g != 1.0 else o for o in out]


def _huber_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, delta: float, iters: int = 30) -> np.ndarray:
    """Weighted Huber regression ``y ~ x @ beta`` by iteratively reweighted least squares."""
    beta = np.zeros(x.shape[1])
    ridge = 1e-6 * np.eye(x.shape[1])
    for _ in range(iters):
        r = y - x @ beta
        hw = w * np.where(np.abs(r) <= delta, 1.0, delta / np.maximum(np.abs(r), 1e-12))
        xtw = x.T * hw
        new = np.linalg.solve(xtw @ x + ridge, xtw @ y)
        if np.allclose(new, beta, atol=1e-9):
            return new
        beta = new
    return beta


def fit_timing(examples: Sequence[tuple[np.ndarray, np.ndarray, TimingBlocks]], sample_rate: int) -> TimingModel:
    """Fit the lag regression and choose the level rule on training pairs.

    Parameters
    ----------
    examples : sequence of (render, target, blocks)
        Per training pair: the plan's render ``(n,)`` mono, the person's edit
        ``(n,)`` mono on the same timeline, and the render's blocks.

    Returns
    -------
    TimingModel
        Fitted; lags keep the identity where no block correlates well enough.
    """
    xs, ys, ws = [], [], []
    for render, target, blocks in examples:
        lags, scores = measure_lags(render, target, blocks, sample_rate)
        keep = scores >= MIN_CORRELATION
        xs.append(blocks.features[keep])
        ys.append(lags[keep])
        lengths = (blocks.ends(render.shape[0]) - blocks.starts) / sample_rate
        ws.append(lengths[keep])
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    model = TimingModel()
    if y.size >= 2 * len(BLOCK_FEATURES):
        beta = _huber_fit(x, y, w, HUBER_S)
        after = float(np.average(np.abs(y - np.clip(x @ beta, -MAX_LAG_S, MAX_LAG_S)), weights=w))
        before = float(np.average(np.abs(y), weights=w))
        if after < before:
            model.weights = [float(b) for b in beta]
        model.fit.update({"blocks": int(y.size), "lag_abs_ms_before": 1000 * before, "lag_abs_ms_after": 1000 * after})
    # level: each rule's mean absolute error of the output's RMS level against the edit's
    base_rms = np.array([_rms_db(r) for r, _, _ in examples])
    target_rms = np.array([_rms_db(t) for _, t, _ in examples])
    peaks = np.array([_peak_db(t) for _, t, _ in examples])
    base_peaks = np.array([_peak_db(r) for r, _, _ in examples])
    offset = float(np.median(target_rms - base_rms))
    peak = float(np.median(peaks))
    errors = {
        "none": float(np.mean(np.abs(target_rms - base_rms))),
        "offset": float(np.mean(np.abs(target_rms - base_rms - offset))),
        "peak": float(np.mean(np.abs(target_rms - (base_rms + peak - base_peaks)))),
    }
    rule = min(errors, key=lambda k: errors[k])
    model.level_rule, model.level_db = rule, {"none": 0.0, "offset": offset, "peak": peak}[rule]
    model.fit.update({"pairs": len(examples), "level_error_db": errors})
    log.info("timing: lag = %s s (%s), mean |lag| %.1f -> %.1f ms over %d blocks; level %s %.2f dB",
             np.round(model.weights, 5).tolist(), ", ".join(BLOCK_FEATURES), model.fit.get("lag_abs_ms_before", 0.0),
             model.fit.get("lag_abs_ms_after", 0.0), model.fit.get("blocks", 0), rule, model.level_db)
    return model
