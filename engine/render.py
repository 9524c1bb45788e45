"""Render an EditPlan: source audio + segments -> edited audio (DESIGN section 6).

The renderer turns the plan's timeline of segments into samples at the
source's rate and channel count. The rules, in the order they apply:

Sample positions
    A segment occupies output samples ``[round(dst_start_s * sr),
    round((dst_start_s + length_s) * sr))``, so the output is exactly
    ``round(plan.duration_s * sr)`` samples and its length is the sum of the
    segment lengths (within one sample of rounding). A segment reads its
    source from ``round(src_start_s * sr)`` (``round(src_end_s * sr)`` going
    backwards when reversed) and consumes ``n_out * rate`` source samples.
    Gaps in the timeline are silence; overlapping segments are a bad plan.
    Source reads outside the file are zeros (up to ``SPAN_TOLERANCE_S``
    past its end; further is a bad plan).

Runs
    Neighbouring segments whose source is contiguous (``src_end_s`` of one
    equals ``src_start_s`` of the next, backwards for reversed ones) and
    whose processing is the same (gain, rate, pitch, reverse, mute, effects,
    no fades) are merged into one run and read as one piece of source: they
    join sample-exactly, so an all-KEEP plan reproduces the source bit for
    bit, and effects process the whole run in one pedalboard call.

Splices
    Every boundary between runs is a splice, crossfaded over ``crossfade_s``
    (10 ms) by overlap-adding the outgoing run fading out and the incoming
    run fading in. The window ends at the splice: the incoming run starts
    early, borrowing the audio just before its source span, while the
    outgoing run fades over its own last samples, so no output length
    changes and an on-beat cut keeps the incoming beat's attack whole
    (nothing after the outgoing span leaks in). Where the incoming run has
    no audio before it (the source's start), the outgoing run plays past
    its end for the rest; where neither side can borrow enough, each still
    fades over a full crossfade inside its own audio (a short dip, never a
    click). A crossfade never exceeds the shorter run's length.
    The gains are equal-power (cos/sin) divided by ``sqrt(1 + 2 r cos sin)``
    where ``r`` in [0, 1] is the correlation of the two sides' source over
    the window: uncorrelated material (most cuts) gets plain equal power;
    identical or in-phase material (contiguous source with new processing,
    a loop restart of a steady tone) gets gains that sum to one, so it
    neither bumps +3 dB nor dips.

Effects and tails
    Per run, in order: source read (reverse), time-stretch/pitch-shift
    (``pedalboard.time_stretch``: SPEED keeps the pitch, PITCH keeps the
    length; the result is padded/trimmed to the exact length), splice fades,
    the effect chain (a ``pedalboard.Pedalboard`` built from the segment's
    ``Effect`` list through ``EFFECTS``), then ``gain_db`` and the
    segment's linear FADE_IN/FADE_OUT ramps. Runs with reverb or delay are
    fed zeros after their end for a tail (reverb: ``REVERB_TAIL_S``; delay:
    until the echoes fall 60 dB, at least one echo; both capped at
    ``MAX_TAIL_S`` = 2 s): the tail keeps its natural decay for its first
    half and fades out (raised cosine) over its second half, and is
    overlap-added into whatever follows. A FADE_OUT silences the tail too.

Edges
    The output start fades in and the output end fades out over half a
    crossfade, unless the first run starts at the source's first sample
    (playing forwards) and the last ends at its last sample.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias

import numpy as np
import pedalboard

from editorbot.engine.actions import CUTOFF_MAX_FRACTION, EFFECT_RANGES, PITCH_RANGE_SEMITONES, RATE_RANGE
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, Effect, Segment, add_output_gain

log = logging.getLogger(__name__)

CROSSFADE_S = 0.010  # splice crossfade length, seconds
#: Highest sample peak of a written edit, dBFS (``stage_gain``).
PEAK_CEILING_DB = -0.3
MAX_TAIL_S = 2.0  # longest effect tail rendered past a run's end, seconds
REVERB_TAIL_S = 2.0  # reverb tail length, seconds (capped by MAX_TAIL_S)
TAIL_FLOOR_DB = -60.0  # a delay tail lasts until the echoes fall this far
STRETCH_CONTEXT_S = 0.1  # extra source fed to the time-stretcher on each side
SPAN_TOLERANCE_S = 0.05  # how far a segment may reach past the source's end
BASS_SHELF_HZ = 200.0
TREBLE_SHELF_HZ = 4000.0


# --------------------------------------------------------------------------- effects


class Width:
    """Stereo width on the first two channels: mid/side with the side scaled.

    ``width`` 1 leaves the audio unchanged, 0 makes L == R (mono), 2 doubles
    the side signal. Audio with fewer than two channels passes unchanged;
    with more (5.1), only channels 0 and 1 (front left/right) change.
    """

    def __init__(self, width: float) -> None:
        self.width = float(width)

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        """Apply to ``audio`` ``(n_channels, n_samples)`` float32; returns a new array."""
        if audio.shape[0] < 2 or self.width == 1.0:
            return audio
        out = audio.copy()
        mid = 0.5 * (audio[0] + audio[1])
        side = (0.5 * self.width) * (audio[0] - audio[1])
        out[0] = mid + side
        out[1] = mid - side
        return out

    def __repr__(self) -> str:
        return f"Width(width={self.width})"


Stage: TypeAlias = "pedalboard.Plugin | Width"
"""One step of an effect chain: a pedalboard plugin or a plain callable ``f(audio, sample_rate)``."""


@dataclass(frozen=True)
class EffectSpec:
    """How to build one named effect (its parameters and their ranges are
    ``engine.actions.EFFECT_RANGES[name]``).

    ``build(params, sample_rate)`` returns the stage and ``tail_s(params)``
    how long it rings after its input stops (seconds).
    """

    build: Callable[[dict[str, float], int], Stage]
    tail_s: Callable[[dict[str, float]], float] = lambda params: 0.0


def _delay_tail_s(params: dict[str, float]) -> float:
    """Seconds until a feedback delay's echoes fall ``TAIL_FLOOR_DB`` (at least one echo)."""
    feedback = params["feedback"]
    n_echoes = 1
    if feedback > 0.0:
        n_echoes = max(1, math.ceil((TAIL_FLOOR_DB / 20.0) * math.log(10.0) / math.log(feedback)))
    return params["delay_s"] * n_echoes


