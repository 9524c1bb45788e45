"""Step 5 of inferring BC labels: the effect on each beat played forwards, and the amounts.

Each beat played forwards is compared with the raw beat it came from (band
powers, splice edges left out): unchanged -> KEEP; else the closest of the
linear effects (GAIN, filters, shelves: their measured band responses added
to the raw beat), a gain and a compressor fitted to the beat's per-frame
level change (``_level_candidates``: a gain or ratio between the
vocabulary's steps reads as its type), a straight gain ramp (FADE_IN /
FADE_OUT), renders of the
raw beat through the nonlinear effects (``engine.render`` chains: reverb,
delay, distortion, compression; reverb and delay fed the source since their
forward run began, or only the beat itself where the beat before was judged
otherwise (an effect starts at its segment with an empty memory), the
reverb rendered in stereo at the song's rate as the edit's was; within
an earlier reverb or delay run's tail, seconds after it however many beats
(``effect_tails``), "unchanged plus that tail" counts as KEEP); PITCH when
a pitch-warped variant of the raw frames matches the edit clearly better
than the raw frames; WIDTH from the stereo side/mid energies (``width``)
(``beat_effect``). "I don't know" rather than an invented effect: an
effect label has to explain most of the beat's distance from its raw beat
(``_keep_cost``), else the beat stays KEEP; a label that explains only part
of it (an effect outside the vocabulary read as its nearest type) carries a
low confidence (``BeatEffect.confidence``).

Neighbouring forward beats then take their inferred labels together
(``effect_runs``), so one effect over an action reads as one label. LOOP
and SPEED amounts come from the DP,
the STUTTER amount from the shortest slice at which the span repeats
(``stutter_slot``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from editorbot.engine import actions as vocab
from editorbot.engine.plan import Effect
from editorbot.engine.render import build_chain
from editorbot.engine.spectrum import mel_basis
from editorbot.training.labels.align import AMOUNT_SLOTS, STUTTER_SLICES, Move
from editorbot.training.labels.effect_tails import TAIL_PRE_ROLL_S, TAIL_TYPES
from editorbot.training.labels.frames import FRAME_SR, VARIANT_SEMITONES
from editorbot.training.labels.width import width_slot

BAND_NFFT = 1024
BAND_HOP = 256
N_EFFECT_BANDS = 24
KEEP_DB = 0.35  # mean band difference (dB) under which a forward beat is unchanged
LINEAR_OK_DB = 0.3  # a linear effect or fade this close needs no rendered candidates
SPLICE_GUARD_S = 0.012  # left out at both ends of a beat when judging its effect
QUIET_BEAT_DB = 45.0  # a raw beat this far below the song's peaks is too quiet to judge effects on
KEEP_BAND_DB = 0.6  # ... and no band's mean level moved more than this
PRE_ROLL_S = 0.25  # source audio fed to candidate effects before the beat
TAIL_CHUNK_BEATS = 16  # reverb/delay candidates render this many beats ahead at once
ECHO_MIN_S, ECHO_MAX_S = 0.04, 1.0  # echo times a DELAY's is looked for at (``echo_lag``)
ECHO_MIN_CORR = 0.5  # ... and how well the beat's change must repeat the song there to try it
DELAY_BEAT_LENGTHS = 3  # most common beat lengths of the grid a DELAY's echo time is tried at (plus the period)
REVERB_SCREEN_DB = 1.5  # a quick mono reverb this close to the best candidate earns the true render
# "I don't know" rather than an invented effect: a beat that differs from its raw beat in a way
# no candidate explains (an effect outside the vocabulary, a codec, a splice off the grid) stays
# KEEP. An effect label must leave at most EFFECT_MAX_RATIO of KEEP's distance and be
# EFFECT_MIN_GAIN_DB closer, unless it leaves under EFFECT_CLEAR_RATIO (a subtle effect fitted
# closely: a small shelf). Tuned on the foreign editor's dev half (bench/labels_real.py --split dev).
EFFECT_MIN_GAIN_DB = 0.5
EFFECT_MAX_RATIO = 0.85
EFFECT_CLEAR_RATIO = 0.7
PITCH_MIN_MATCH = 0.3  # frame similarity a pitch-warped variant needs to read as PITCH
PITCH_MARGIN_SCALE = 0.15  # its lead over the clean frames at which PITCH is 63% sure
# A gain is one level change on every frame; a compressor's change falls as the level rises.
# Both are fitted to the beat's per-frame level change (``_level_candidates``), so that a gain
# or a ratio between the vocabulary's steps reads as its type (the amount: the nearest step).
LEVEL_MIN_DB = 2.0  # a flat gain fitted below this is no GAIN (the steps are 3 and 6 dB) ...
LEVEL_MAX_DB = 9.0  # ... nor one above this (a distortion's drive lifts the level 10-15 dB)
COMPRESS_MIN_SLOPE = 0.2  # dB of level change lost per dB of level, at least, for a compressor
COMPRESS_MIN_GAIN_DB = 0.15  # ... and the fitted curve this much closer than a flat gain
COMPRESS_MAX_LIFT_DB = 1.0  # ... and no louder than this (a compressor without make-up gain)
COMPRESS_RENDER_DB = 0.3  # a rendered compressor this close to the fitted one names its step
FADE_MIN_RISE = 0.02  # a fade candidate's gain rises or falls by at least this over the beat ...
FADE_MIN_REL_RISE = 0.02  # ... or by this share of its mean gain (a long fade's quiet beats)
FADE_MIN_LEVEL = 1e-3  # ... that mean taken no lower than this (-60 dB)
LINEAR_TYPES = ("GAIN", "LOWPASS", "HIGHPASS", "BASS", "TREBLE")
RENDER_TYPES = ("REVERB", "DELAY", "DISTORTION", "COMPRESS")


def band_db(y: np.ndarray, *, sr: int = FRAME_SR) -> np.ndarray:
    """``(n_frames, N_EFFECT_BANDS)`` mel band power in dB (floor -100) of mono ``y``.

    Centred Hann frames of ``BAND_NFFT`` every ``BAND_HOP`` samples (as
    ``engine.spectrum.stft_magnitude``), on one thread: these are short
    snippets, where a thread pool costs more than the transform.
    """
    y = np.asarray(y, dtype=np.float32)
    pad = BAND_NFFT // 2
    padded = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(padded, BAND_NFFT)[::BAND_HOP]
    spec = np.fft.rfft(frames * _hann(BAND_NFFT), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32) @ mel_basis(sr, BAND_NFFT, N_EFFECT_BANDS).T
    return 10.0 * np.log10(power + 1e-10)


_HANN: dict[int, np.ndarray] = {}


def _hann(n: int) -> np.ndarray:
    """``(n,)`` float32 periodic Hann window."""
    if n not in _HANN:
        _HANN[n] = np.hanning(n + 1)[:-1].astype(np.float32)
    return _HANN[n]


def _effect_chain(type_name: str, slot: int, beat_s: float, sr: int) -> Any:
    name, params = vocab.effect_params(type_name, AMOUNT_SLOTS[slot], beat_s=beat_s)
    if "cutoff_hz" in params:
        params["cutoff_hz"] = min(params["cutoff_hz"], 0.45 * sr)
    return build_chain([Effect(name, params)], sr)


_RESPONSES: dict[int, np.ndarray] = {}


def linear_responses(*, effect_sr: int = FRAME_SR) -> np.ndarray:
    """``(len(LINEAR_TYPES), 4, N_EFFECT_BANDS)`` dB band responses of the linear effects at ``FRAME_SR``.

    Measured once per rate (no linear effect depends on the tempo) by
    filtering white noise through each effect (GAIN: its flat gain) at
    ``effect_sr``, the rate the edit was rendered at, and reading both
    noises' bands at ``FRAME_SR``: a filter made at a
    lower rate bends differently near its Nyquist frequency (a 5 kHz
    low-pass made at 22 kHz would read as a treble cut). The prediction of
    an effect on a beat is the raw beat's band powers plus this response.
    """
    if effect_sr in _RESPONSES:
        return _RESPONSES[effect_sr]
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(effect_sr * 4)).astype(np.float32)

    def bands(y: np.ndarray) -> np.ndarray:
        y = soxr.resample(y, effect_sr, FRAME_SR) if effect_sr != FRAME_SR else y
        return band_db(y)[8:-8].mean(axis=0)

    ref = bands(noise)
    out = np.zeros((len(LINEAR_TYPES), 4, N_EFFECT_BANDS))
    for ti, t in enumerate(LINEAR_TYPES):
        for slot in range(4):
            if t == "GAIN":
                out[ti, slot] = vocab.amount_value(t, AMOUNT_SLOTS[slot])
                continue
            chain = _effect_chain(t, slot, 0.5, effect_sr)  # any beat: the linear effects take none
            out[ti, slot] = bands(chain(noise[None, :].copy(), effect_sr)[0]) - ref
    _RESPONSES[effect_sr] = out
    return out


def _band_distance(pred: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean absolute dB difference of ``(n_frames, bands)`` arrays."""
    d = np.abs(np.clip(pred, -100.0, None) - np.clip(target, -100.0, None))
    return float((np.minimum(d, 30.0) * weight).sum() / max(weight.sum(), 1e-9))


