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
  ``offset`` (a fixed gain) or ``peak`` (normalise the whole render's peak,
  over all its channels, to a learned level: an editor normalises the
  file it writes, and a mono mix's peak sits 0-3 dB under it depending on
  the stereo width).
- **KEEP guard**: on blocks inside the plan's KEEP segments the lag is
  scaled by ``keep_scale`` (0, 1/4, ... 1), chosen by cross-validation
  over the training songs (``choose_keep_scale``): the scale whose
  held-out KEEP spans come out farther from their edit than the DSP
  render's in the fewest pairs, then the closest on average. Where the
  drift of one edit is slower than the average, a full shift moves KEEP
  audio away from where the edit has it; a smaller one risks less.

An identity model (``TimingModel()``) changes nothing, so a model that was
never fitted renders the DSP plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine.render import peak_dbfs as render_peak_dbfs

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
#: A level rule other than ``none`` must lower the training pairs' mean level error by this much, dB.
LEVEL_MIN_GAIN_DB = 0.1
#: Shares of the lag the KEEP guard tries on KEEP blocks, and its cross-validation folds (by song).
KEEP_SCALES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
KEEP_FOLDS = 3


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
    keep : np.ndarray or None
        ``(n_blocks,)`` bool: the block's centre lies in a KEEP segment of
        the plan (None: no plan, no block is KEEP).
    """

    starts: np.ndarray
    features: np.ndarray
    keep: np.ndarray | None = None

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
    keep = np.zeros(centres.size, dtype=bool)
    for seg in plan.segments:
        if seg.action == "KEEP":
            keep |= (centres >= seg.dst_start_s) & (centres < seg.dst_start_s + seg.length_s)
    return TimingBlocks(starts_a, feats, keep)


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


def peak_dbfs(x: np.ndarray) -> float:
    """The peak of ``x`` (any shape: every channel), dBFS, no lower than -180 (silence: -180, so level sums stay finite)."""
    return max(render_peak_dbfs(x), -180.0)


@dataclass
class TimingModel:
    """Learned lag of the edit against the plan's render, per output block, and the output level rule.

    Attributes
    ----------
    weights : list[float]
        Lag in seconds = ``features @ weights`` (``BLOCK_FEATURES``); zeros: no retiming.
    level_rule : str
        ``"none"``, ``"offset"`` (add ``level_db``) or ``"peak"`` (scale the
        render so its peak over all channels is ``level_db`` dBFS).
    level_db : float
    keep_scale : float
        Share of the predicted lag applied on KEEP blocks (1: all of it).
    fit : dict
        What the fit saw (pairs, blocks used, mean absolute lag before and
        after, level errors per rule), for the record.
    """

    weights: list[float] = field(default_factory=lambda: [0.0] * len(BLOCK_FEATURES))
    level_rule: str = "none"
    level_db: float = 0.0
    keep_scale: float = 1.0
    fit: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> TimingModel:
        """The model of ``to_dict``'s output; the identity for None (checkpoints from before timing)."""
        if not doc:
            return cls()
        model = cls(**doc)
        if (len(model.weights) != len(BLOCK_FEATURES) or model.level_rule not in LEVEL_RULES
                or not 0.0 <= model.keep_scale <= 1.0):
            raise ValueError(f"timing model {doc!r} does not fit features {BLOCK_FEATURES} / rules {LEVEL_RULES}")
        return model

    @property
    def is_identity(self) -> bool:
        return not any(self.weights) and self.level_rule == "none"

    def lags(self, blocks: TimingBlocks, keep_scale: float | None = None) -> np.ndarray:
        """``(n_blocks,)`` predicted lags, seconds, bounded to ``+-MAX_LAG_S``; KEEP blocks' scaled by
        ``keep_scale`` (default the model's)."""
        lags = np.clip(blocks.features @ np.asarray(self.weights, dtype=np.float64), -MAX_LAG_S, MAX_LAG_S)
        scale = self.keep_scale if keep_scale is None else keep_scale
        if blocks.keep is not None and scale != 1.0:
            lags = np.where(blocks.keep, scale * lags, lags)
        return lags

    def level_gain_db(self, peak_db: float) -> float:
        """The gain in dB the level rule gives a render whose peak over all channels is ``peak_db`` dBFS."""
        if self.level_rule == "offset":
            return float(self.level_db)
        if self.level_rule == "peak":
            return float(self.level_db - peak_db)
        return 0.0

    def apply(self, renders: Sequence[np.ndarray], blocks: TimingBlocks, sample_rate: int,
              peak_db: float | None = None) -> list[np.ndarray]:
        """Retime each of ``renders`` (``(..., n)``, one timeline) and scale it by the level rule's gain.

        The gain comes from ``peak_db``, the DSP render's peak over all its
        channels (default: ``renders[0]``'s), before retiming, so the render
        and its re-sequencing get the same gain in training (mono) and at
        render time (every channel).
        """
        lags = self.lags(blocks)
        out = [retime(r, blocks, lags, sample_rate) for r in renders]
        g = 10.0 ** (self.level_gain_db(peak_dbfs(renders[0]) if peak_db is None else peak_db) / 20.0)
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