EFFECTS: dict[str, EffectSpec] = {
    "lowpass": EffectSpec(
        lambda p, sr: pedalboard.LowpassFilter(cutoff_frequency_hz=p["cutoff_hz"]),
    ),
    "highpass": EffectSpec(
        lambda p, sr: pedalboard.HighpassFilter(cutoff_frequency_hz=p["cutoff_hz"]),
    ),
    "bass": EffectSpec(
        lambda p, sr: pedalboard.LowShelfFilter(cutoff_frequency_hz=BASS_SHELF_HZ, gain_db=p["gain_db"]),
    ),
    "treble": EffectSpec(
        lambda p, sr: pedalboard.HighShelfFilter(cutoff_frequency_hz=TREBLE_SHELF_HZ, gain_db=p["gain_db"]),
    ),
    "reverb": EffectSpec(
        lambda p, sr: pedalboard.Reverb(room_size=p["room_size"], wet_level=p["wet"], dry_level=1.0 - p["wet"]),
        lambda p: REVERB_TAIL_S,
    ),
    "delay": EffectSpec(
        lambda p, sr: pedalboard.Delay(delay_seconds=p["delay_s"], feedback=p["feedback"], mix=p["mix"]),
        _delay_tail_s,
    ),
    "distortion": EffectSpec(
        lambda p, sr: pedalboard.Distortion(drive_db=p["drive_db"]),
    ),
    "compress": EffectSpec(
        lambda p, sr: pedalboard.Compressor(threshold_db=p["threshold_db"], ratio=p["ratio"]),
    ),
    "width": EffectSpec(
        lambda p, sr: Width(p["width"]),
    ),
}
"""The effect registry: ``Effect.name`` -> how to build it (same names as ``EFFECT_RANGES``)."""