@dataclass
class BeatEffect:
    """The effect found on one forward beat."""

    type: str
    slot: int  # amount slot 0..3 (NEG_LARGE..POS_LARGE); 0 for NEUTRAL-only types
    distance: float  # dB, best candidate
    margin: float  # dB, second best minus best
    candidates: dict[tuple[str, int], float] | None = None  # dB per (type, slot) judged; None: not to be smoothed
    ramp: tuple[float, float] | None = None  # fitted edit/raw gain at the first and last judged frame (fade candidate)
    explained: float = 1.0  # share of the beat's distance from its raw beat the label explains (0..1)
    margin_scale: float = 0.5  # margin at which the label is 63% sure (dB; similarity for PITCH)
    level: tuple[float, float] | None = None  # the level change fitted: (flat gain dB, dB lost per dB of level)

    @property
    def confidence(self) -> float:
        """0..1: how clearly the label won (its margin), times how much of the beat's change it explains.

        An effect that leaves a fifth or more of the beat's distance from
        its raw beat unexplained is partly a guess (an effect outside the
        vocabulary read as its nearest type).
        """
        return float((1.0 - math.exp(-max(self.margin, 0.0) / self.margin_scale)) * min(1.0, self.explained / 0.8))

    @property
    def amount_idx(self) -> int:
        return int(vocab.Amount.NEUTRAL) if self.type in vocab.NEUTRAL_ONLY else AMOUNT_SLOTS[self.slot]