@dataclass
class TimingExample:
    """One training pair for ``fit_timing``.

    Attributes
    ----------
    render, target : np.ndarray
        ``(n,)`` mono: the plan's DSP render and the person's edit, one timeline.
    blocks : TimingBlocks
        Of the render's timeline.
    song : str
        The pair's song (pairs of one song stay on one side of a cross-validation split).
    render_peak_db, target_peak_db : float or None
        Peaks over all channels, dBFS (None: the mono signals' own).
    """

    render: np.ndarray
    target: np.ndarray
    blocks: TimingBlocks
    song: str = ""
    render_peak_db: float | None = None
    target_peak_db: float | None = None

    def peaks(self) -> tuple[float, float]:
        """``(render, target)`` peaks over all channels, dBFS."""
        r = peak_dbfs(self.render) if self.render_peak_db is None else self.render_peak_db
        t = peak_dbfs(self.target) if self.target_peak_db is None else self.target_peak_db
        return float(r), float(t)


def fit_timing(examples: Sequence[TimingExample], sample_rate: int, *, guard_keep: bool = True) -> TimingModel:
    """Fit the lag regression, choose the level rule and (``guard_keep``) the KEEP guard on training pairs.

    Returns
    -------
    TimingModel
        Fitted; lags keep the identity where no block correlates well enough.
    """
    measured = [measure_lags(e.render, e.target, e.blocks, sample_rate) for e in examples]
    model = TimingModel()
    beta = _fit_lags(examples, measured, sample_rate, model.fit)
    if beta is not None:
        model.weights = [float(b) for b in beta]
    # level: each rule's mean absolute error of the output's RMS level against the edit's, over the KEEP
    # blocks where a pair has them (what the editor changed elsewhere is not its level)
    base_rms = np.array([_rms_db(_keep_part(e.render, e.blocks, sample_rate)) for e in examples])
    target_rms = np.array([_rms_db(_keep_part(e.target, e.blocks, sample_rate)) for e in examples])
    base_peaks, peaks = np.array([e.peaks() for e in examples]).T
    offset = float(np.median(target_rms - base_rms))
    peak = float(np.median(peaks))
    errors = {
        "none": float(np.mean(np.abs(target_rms - base_rms))),
        "offset": float(np.mean(np.abs(target_rms - base_rms - offset))),
        "peak": float(np.mean(np.abs(target_rms - (base_rms + peak - base_peaks)))),
    }
    rule = min(errors, key=lambda k: errors[k])
    if errors[rule] > errors["none"] - LEVEL_MIN_GAIN_DB:
        rule = "none"  # a rule that barely helps on the training pairs is noise at render time
    model.level_rule, model.level_db = rule, {"none": 0.0, "offset": offset, "peak": peak}[rule]
    model.fit.update({"pairs": len(examples), "level_error_db": errors})
    if guard_keep and any(model.weights):
        model.keep_scale = choose_keep_scale(model, examples, measured, sample_rate)
    log.info("timing: lag = %s s (%s), mean |lag| %.1f -> %.1f ms over %d blocks; level %s %.2f dB; KEEP scale %.2f",
             np.round(model.weights, 5).tolist(), ", ".join(BLOCK_FEATURES), model.fit.get("lag_abs_ms_before", 0.0),
             model.fit.get("lag_abs_ms_after", 0.0), model.fit.get("blocks", 0), rule, model.level_db,
             model.keep_scale)
    return model


def _fit_lags(examples: Sequence[TimingExample], measured: Sequence[tuple[np.ndarray, np.ndarray]],
              sample_rate: int, record: dict[str, Any] | None = None) -> np.ndarray | None:
    """The Huber lag regression's weights on the well-correlated blocks (None when too few, or no better
    than no lag at all); ``record`` gets the block count and mean |lag| before and after."""
    xs, ys, ws = [], [], []
    for e, (lags, scores) in zip(examples, measured, strict=True):
        keep = scores >= MIN_CORRELATION
        xs.append(e.blocks.features[keep])
        ys.append(lags[keep])
        ws.append(((e.blocks.ends(e.render.shape[0]) - e.blocks.starts) / sample_rate)[keep])
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    if y.size < 2 * len(BLOCK_FEATURES):
        return None
    beta = _huber_fit(x, y, w, HUBER_S)
    after = float(np.average(np.abs(y - np.clip(x @ beta, -MAX_LAG_S, MAX_LAG_S)), weights=w))
    before = float(np.average(np.abs(y), weights=w))
    if record is not None:
        record.update({"blocks": int(y.size), "lag_abs_ms_before": 1000 * before, "lag_abs_ms_after": 1000 * after})
    return beta if after < before else None