@dataclass
class EffectChain:
    """An ordered list of stages, itself callable like a pedalboard plugin.

    Consecutive pedalboard plugins run as one ``pedalboard.Pedalboard``
    call; other stages (``Width``) run between them.
    """

    stages: list[Stage] = field(default_factory=list)
    tail_s: float = 0.0  # how long the chain rings after its input stops

    def __bool__(self) -> bool:
        return bool(self.stages)

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        """Process ``audio`` ``(n_channels, n_samples)`` float32 from a reset state."""
        pending: list[pedalboard.Plugin] = []
        for stage in [*self.stages, None]:
            if isinstance(stage, pedalboard.Plugin):
                pending.append(stage)
                continue
            if pending:
                audio = pedalboard.Pedalboard(pending)(audio, sample_rate, reset=True)
                pending = []
            if stage is not None:
                audio = stage(audio, sample_rate)
        return audio


def build_chain(effects: Sequence[Effect], sample_rate: int, *, where: str = "effects") -> EffectChain:
    """Build the chain for a segment's ``effects`` (in order).

    Raises ``BadInput`` for an unknown effect name, a missing or unknown
    parameter, or a value out of range (``where`` prefixes the message).
    """
    chain = EffectChain()
    for i, effect in enumerate(effects):
        spec = EFFECTS.get(effect.name)
        if spec is None:
            raise BadInput(None, f"{where}[{i}]: unknown effect {effect.name!r} (known: {', '.join(EFFECTS)})")
        ranges = EFFECT_RANGES[effect.name]
        params = dict(effect.params)
        missing = sorted(set(ranges) - set(params))
        extra = sorted(set(params) - set(ranges))
        if missing or extra:
            problem = f"missing {missing}" if missing else f"unknown {extra}"
            raise BadInput(None, f"{where}[{i}] {effect.name}: {problem} parameters (takes {sorted(ranges)})")
        for key, (low, high) in ranges.items():
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BadInput(None, f"{where}[{i}] {effect.name}.{key}: not a finite number: {value!r}")
            if key == "cutoff_hz":
                high = CUTOFF_MAX_FRACTION * sample_rate
            if not low <= value <= high:
                raise BadInput(None, f"{where}[{i}] {effect.name}.{key} = {value} is outside [{low:g}, {high:g}]")
            params[key] = float(value)
        chain.stages.append(spec.build(params, sample_rate))
        chain.tail_s += spec.tail_s(params)
    chain.tail_s = min(chain.tail_s, MAX_TAIL_S)
    return chain


# --------------------------------------------------------------------------- runs


@dataclass
class _Run:
    """Output samples ``[dst0, dst1)`` made from one piece of source, processed one way."""

    dst0: int
    dst1: int
    segment: Segment  # processing template (every merged segment has the same)
    src0: float  # first source sample played (forward) or one past the first (reverse), fractional
    chain: EffectChain
    head: int = 0  # output samples rendered before dst0 (splice borrow)
    tail: int = 0  # output samples rendered after dst1 (splice borrow)
    fade_in: np.ndarray | None = None  # splice gains at the buffer start, (length,)
    fade_out: np.ndarray | None = None  # splice gains ending at dst1 + tail, (length,)

    @property
    def n_out(self) -> int:
        return self.dst1 - self.dst0

    @property
    def mute(self) -> bool:
        return self.segment.mute

    def available(self, n_source: int, side: str) -> float:
        """Output samples of real source audio beyond this run on ``side`` ("before"/"after")."""
        if self.mute:
            return math.inf
        seg = self.segment
        if seg.reverse:  # output runs backwards from src0 (exclusive)
            before, after = n_source - self.src0, self.src0 - self.n_out * seg.rate
        else:
            before, after = self.src0, n_source - (self.src0 + self.n_out * seg.rate)
        value = before if side == "before" else after
        return max(0.0, math.floor(value / seg.rate))


def _processing_key(seg: Segment) -> tuple:
    """What must match for two contiguous segments to share a run."""
    return (
        seg.mute,
        seg.reverse,
        float(seg.rate),
        float(seg.pitch_semitones),
        float(seg.gain_db),
        tuple((e.name, tuple(sorted(e.params.items()))) for e in seg.effects),
    )