def _tail_render(
    raw_y: np.ndarray,
    type_name: str,
    slot: int,
    beat_s: float,
    want0: int,
    src0: int,
    n: int,
    effect_sr: int,
    cache: dict | None,
    run_key: int | None = None,
) -> np.ndarray:
    """``(n,)`` mono at ``FRAME_SR``: raw samples ``[src0, src0 + n)`` through a REVERB or DELAY candidate fed from ``want0``.

    Rendered in chunks from ``want0`` to ``TAIL_CHUNK_BEATS`` beats past
    the beat and kept in ``cache`` per forward run (``run_key``): a later
    beat of the run inside the chunk whose wanted start is not before the
    chunk's start reads its render from it (a longer pre-roll within the
    run only adds older, fainter tail); without a ``cache``, just the
    beat is rendered. A reverb at ``effect_sr`` other
    than ``FRAME_SR`` renders as the edit was made, stereo at the song's
    rate (in mono at 22 kHz it is 2-4 dB per band off); at ``FRAME_SR``,
    plain mono (a quick screen).
    """
    key = (type_name, slot, run_key, effect_sr, beat_s)
    hit = cache.get(key) if cache is not None else None
    if hit is not None and hit[0] <= want0 and src0 + n <= hit[1]:
        c0, _, y = hit
        return y[src0 - c0 : src0 - c0 + n]
    c0 = want0
    ahead = int(TAIL_CHUNK_BEATS * beat_s * FRAME_SR) if cache is not None else 0
    c1 = min(src0 + n + ahead, raw_y.shape[0])
    x = np.ascontiguousarray(raw_y[None, c0:c1], dtype=np.float32)
    if type_name == "REVERB" and effect_sr != FRAME_SR:
        chain = _effect_chain(type_name, slot, beat_s, effect_sr)
        y = _reverb_output(chain(_reverb_input(x, effect_sr), effect_sr), effect_sr, x.shape[1])
    else:
        chain = _effect_chain(type_name, slot, beat_s, FRAME_SR)
        y = chain(x, FRAME_SR)[0]
    if cache is not None:
        cache[key] = (c0, c1, y)
    return y[src0 - c0 : src0 - c0 + n]


def _reverb_input(x: np.ndarray, sr: int) -> np.ndarray:
    """``(2, m)`` float32: mono ``x`` ``(1, n)`` at ``FRAME_SR`` resampled to ``sr``, on both channels."""
    y = soxr.resample(np.asarray(x[0], dtype=np.float32), FRAME_SR, sr) if sr != FRAME_SR else x[0]
    return np.ascontiguousarray(np.stack([y, y]).astype(np.float32))


def _reverb_output(y: np.ndarray, sr: int, n: int) -> np.ndarray:
    """``(n,)`` mono at ``FRAME_SR`` of a ``(2, m)`` render at ``sr`` (``engine.audio.analysis_mono``'s mix)."""
    mono = np.asarray(y, dtype=np.float32).mean(axis=0)
    if sr != FRAME_SR:
        mono = soxr.resample(mono, sr, FRAME_SR)
    if mono.shape[0] < n:
        mono = np.pad(mono, (0, n - mono.shape[0]))
    return mono[:n]