def _keep_part(x: np.ndarray, blocks: TimingBlocks, sample_rate: int, min_s: float = 1.0) -> np.ndarray:
    """``x`` (``(n,)``) over the KEEP blocks, joined; all of ``x`` when they hold under ``min_s`` seconds."""
    if blocks.keep is None or not blocks.keep.any():
        return x
    ends = blocks.ends(x.shape[0])
    parts = [x[int(a) : int(b)] for a, b, k in zip(blocks.starts, ends, blocks.keep, strict=True) if k]
    joined = np.concatenate(parts)
    return joined if joined.size >= min_s * sample_rate else x


def _keep_distance(x: np.ndarray, target: np.ndarray, blocks: TimingBlocks) -> float:
    """Multi-scale STFT distance of ``x`` to ``target`` (``(n,)`` mono) over the KEEP blocks, joined."""
    import torch

    from editorbot.training.losses import multiscale_stft

    ends = blocks.ends(x.shape[0])
    assert blocks.keep is not None
    idx = np.concatenate([np.arange(a, b) for a, b, k in zip(blocks.starts, ends, blocks.keep, strict=True) if k])
    with torch.no_grad():
        return float(multiscale_stft(torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32)),
                                     torch.from_numpy(np.ascontiguousarray(target[idx], dtype=np.float32))))


def choose_keep_scale(model: TimingModel, examples: Sequence[TimingExample],
                      measured: Sequence[tuple[np.ndarray, np.ndarray]], sample_rate: int) -> float:
    """The KEEP guard: the share of the lag applied on KEEP blocks, by cross-validation over songs.

    The songs are dealt into ``KEEP_FOLDS`` folds; for each, the lag
    regression is refitted on the others and every held-out pair with KEEP
    blocks is rendered (retimed with each of ``KEEP_SCALES`` on its KEEP
    blocks, levelled by ``model``'s rule) and measured against its edit
    over those blocks. The scale with the fewest pairs farther from the
    edit than the DSP render wins, then the lowest mean distance. ``1.0``
    when fewer than two songs or no KEEP blocks are at hand.
    """
    songs = sorted({e.song for e in examples})
    usable = [i for i, e in enumerate(examples) if e.blocks.keep is not None and e.blocks.keep.any()]
    if len(songs) < 2 or not usable:
        return 1.0
    n_folds = min(KEEP_FOLDS, len(songs))
    worse = np.zeros(len(KEEP_SCALES))
    total = np.zeros(len(KEEP_SCALES))
    for f in range(n_folds):
        held = set(songs[f::n_folds])
        train_i = [i for i, e in enumerate(examples) if e.song not in held]
        beta = _fit_lags([examples[i] for i in train_i], [measured[i] for i in train_i], sample_rate)
        fold = TimingModel(weights=[float(b) for b in beta] if beta is not None else model.weights,
                           level_rule=model.level_rule, level_db=model.level_db)
        for i in usable:
            e = examples[i]
            if e.song not in held:
                continue
            g = 10.0 ** (fold.level_gain_db(e.peaks()[0]) / 20.0)
            dsp = _keep_distance(e.render, e.target, e.blocks)
            for j, s in enumerate(KEEP_SCALES):
                d = _keep_distance(retime(e.render, e.blocks, fold.lags(e.blocks, s), sample_rate) * g, e.target,
                                   e.blocks)
                worse[j] += d > dsp
                total[j] += d
    n = len(usable)
    best = min(range(len(KEEP_SCALES)), key=lambda j: (worse[j], total[j]))
    model.fit["keep_guard"] = {"scales": list(KEEP_SCALES), "pairs_worse_than_dsp": worse.astype(int).tolist(),
                               "mean_keep_distance": (total / n).round(4).tolist(), "pairs": n}
    log.info("timing: KEEP guard, scales %s: held-out pairs worse than DSP on KEEP %s of %d, mean distance %s",
             list(KEEP_SCALES), worse.astype(int).tolist(), n, np.round(total / n, 3).tolist())
    return float(KEEP_SCALES[best])