def _check_segment(i: int, seg: Segment, source_s: float) -> None:
    """Raise ``BadInput`` for a segment no renderer could play."""
    numbers = {
        "src_start_s": seg.src_start_s,
        "src_end_s": seg.src_end_s,
        "dst_start_s": seg.dst_start_s,
        "gain_db": seg.gain_db,
        "fade_in_s": seg.fade_in_s,
        "fade_out_s": seg.fade_out_s,
        "rate": seg.rate,
        "pitch_semitones": seg.pitch_semitones,
    }
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(None, f"segments[{i}].{key}: not a finite number: {value!r}")
    if not seg.src_end_s > seg.src_start_s:
        raise BadInput(None, f"segments[{i}]: src_end_s {seg.src_end_s} is not after src_start_s {seg.src_start_s}")
    if seg.src_start_s < -SPAN_TOLERANCE_S or seg.src_end_s > source_s + SPAN_TOLERANCE_S:
        raise BadInput(
            None,
            f"segments[{i}]: source span {seg.src_start_s:.3f}-{seg.src_end_s:.3f} s "
            f"is outside the {source_s:.3f} s source",
        )
    if seg.dst_start_s < 0:
        raise BadInput(None, f"segments[{i}].dst_start_s is negative: {seg.dst_start_s}")
    low, high = RATE_RANGE
    if not low <= seg.rate <= high:
        raise BadInput(None, f"segments[{i}].rate = {seg.rate} is outside [{low:g}, {high:g}]")
    low, high = PITCH_RANGE_SEMITONES
    if not low <= seg.pitch_semitones <= high:
        raise BadInput(None, f"segments[{i}].pitch_semitones = {seg.pitch_semitones} is outside [{low:g}, {high:g}]")
    if seg.fade_in_s < 0 or seg.fade_out_s < 0:
        raise BadInput(None, f"segments[{i}]: negative fade length")


def _build_runs(segments: Sequence[Segment], sr: int, n_source: int) -> list[_Run]:
    """Place segments on the output timeline and merge contiguous same-processing ones."""
    source_s = n_source / sr
    order = sorted(range(len(segments)), key=lambda i: segments[i].dst_start_s)
    snap = max(1, round(1e-3 * sr))  # dst rounding disagreements up to 1 ms are snapped
    chains: dict[tuple, EffectChain] = {}
    runs: list[_Run] = []
    cursor = 0
    for i in order:
        seg = segments[i]
        _check_segment(i, seg, source_s)
        key = _processing_key(seg)
        if key not in chains:
            chains[key] = build_chain(seg.effects, sr, where=f"segments[{i}].effects")
        dst0 = round(seg.dst_start_s * sr)
        dst1 = round((seg.dst_start_s + seg.length_s) * sr)
        if runs and abs(dst0 - cursor) <= snap:
            dst0 = cursor
        elif dst0 < cursor:
            raise BadInput(
                None, f"segments[{i}] starts at {seg.dst_start_s:.3f} s, inside the segment before it (overlap)"
            )
        if dst1 <= dst0:
            continue
        if dst0 > cursor:  # a gap in the timeline: silence
            gap = Segment(src_start_s=0.0, src_end_s=(dst0 - cursor) / sr, dst_start_s=cursor / sr, mute=True)
            runs.append(_Run(cursor, dst0, gap, 0.0, EffectChain()))
        src0 = (seg.src_end_s if seg.reverse else seg.src_start_s) * sr
        # the run this segment may extend: same processing, no fades on either side
        prev = runs[-1] if runs else None
        if prev is not None and (
            _processing_key(prev.segment) != key
            or prev.segment.fade_in_s or prev.segment.fade_out_s or seg.fade_in_s or seg.fade_out_s
        ):
            prev = None
        if prev is not None and seg.mute:
            prev.dst1 = dst1
        elif prev is not None:
            prev_end = prev.segment.src_start_s if seg.reverse else prev.segment.src_end_s
            this_start = seg.src_end_s if seg.reverse else seg.src_start_s
            if abs(prev_end - this_start) * sr < 0.5:
                prev.dst1 = dst1
                # the merged run's template spans both segments' source
                prev.segment = _span_segment(prev.segment, seg)
            else:
                prev = None
        if prev is None:
            runs.append(_Run(dst0, dst1, seg, float(round(src0)), chains[key]))
        cursor = dst1
    return runs