def beat_effect(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    src0: int,
    dst0: int,
    n: int,
    *,
    beat_s: float,
    raw_st: np.ndarray | None = None,
    edit_st: np.ndarray | None = None,
    pitch_votes: np.ndarray | None = None,
    quiet_db: float = -np.inf,
    run_start: int | None = None,
    effect_sr: int = 44100,
    tail_cache: dict | None = None,
    prev_effect: tuple[str, int] | None = None,
    delay_beats_s: tuple[float, ...] | None = None,
    tail: np.ndarray | None = None,
) -> BeatEffect:
    """What was done to one forward-played beat.

    Parameters
    ----------
    raw_y, edit_y : np.ndarray
        ``(n_samples,)`` float32 mono signals at ``FRAME_SR``.
    src0, dst0 : int
        first sample of the beat in the raw song and in the edit.
    n : int
        beat length, samples.
    beat_s : float
        beat period, seconds (sets the delay time).
    raw_st, edit_st : np.ndarray | None
        the same beat in stereo ``(2, m)`` at any common rate, or None.
    pitch_votes : np.ndarray | None
        ``(1 + len(VARIANT_SEMITONES) + 1,)`` mean frame
        similarity of the beat against the clean raw frames, each pitch
        warp and the distorted frames.
    quiet_db : float
        a raw beat quieter than this (dB re full scale power) is
        KEEP: nothing can be told from it.
    run_start : int | None
        first raw sample of the forward run the beat is in (the
        earliest an effect over it can have started); reverb and delay
        candidates are fed the source from there (up to
        ``TAIL_PRE_ROLL_S``), so that a beat deep in a reverb carries
        the tail the edit built up before it.
    effect_sr : int
        the song's sample rate: reverb candidates render at it.
    tail_cache : dict | None
        a dict kept over one pair's beats (in order): reverb and
        delay renders cover ``TAIL_CHUNK_BEATS`` beats at once.
    prev_effect : tuple[str, int] | None
        ``(type, slot)`` the previous beat of the run was
        judged (a REVERB or DELAY candidate of a beat after one of its
        type goes on with the run's render).
    delay_beats_s : tuple[float, ...] | None
        beat lengths, seconds, a DELAY's echo time may follow (the
        renderer times it by the length of its action's first beat): where
        the beat's echoes show, the one nearest them and the measured echo
        time are tried (``_delay_lengths``; default and otherwise: ``beat_s``).
    tail : np.ndarray | None
        ``(n,)`` at ``FRAME_SR``: what an earlier REVERB or DELAY run
        still sounds over the beat (``effect_tails.OpenTail``, as
        ``engine.render`` overlap-adds it after the run, for up to 2 s
        however short the beats); "unchanged plus that tail" is one more
        way for the beat to be KEEP. ``edit_st`` is then the edit less
        the tail's stereo.

    Returns
    -------
    BeatEffect
        The best ``BeatEffect`` among KEEP, the linear effects (from their
        band responses), FADE_IN/FADE_OUT (a straight gain ramp), the
        rendered effects (reverb, delay, distortion, compression), PITCH
        (from ``pitch_votes``) and WIDTH (stereo side/mid).
    """
    pre = int(PRE_ROLL_S * FRAME_SR)
    a0 = max(src0 - pre, 0)
    lead = src0 - a0
    x_r = raw_y[a0 : src0 + n]
    x_e = edit_y[max(dst0, 0) : dst0 + n]
    if x_e.shape[0] < n or x_r.shape[0] < lead + n or n < BAND_NFFT:
        return BeatEffect("KEEP", 0, 0.0, 0.0)
    raw_power = float(np.mean(np.square(x_r[lead:], dtype=np.float64)))
    if 10.0 * math.log10(raw_power + 1e-20) < quiet_db:
        return BeatEffect("KEEP", 0, 0.0, 0.0)
    # splice crossfades blur a beat's first and last few milliseconds: judge the inside
    trim = min(int(SPLICE_GUARD_S * FRAME_SR), n // 8)
    b_r = band_db(x_r[lead + trim : lead + n - trim])
    b_e = band_db(x_e[trim : n - trim])
    ref = np.maximum(b_r, b_e)
    weight = (ref > ref.max() - 60.0).astype(np.float64)
    d_plain = _band_distance(b_r, b_e, weight)
    cands: list[tuple[float, str, int]] = [(d_plain, "KEEP", 0)]
    b_keep, d_tail = b_r, np.inf
    if tail is not None:
        # the beat unchanged under an earlier run's tail: judged against that as KEEP
        b_t = band_db(x_r[lead + trim : lead + n - trim] + tail[trim : n - trim])
        d_tail = _band_distance(b_t, b_e, weight)
        if d_tail < d_plain:
            cands[0], b_keep = (d_tail, "KEEP", 0), b_t
    band_shift = np.abs(((b_e - b_keep) * weight).sum(axis=0) / np.maximum(weight.sum(axis=0), 1e-9))
    if cands[0][0] < KEEP_DB and float(band_shift.max()) < KEEP_BAND_DB:
        w = width_slot(raw_st, edit_st) if raw_st is not None and edit_st is not None else None
        if w is not None:
            return BeatEffect("WIDTH", w[0], cands[0][0], 1.0)
        return BeatEffect("KEEP", 0, cands[0][0], 1.0)
    # the rendered effects' screen weighs them against the plain beat: the tail's KEEP is a
    # reverb or delay itself, and beside it the quick reverb render (a few dB off) would
    # keep a reverb going on from its true render (mid-run beats read 3 dB off, runs broke)
    cands[0] = (d_plain, "KEEP", 0)
    cands += _linear_candidates(b_r, b_e, weight, effect_sr)
    level = _level_candidates(b_r, b_e, weight)
    cands += [c for c in level if c[1] == "GAIN"]
    fade, ramp = _fade_candidate(b_r, b_e, weight)
    if fade is not None:
        cands.append(fade)
    # a gain change or a gain ramp can also be a compressor riding the level or a reverb's
    # added energy: only a filter's shape settles the question without rendering
    settled = min((c[0] for c in cands[1:] if c[1] not in ("GAIN", "FADE_IN", "FADE_OUT")), default=np.inf)
    if settled > LINEAR_OK_DB:
        # reverb and delay build up over their whole segment: a beat inside one carries
        # the tail of everything since it started (read as GAIN from a 0.25 s pre-roll)
        want0 = max(src0 - int(min(TAIL_PRE_ROLL_S * FRAME_SR, max(pre, src0 - run_start))), 0) if run_start is not None else a0
        tails = _TailRenders(raw_y, beat_s, src0, n, want0, run_start, prev_effect, tail_cache)
        x_r2 = np.ascontiguousarray(x_r[None, :], dtype=np.float32)
        lengths = _delay_lengths(raw_y, edit_y, src0, dst0, n, delay_beats_s, tails) if delay_beats_s is not None else None
        _add_rendered_candidates(cands, x_r2, lead, trim, n, beat_s, b_e, weight, tails, effect_sr, lengths)
    cands += _compress_curve(level, cands)
    if d_tail < d_plain:
        # the beat right after one of the run's could end it (its tail) or go on with it: the
        # tail's KEEP is the run's effect rendered another way, and ends the run only where it
        # fits clearly better (else a mid-run beat whose render fits loosely breaks the run)
        run_type = prev_effect[0] if prev_effect is not None and prev_effect[0] in TAIL_TYPES else None
        d_on = min((c[0] for c in cands if c[1] == run_type), default=np.inf)
        if d_tail <= d_on - EFFECT_MIN_GAIN_DB:
            cands[0] = (d_tail, "KEEP", 0)
    keep_db = cands[0][0]
    cands[0] = (_keep_cost(keep_db), "KEEP", 0)
    best = _best_effect(cands, ramp)
    best.level = _level_fit(b_r, b_e, weight)
    if best.type != "KEEP":
        best.explained = float(np.clip(1.0 - best.distance / max(keep_db, 1e-9), 0.0, 1.0))
    return _pitch_or_width(best, pitch_votes, raw_st, edit_st, fit_db=keep_db if best.type == "KEEP" else best.distance)


def delay_beat_lengths(beat_lengths_s: np.ndarray, period_s: float, *, n_common: int = DELAY_BEAT_LENGTHS) -> tuple[float, ...]:
    """The beat lengths (s) a DELAY's echo time is tried at: the ``n_common`` most common of the grid's, and its period.

    ``beat_lengths_s`` ``(n_beats,)``: the tracker's own beats (whole
    analysis hops, so the same few lengths recur); lengths under half or
    over twice ``period_s`` are no beat's (a sliver at the song's end).
    The lengths are kept exact: an echo a sample off sums with the dry
    sound in another phase (measured: 0.1 ms off turned a 0.4 dB fit into
    0.8 dB).
    """
    lengths = np.asarray(beat_lengths_s, dtype=np.float64)
    # the grid's last beat can be a sliver where the song ends (0.6 ms seen): no beat a
    # delay follows, and an echo time the renderer refuses
    lengths = lengths[(lengths > 0.5 * period_s) & (lengths < 2.0 * period_s)]
    keys = np.round(lengths * 1e5).astype(np.int64)  # 10 us: one length, however it was summed
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    common = lengths[first[np.argsort(-counts, kind="stable")[:n_common]]]
    out = [float(period_s)]
    for b in sorted(common.tolist()):
        if all(abs(b - o) > 1e-5 for o in out):
            out.append(float(b))
    return tuple(out)


def echo_lag(raw_y: np.ndarray, edit_y: np.ndarray, src0: int, dst0: int, n: int) -> tuple[float, float] | None:
    """``(lag_s, corr)``: where the edit beat's change repeats the raw song, ``ECHO_MIN_S``..``ECHO_MAX_S`` earlier.

    The edit beat less its best scaled raw beat (the dry part) is
    correlated with the raw song at each lag; ``corr`` is the normalised
    correlation at the best one. A delay's echoes correlate strongly at its
    time (seen 0.5-0.96 on another editor's 0.27-s delay); music alone
    rarely passes 0.5 away from its beats. None where the beat is too short
    or silent.

    Parameters
    ----------
    raw_y, edit_y : np.ndarray
        ``(n_samples,)`` mono at ``FRAME_SR``.
    src0, dst0 : int
        the beat's first sample in each.
    n : int
        beat length, samples.
    """
    e = np.asarray(edit_y[max(dst0, 0) : dst0 + n], dtype=np.float64)
    x0 = np.asarray(raw_y[src0 : src0 + n], dtype=np.float64)
    hi, lo = int(ECHO_MAX_S * FRAME_SR), int(ECHO_MIN_S * FRAME_SR)
    if e.shape[0] < n or x0.shape[0] < n or src0 < lo:
        return None
    xx = float(x0 @ x0)
    if xx <= 1e-12:
        return None
    r = e - (float(e @ x0) / xx) * x0
    rr = float(r @ r)
    s0 = max(src0 - hi, 0)
    x = np.asarray(raw_y[s0 : src0 + n], dtype=np.float64)
    nfft = 1 << (x.shape[0] + n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(x, nfft) * np.conj(np.fft.rfft(r, nfft)), nfft)  # c[k] = sum_t x[t + k] r[t]
    ks = np.arange(src0 - s0 - lo, -1, -1)[: hi - lo + 1]  # lags lo..hi (as far as the song goes back)
    cx = np.concatenate([[0.0], np.cumsum(x * x)])
    corr = c[ks] / (np.sqrt((cx[ks + n] - cx[ks]) * rr) + 1e-12)
    i = int(np.argmax(corr))
    return (src0 - s0 - int(ks[i])) / FRAME_SR, float(corr[i])


def _delay_lengths(
    raw_y: np.ndarray, edit_y: np.ndarray, src0: int, dst0: int, n: int, delay_beats_s: tuple[float, ...], tails: _TailRenders
) -> tuple[float, ...] | None:
    """The beat lengths (s) a DELAY candidate of this beat is rendered at, or None for the grid's period alone.

    Where the beat's change repeats the song (``echo_lag`` at least
    ``ECHO_MIN_CORR``; a delay's echoes read 0.6-0.9, other beats under
    0.5): the grid's common lengths (the renderer times a delay by its
    action's first beat, ``DELAY_BEATS`` of it; the echo measured to a
    sample or two does not tell lengths a hop apart as well as the renders
    do) and the measured time itself (another editor's delay follows no
    beat; the label is DELAY, its render keeps the vocabulary's echo
    time). Kept for the
    run (``tails.cache``): a beat inside a delay whose echoes do not show
    reads the run's.
    """
    key = ("delay_beat_s", tails.run_start)
    echo = echo_lag(raw_y, edit_y, src0, dst0, n)
    if echo is not None and echo[1] >= ECHO_MIN_CORR:
        measured = echo[0] / vocab.DELAY_BEATS
        return (*delay_beats_s, measured)
    if tails.prev_effect is not None and tails.prev_effect[0] == "DELAY" and tails.cache is not None and key in tails.cache:
        return (tails.cache[key],)
    return None


def _keep_cost(keep_db: float) -> float:
    """KEEP's cost for a beat ``keep_db`` dB from its raw beat: what an effect candidate has to beat.

    ``max(EFFECT_CLEAR_RATIO * keep_db, min(keep_db - EFFECT_MIN_GAIN_DB,
    EFFECT_MAX_RATIO * keep_db))``: a candidate wins only where it explains
    the difference clearly.
    """
    return max(EFFECT_CLEAR_RATIO * keep_db, min(keep_db - EFFECT_MIN_GAIN_DB, EFFECT_MAX_RATIO * keep_db))


def _linear_candidates(b_r: np.ndarray, b_e: np.ndarray, weight: np.ndarray, effect_sr: int) -> list[tuple[float, str, int]]:
    """``(dB, type, slot)`` of each linear effect: its band response added to the raw beat's bands ``(n_frames, bands)``."""
    resp = linear_responses(effect_sr=effect_sr)
    return [(_band_distance(b_r + resp[ti, slot], b_e, weight), t, slot) for ti, t in enumerate(LINEAR_TYPES) for slot in range(4)]


def _level_candidates(b_r: np.ndarray, b_e: np.ndarray, weight: np.ndarray) -> list[tuple[float, str, int]]:
    """``(dB, type, slot)`` of a GAIN and a COMPRESS fitted to the beat's per-frame level change.

    The level change of each loud frame (edit less raw, dB, bands summed)
    is fitted as a constant (a gain: its nearest step's slot, where the
    constant lies within ``LEVEL_MIN_DB``..``LEVEL_MAX_DB``) and as a line in the raw frame's
    level (a compressor: the change falls by ``1 - 1 / ratio`` dB per dB
    above its threshold; its slope's ratio's nearest step). Each is
    scored as the raw bands moved by the fitted change per frame; the
    compressor only where its slope is at least ``COMPRESS_MIN_SLOPE``, it
    fits ``COMPRESS_MIN_GAIN_DB`` closer than the constant and the constant
    is at most ``COMPRESS_MAX_LIFT_DB``. An editor's
    gain of -4.5 dB fits neither step (1.5 dB off), where a compressor
    render may come closer; a compressor at another threshold and ratio
    fits none of the renders.
    """
    lr = 10.0 * np.log10(np.sum(10.0 ** (b_r / 10.0), axis=1) + 1e-10)
    le = 10.0 * np.log10(np.sum(10.0 ** (b_e / 10.0), axis=1) + 1e-10)
    ok = (lr > lr.max() - 30.0) & (weight.sum(axis=1) > 0)
    if ok.sum() < 4:
        return []
    g = le - lr
    flat = float(np.median(g[ok]))
    out: list[tuple[float, str, int]] = []
    d_flat = _band_distance(b_r + flat, b_e, weight)
    if LEVEL_MIN_DB <= abs(flat) <= LEVEL_MAX_DB:
        steps = [vocab.amount_value("GAIN", a) for a in AMOUNT_SLOTS]
        out.append((d_flat, "GAIN", int(np.argmin([abs(flat - v) for v in steps]))))
    if float(np.ptp(lr[ok])) >= 1.0 and flat <= COMPRESS_MAX_LIFT_DB:
        slope, icpt = np.polyfit(lr[ok], g[ok], 1)
        if slope <= -COMPRESS_MIN_SLOPE:
            d_curve = _band_distance(b_r + (icpt + slope * lr)[:, None], b_e, weight)
            if d_curve <= d_flat - COMPRESS_MIN_GAIN_DB:
                ratio = 1.0 / max(1.0 + float(slope), 0.05)
                steps = [vocab.amount_value("COMPRESS", a) for a in AMOUNT_SLOTS]
                out.append((d_curve, "COMPRESS", int(np.argmin([abs(math.log(ratio / v)) for v in steps]))))
    return out


def _level_fit(b_r: np.ndarray, b_e: np.ndarray, weight: np.ndarray) -> tuple[float, float] | None:
    """``(flat gain dB, slope)`` of the beat's per-frame level change (``_level_candidates``' fits); None where too few frames."""
    lr = 10.0 * np.log10(np.sum(10.0 ** (b_r / 10.0), axis=1) + 1e-10)
    le = 10.0 * np.log10(np.sum(10.0 ** (b_e / 10.0), axis=1) + 1e-10)
    ok = (lr > lr.max() - 30.0) & (weight.sum(axis=1) > 0)
    if ok.sum() < 4:
        return None
    g = le - lr
    slope = float(np.polyfit(lr[ok], g[ok], 1)[0]) if float(np.ptp(lr[ok])) >= 1.0 else 0.0
    return float(np.median(g[ok])), slope


def _compress_curve(level: list[tuple[float, str, int]], cands: list[tuple[float, str, int]]) -> list[tuple[float, str, int]]:
    """The fitted compressor of ``level`` (``_level_candidates``), its slot the rendered compressor's where one fits as well.

    A slope read over one beat places the ratio roughly; a render of the
    vocabulary's compressor within ``COMPRESS_RENDER_DB`` of the fit names
    the step exactly.
    """
    curve = [c for c in level if c[1] == "COMPRESS"]
    if not curve:
        return []
    d, _, slot = curve[0]
    rendered = min((c for c in cands if c[1] == "COMPRESS"), default=None)
    if rendered is not None and rendered[0] <= d + COMPRESS_RENDER_DB:
        slot = rendered[2]
    return [(d, "COMPRESS", slot)]


def _fade_candidate(
    b_r: np.ndarray, b_e: np.ndarray, weight: np.ndarray
) -> tuple[tuple[float, str, int] | None, tuple[float, float] | None]:
    """The FADE_IN/FADE_OUT candidate ``(dB, type, 0)``: the level ratio fitted as a straight line in gain; with its ramp.

    Returns ``(None, None)`` when too few frames are loud enough to fit or
    the fitted gain hardly moves: by under ``FADE_MIN_RISE`` and under
    ``FADE_MIN_REL_RISE`` of its mean over the beat (a long squared
    fade-in's first beats, 20-60 dB down, rise by thousandths in gain but
    by tens of percent of their level, and are ramps all the same).
    """
    lr = 10.0 * np.log10(np.sum(10.0 ** (b_r / 10.0), axis=1) + 1e-10)
    le = 10.0 * np.log10(np.sum(10.0 ** (b_e / 10.0), axis=1) + 1e-10)
    ok = lr > lr.max() - 40.0
    if ok.sum() < 4:
        return None, None
    g = 10.0 ** ((le - lr) / 20.0)
    x = np.arange(g.shape[0], dtype=np.float64)
    slope, icpt = np.polyfit(x[ok], np.clip(g[ok], 0.0, 2.0), 1)
    fit = np.clip(icpt + slope * x, 1e-3, 1.5)
    rise = slope * g.shape[0]
    # a gain that hardly moves, for its level: a long fade's quiet beats rise by a few
    # thousandths each (-45 dB) and are no less a ramp than its loud ones
    level = max(abs(float(icpt + slope * 0.5 * (g.shape[0] - 1))), FADE_MIN_LEVEL)
    if abs(rise) <= FADE_MIN_RISE and abs(rise) <= FADE_MIN_REL_RISE * level:
        return None, None
    d = _band_distance(b_r + 20.0 * np.log10(fit)[:, None], b_e, weight)
    return (d, "FADE_IN" if rise > 0 else "FADE_OUT", 0), (float(icpt), float(icpt + slope * x[-1]))


@dataclass
class _TailRenders:
    """One beat through a REVERB or DELAY candidate (``beat_effect``'s ``run_start``, ``tail_cache`` and ``prev_effect``).

    A beat after one judged otherwise would start the effect, and the
    renderer begins an effect at its segment with none of the source before
    it in memory: the beat alone, uncached. Inside the effect's run, from the
    run's render (fed from ``want0``).
    """

    raw_y: np.ndarray
    beat_s: float
    src0: int
    n: int
    want0: int
    run_start: int | None
    prev_effect: tuple[str, int] | None
    cache: dict | None

    def __call__(self, type_name: str, slot: int, sr: int, beat_s: float | None = None) -> np.ndarray:
        """``(n,)`` mono at ``FRAME_SR``: the beat through ``type_name`` at amount slot ``slot``, rendered at ``sr``.

        ``beat_s``: the beat length the effect's time follows (default the grid's period).
        """
        if self.prev_effect is None or self.prev_effect[0] != type_name:
            return _tail_render(self.raw_y, type_name, slot, beat_s or self.beat_s, self.src0, self.src0, self.n, sr, None)
        return self.within(type_name, slot, sr, beat_s)

    def within(self, type_name: str, slot: int, sr: int, beat_s: float | None = None) -> np.ndarray:
        """As ``__call__`` for a beat inside the effect's run, whatever the beat before was judged."""
        return _tail_render(
            self.raw_y, type_name, slot, beat_s or self.beat_s, self.want0, self.src0, self.n, sr, self.cache, self.run_start
        )

    def delay_db(self, slot: int, beat_s: float, dist: Any, *, inside: bool = True) -> float:
        """``dist(render)`` of the beat through DELAY ``slot`` at ``beat_s``: the beat starting the delay, or inside its run.

        A beat inside a delay carries the echoes of the beats before it (fed
        back): rendered alone it cannot match the edit, so a misread first
        beat would leave the whole run KEEP. With ``inside``, the better of
        the two counts.
        """
        d = dist(self("DELAY", slot, FRAME_SR, beat_s))
        if (
            inside and self.run_start is not None and self.want0 < self.src0
            and (self.prev_effect is None or self.prev_effect[0] != "DELAY")
        ):
            d = min(d, dist(self.within("DELAY", slot, FRAME_SR, beat_s)))
        return d


def _add_rendered_candidates(
    cands: list[tuple[float, str, int]],
    x_r2: np.ndarray,
    lead: int,
    trim: int,
    n: int,
    beat_s: float,
    b_e: np.ndarray,
    weight: np.ndarray,
    tails: _TailRenders,
    effect_sr: int,
    delay_beats_s: tuple[float, ...] | None = None,
) -> None:
    """Append ``(dB, type, slot)`` of the rendered effects (``RENDER_TYPES``) to ``cands``; the reverb last, where it can win.

    ``delay_beats_s``: the beat lengths a DELAY is tried at (``_delay_lengths``; None: ``beat_s``).

    ``x_r2`` ``(1, lead + n)``: the raw beat with ``lead`` samples of
    pre-roll; ``trim`` samples are left out at both ends of the beat.
    """
    def dist(y: np.ndarray) -> float:
        return _band_distance(band_db(y[trim : n - trim]), b_e, weight)

    # the echo time is a fraction of the beat the delay's action starts on (the tracker's
    # beats differ by whole analysis hops, ~12 ms an echo apart): of the lengths the beat's
    # echoes point to (``_delay_lengths``), the one whose strongest echoes fit best
    delay_beat_s = beat_s
    if delay_beats_s:
        delay_beat_s = delay_beats_s[0]
        if len(delay_beats_s) > 1:
            delay_beat_s = min(delay_beats_s, key=lambda b: tails.delay_db(3, b, dist))
        if tails.cache is not None:
            tails.cache[("delay_beat_s", tails.run_start)] = delay_beat_s
    for t in RENDER_TYPES:
        if t == "REVERB":
            continue  # last: only where it can win
        for slot in range(4):
            if t == "DELAY":
                cands.append((tails.delay_db(slot, delay_beat_s, dist, inside=bool(delay_beats_s)), t, slot))
                continue
            chain = _effect_chain(t, slot, beat_s, FRAME_SR)
            y = chain(x_r2.copy(), FRAME_SR)[0, lead + trim : lead + n - trim]
            cands.append((_band_distance(band_db(y), b_e, weight), t, slot))
    # The reverb has to render as the edit's did (both channels at the song's
    # rate, ~5x the work); its quick mono 22 kHz render, a few dB off, says
    # whether it can come near the best other candidate.
    best_other = min(c[0] for c in cands)
    quick = [(_band_distance(band_db(tails("REVERB", slot, FRAME_SR)[trim : n - trim]), b_e, weight), slot) for slot in range(4)]
    if best_other > LINEAR_OK_DB and min(q[0] for q in quick) <= best_other + REVERB_SCREEN_DB:
        for slot in range(4):
            y = tails("REVERB", slot, effect_sr)
            cands.append((_band_distance(band_db(y[trim : n - trim]), b_e, weight), "REVERB", slot))
    else:
        cands.extend((d, "REVERB", slot) for d, slot in quick)


def _best_effect(cands: list[tuple[float, str, int]], ramp: tuple[float, float] | None) -> BeatEffect:
    """The closest candidate, its margin to the best of another type, and every ``(type, slot)`` judged."""
    cands.sort(key=lambda c: c[0])
    best = cands[0]
    second = next((c for c in cands[1:] if c[1] != best[1]), cands[-1])
    judged: dict[tuple[str, int], float] = {}
    for d, t, slot in cands:
        judged.setdefault((t, slot), d)
    return BeatEffect(best[1], best[2], best[0], second[0] - best[0], judged, ramp)


def _pitch_or_width(
    effect: BeatEffect,
    pitch_votes: np.ndarray | None,
    raw_st: np.ndarray | None,
    edit_st: np.ndarray | None,
    *,
    fit_db: float | None = None,
) -> BeatEffect:
    """``effect``, or PITCH where a pitch-warped variant matches clearly better, or WIDTH where only the side changed.

    ``fit_db``: how far (dB) the best candidate is from the edit (default ``effect.distance``).
    """
    fit_db = effect.distance if fit_db is None else fit_db
    if pitch_votes is not None and pitch_votes.shape[0] >= 1 + len(VARIANT_SEMITONES):
        clean = float(pitch_votes[0])
        k = int(np.argmax(pitch_votes[1 : 1 + len(VARIANT_SEMITONES)]))
        # the warped frames must match the edit's well, not just less badly than the clean
        # ones (a beat matched to the wrong raw audio has every vote near 0)
        if pitch_votes[1 + k] > clean + 0.08 and pitch_votes[1 + k] >= PITCH_MIN_MATCH and fit_db > 1.0:
            semis = VARIANT_SEMITONES[k]
            slot = int(np.argmin([abs(semis - v) for v in (-2.0, -1.0, 1.0, 2.0)]))
            # margin in similarity units; the warped variant's own match says how sure
            return BeatEffect("PITCH", slot, effect.distance, float(pitch_votes[1 + k] - clean),
                              explained=float(np.clip(pitch_votes[1 + k], 0.0, 1.0)), margin_scale=PITCH_MARGIN_SCALE)
    if effect.type in ("KEEP", "GAIN") and raw_st is not None and edit_st is not None:
        w = width_slot(raw_st, edit_st)
        if w is not None:
            return BeatEffect("WIDTH", w[0], effect.distance, 1.0)
    return effect


def stutter_slot(edit_y: np.ndarray, mv: Move, beat_s: float, dp_slot: int) -> int:
    """Amount slot of a stutter: the shortest slice at which the span repeats."""
    a = int(round(mv.dst_start_s * FRAME_SR))
    b = int(round(mv.dst_end_s * FRAME_SR))
    seg = edit_y[max(a, 0) : b].astype(np.float64)
    for slot, v in enumerate(STUTTER_SLICES):
        lag = int(round(v * beat_s * FRAME_SR))
        if seg.shape[0] < 2 * lag + 64:
            continue
        x, y = seg[lag:], seg[:-lag]
        den = math.sqrt(float(x @ x) * float(y @ y))
        if den > 0 and float(x @ y) / den > 0.8:
            return slot
    return dp_slot