def _span_segment(a: Segment, b: Segment) -> Segment:
    """``a`` with its source span grown to cover contiguous ``b`` (same processing)."""
    if a.reverse:
        return replace(a, src_start_s=b.src_start_s)
    return replace(a, src_end_s=b.src_end_s)


def _plan_splices(runs: list[_Run], samples: np.ndarray, xfade: int) -> None:
    """Decide head/tail borrow and fade gains at every boundary between runs."""
    n_source = samples.shape[1]
    for a, b in zip(runs, runs[1:]):
        if a.mute and b.mute:
            continue
        length = min(xfade, a.n_out, b.n_out)
        if length < 2:
            continue
        after = a.available(n_source, "after")
        before = b.available(n_source, "before")
        borrow_before = min(before, length)  # b starts early: the window ends at the splice
        borrow_after = min(after, length - borrow_before)  # a plays on only where b cannot start early
        a.tail = int(borrow_after)
        b.head = int(borrow_before)
        r = 0.0
        if a.tail + b.head == length and not (a.mute or b.mute):
            r = _correlation(_window_source(a, samples, "tail", length), _window_source(b, samples, "head", length))
        fade_out, fade_in = _crossfade_gains(length, r)
        a.fade_out = fade_out
        b.fade_in = fade_in


def _window_source(run: _Run, samples: np.ndarray, end: str, length: int) -> np.ndarray | None:
    """Unprocessed source the run plays over its ``length``-sample splice window at ``end``.

    Returns ``(n_channels, length)`` or None for stretched runs (not sample-aligned).
    """
    seg = run.segment
    if seg.rate != 1.0 or seg.pitch_semitones != 0.0:
        return None
    src0 = round(run.src0)
    k0 = -run.head if end == "head" else run.n_out + run.tail - length  # output index of window start
    if seg.reverse:
        return _read_source(samples, src0 - k0 - length, src0 - k0)[:, ::-1]
    return _read_source(samples, src0 + k0, src0 + k0 + length)


def _correlation(x: np.ndarray | None, y: np.ndarray | None) -> float:
    """Normalised correlation of two equal-shape signals, clipped to [0, 1] (0 when unknown)."""
    if x is None or y is None:
        return 0.0
    x64, y64 = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    denom = math.sqrt(float(x64 @ x64) * float(y64 @ y64))
    if denom <= 0.0:
        return 0.0
    return min(1.0, max(0.0, float(x64 @ y64) / denom))


def _crossfade_gains(length: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in gains ``(length,)`` float32 for sides correlated by ``r`` in [0, 1].

    Equal-power cos/sin divided by ``sqrt(1 + 2 r cos sin)`` so the sum keeps
    the level: plain equal-power for uncorrelated sides (r = 0), gains that
    sum to one for identical sides (r = 1).
    """
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    fade_in, fade_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    norm = np.sqrt(1.0 + 2.0 * r * fade_in * fade_out)
    return (fade_out / norm).astype(np.float32), (fade_in / norm).astype(np.float32)


def _edge_fade(length: int, *, rising: bool) -> np.ndarray:
    """``(length,)`` float32 equal-power (sin) fade for the output's edges and effect tails."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * (t if rising else 1.0 - t)).astype(np.float32)


def _read_source(samples: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Source samples ``[lo, hi)`` as a new ``(n_channels, hi - lo)`` array, zeros outside the file."""
    n_channels, n_source = samples.shape
    out = np.zeros((n_channels, max(0, hi - lo)), dtype=np.float32)
    a, b = max(lo, 0), min(hi, n_source)
    if b > a:
        out[:, a - lo : b - lo] = samples[:, a:b]
    return out


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``audio`` ``(n_channels, m)`` at the end to exactly ``n`` samples."""
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def _run_input(run: _Run, samples: np.ndarray, sr: int) -> np.ndarray:
    """Source for ``run`` over output ``[dst0 - head, dst1 + tail)``, reversed and stretched.

    Returns ``(n_channels, head + n_out + tail)`` float32 in output time.
    """
    seg = run.segment
    rate, pitch = float(seg.rate), float(seg.pitch_semitones)
    n = run.head + run.n_out + run.tail
    stretched = rate != 1.0 or pitch != 0.0
    context = round(STRETCH_CONTEXT_S * sr) if stretched else 0
    # output sample k (k = -head - context ...) <-> source src0 + k * rate (forward)
    # or src0 - 1 - k * rate (reverse); read the covering source range
    n_src = round((n + 2 * context) * rate)
    src0 = round(run.src0)
    if seg.reverse:
        hi = src0 + round((run.head + context) * rate)
        x = _read_source(samples, hi - n_src, hi)[:, ::-1]
    else:
        lo = src0 - round((run.head + context) * rate)
        x = _read_source(samples, lo, lo + n_src)
    if not stretched:
        return np.ascontiguousarray(x)
    y = pedalboard.time_stretch(
        np.ascontiguousarray(x), sr, stretch_factor=rate, pitch_shift_in_semitones=pitch, high_quality=True
    )
    y = _fit_length(np.asarray(y, dtype=np.float32), n + 2 * context)
    return np.ascontiguousarray(y[:, context : context + n])


def _render_run(run: _Run, samples: np.ndarray, sr: int) -> np.ndarray:
    """Processed audio for ``run`` over output ``[dst0 - head, dst1 + tail + effect tail)``."""
    x = _run_input(run, samples, sr)
    n_body = x.shape[1]
    if run.fade_in is not None:
        x[:, : len(run.fade_in)] *= run.fade_in
    if run.fade_out is not None:
        x[:, n_body - len(run.fade_out) :] *= run.fade_out
    n_tail = round(run.chain.tail_s * sr) if run.chain else 0
    if n_tail:
        x = np.pad(x, ((0, 0), (0, n_tail)))
    if run.chain:
        x = np.asarray(run.chain(x, sr), dtype=np.float32)
        x = _fit_length(x, n_body + n_tail)
    env = _envelope(run, sr, n_body + n_tail)
    if env is not None:
        x *= env
    if n_tail:
        x[:, n_body:] *= tail_envelope(n_tail)
    return x


def tail_envelope(n_tail: int) -> np.ndarray:
    """``(n_tail,)`` float32 gain on an effect's tail: 1 over its first half, a raised-cosine fall to 0 over its second.

    ``n_tail``: the tail's length in samples (``EffectChain.tail_s`` times
    the rate). The tail keeps its natural decay, then fades out so it ends
    at silence whatever its effect's memory still holds.
    """
    half = n_tail // 2
    env = np.ones(n_tail, dtype=np.float32)
    env[half:] = _edge_fade(n_tail - half, rising=False) ** 2
    return env


def _envelope(run: _Run, sr: int, n: int) -> np.ndarray | np.float32 | None:
    """Post-effect gain: ``gain_db`` times the linear FADE_IN/FADE_OUT ramps, or None for unity.

    Fade-in rises from exactly 0 at the segment start; fade-out reaches
    exactly 0 at the segment end and stays 0 after it (tail included).
    """
    seg = run.segment
    gain = np.float32(10.0 ** (seg.gain_db / 20.0))
    n_in = min(run.n_out, round(seg.fade_in_s * sr))
    n_out = min(run.n_out, round(seg.fade_out_s * sr))
    if not n_in and not n_out:
        return None if seg.gain_db == 0.0 else gain
    env = np.ones(n, dtype=np.float32)
    start, end = run.head, run.head + run.n_out
    if n_in:
        env[:start] = 0.0
        env[start : start + n_in] *= np.arange(n_in, dtype=np.float32) / n_in
    if n_out:
        env[end - n_out : end] *= np.arange(n_out - 1, -1, -1, dtype=np.float32) / n_out
        env[end:] = 0.0
    return env * gain


def render_plan(
    plan: EditPlan,
    samples: np.ndarray,
    sample_rate: int,
    *,
    crossfade_s: float = CROSSFADE_S,
) -> np.ndarray:
    """Render ``plan``'s segments from the source audio.

    Parameters
    ----------
    plan:
        The edit; only ``plan.segments`` is used (times in seconds).
    samples:
        Source audio, ``(n_channels, n_samples)`` float32 (other float
        dtypes are converted).
    sample_rate:
        Source rate in Hz; the output has the same rate.
    crossfade_s:
        Splice crossfade length in seconds (see the module docstring).

    Returns
    -------
    ``(n_channels, round(plan.duration_s * sample_rate))`` float32.

    Raises ``BadInput`` for a malformed segment, overlapping segments, an
    unknown effect or an out-of-range effect parameter.

    Examples
    --------
    >>> from engine.audio import load_audio
    >>> from engine.plan import load_plan
    >>> plan = load_plan("song.edit.plan.json")  # doctest: +SKIP
    >>> audio = load_audio(plan.source.path)  # doctest: +SKIP
    >>> edited = render_plan(plan, audio.samples, audio.sample_rate)  # doctest: +SKIP
    >>> edited.shape[1] == round(plan.duration_s * audio.sample_rate)  # doctest: +SKIP
    True
    """
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise BadInput(None, f"source audio must be (n_channels, n_samples), got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise BadInput(None, f"source audio must be floating point, got {samples.dtype}")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise BadInput(None, f"sample rate must be a positive integer, got {sample_rate!r}")
    samples = samples.astype(np.float32, copy=False)
    sr = int(sample_rate)
    n_channels, n_source = samples.shape

    runs = _build_runs(plan.segments, sr, n_source)
    n_total = runs[-1].dst1 if runs else 0
    out = np.zeros((n_channels, n_total), dtype=np.float32)
    if not runs:
        return out
    xfade = max(0, round(crossfade_s * sr))
    _plan_splices(runs, samples, xfade)
    log.debug("rendering %d segments as %d runs, %d samples", len(plan.segments), len(runs), n_total)

    for run in runs:
        if run.mute:
            continue
        y = _render_run(run, samples, sr)
        start = run.dst0 - run.head
        a, b = max(start, 0), min(start + y.shape[1], n_total)
        if b > a:
            out[:, a:b] += y[:, a - start : b - start]

    _fade_edges(out, runs, n_source, xfade // 2)
    return out


def _fade_edges(out: np.ndarray, runs: list[_Run], n_source: int, length: int) -> None:
    """Fade the output's first/last ``length`` samples unless they continue the source's own edges."""
    length = min(length, out.shape[1])
    if length < 2:
        return
    first, last = runs[0], runs[-1]
    starts_clean = first.mute or (not first.segment.reverse and round(first.src0) == 0)
    ends_clean = last.mute or (
        not last.segment.reverse
        and last.segment.rate == 1.0
        and last.segment.pitch_semitones == 0.0
        and round(last.src0) + last.n_out == n_source
    )
    if not starts_clean:
        out[:, :length] *= _edge_fade(length, rising=True)
    if not ends_clean:
        out[:, -length:] *= _edge_fade(length, rising=False)


def peak_dbfs(samples: np.ndarray) -> float:
    """Sample peak of ``(n_channels, n_samples)`` audio in dBFS (-inf for silence)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


def stage_gain(plan: EditPlan, rendered: np.ndarray, *, ceiling_db: float = PEAK_CEILING_DB) -> tuple[np.ndarray, float]:
    """Bring a rendered edit's sample peak to at most ``ceiling_db``, and say so in the plan.

    When the peak is over the ceiling, the whole edit is turned down
    (``engine.plan.add_output_gain``: every segment's gain and the volume
    automation), so a re-render or a DAW import of ``plan`` peaks the same.
    The gain is rounded down to 0.01 dB.

    Returns
    -------
    ``(rendered, gain_db)``: the audio scaled by the gain (``(n_channels,
    n_samples)`` float32) and the gain in dB (0.0 when under the ceiling).
    """
    over = peak_dbfs(rendered) - ceiling_db
    if not over > 0.0:
        return rendered, 0.0
    gain_db = -math.ceil(over * 100.0 + 1e-6) / 100.0
    add_output_gain(plan, gain_db)
    log.info("edit peaked %.2f dB over the %.1f dBFS ceiling: turned down %.2f dB", over, ceiling_db, -gain_db)
    return (rendered * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32), gain_db


# --------------------------------------------------------------------------- files


@dataclass
class RenderResult:
    """What ``render_to_file`` wrote."""

    path: str
    duration_s: float
    sample_rate: int
    n_channels: int
    n_segments: int


def render_to_file(
    plan: EditPlan,
    out_path: str | os.PathLike,
    *,
    source_path: str | os.PathLike | None = None,
    crossfade_s: float = CROSSFADE_S,
    subtype: str | None = None,
    ceiling_db: float | None = PEAK_CEILING_DB,
) -> RenderResult:
    """Load the plan's source, render it and write ``out_path`` atomically.

    ``source_path`` overrides ``plan.source.path`` (e.g. resolved relative
    to the plan file). The output format follows ``out_path``'s extension
    (``engine.audio.write_audio``); its sample format is ``subtype``, by
    default the source's (``engine.audio.source_subtype``). A plan whose
    render peaks over ``ceiling_db`` (one not made by ``editorbot edit``,
    which stages its gain) is turned down as ``stage_gain`` does, with a
    warning; ``plan`` itself is left as it is. ``ceiling_db=None`` writes
    the render as it is (training pairs, whose edits are data). Raises ``BadInput`` when ``out_path``
    is the source file, when the source is missing, changed since the plan
    was made (sha256) or does not match it (rate, channels, length), or for
    any problem ``render_plan`` finds (those carry no path: the caller
    knows the plan file's name).
    """
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.audio import load_audio, output_subtype, source_subtype, write_audio
    from editorbot.engine.plan import check_source

    src = check_source(plan, source_path)  # present and unchanged (sha256)
    dest = check_destination(out_path, [src])
    audio = load_audio(src)
    _check_source(plan, audio.samples, audio.sample_rate, src)
    rendered = render_plan(plan, audio.samples, audio.sample_rate, crossfade_s=crossfade_s)
    if ceiling_db is not None:
        rendered, gain_db = stage_gain(copy.deepcopy(plan), rendered, ceiling_db=ceiling_db)
        if gain_db:
            log.warning("%s: the plan's edit peaks over %.1f dBFS: written %.2f dB down", dest, ceiling_db, -gain_db)
    subtype = subtype or output_subtype(dest, source_subtype(src))
    write_audio(dest, rendered, audio.sample_rate, protect=(src,), subtype=subtype)
    result = RenderResult(
        path=dest,
        duration_s=rendered.shape[1] / audio.sample_rate,
        sample_rate=audio.sample_rate,
        n_channels=rendered.shape[0],
        n_segments=len(plan.segments),
    )
    log.debug("wrote %s (%.2f s, %d segments)", dest, result.duration_s, result.n_segments)
    return result


def _check_source(plan: EditPlan, samples: np.ndarray, sample_rate: int, path: str) -> None:
    """Raise ``BadInput`` when the loaded source is not the audio the plan was made for."""
    want = plan.source
    if want.sample_rate and want.sample_rate != sample_rate:
        raise BadInput(path, f"sample rate {sample_rate} Hz, the plan expects {want.sample_rate} Hz")
    if want.channels and want.channels != samples.shape[0]:
        raise BadInput(path, f"{samples.shape[0]} channels, the plan expects {want.channels}")
    duration_s = samples.shape[1] / sample_rate
    if want.duration_s and abs(want.duration_s - duration_s) > SPAN_TOLERANCE_S:
        raise BadInput(path, f"{duration_s:.3f} s long, the plan expects {want.duration_s:.3f} s")
