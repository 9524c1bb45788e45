"""Tempo, beats, downbeats, bars and 16-beat phrases (DESIGN section 3).

The grid is computed from the shared ``Spectrum`` (no second STFT):

1. Onset envelopes: the full-band dB flux of ``mel_db``, a low band (below
   150 Hz), a high band (above 2 kHz), and a "backbone" flux of
   ``log1p(|STFT|)`` over 30 Hz-2 kHz (kick and snare, hardly any hats). Tempo and beats are tracked on full +
   low + high (``beat_envelope``), which leaves chord and bass-riff onsets
   on syncopated off-beats a small share.
2. A reference pulse ``X`` in 72-144 BPM (one octave, so 180 BPM is not read
   as 60): the tempo whose comb over the onset autocorrelation (lags of 1-4
   beats) is strongest. The beat is then at ``X/2``, ``X`` or ``2X``.
3. Beats at ``X`` by Ellis-style dynamic programming (vectorised in chunks of
   half a period, because no beat can depend on a frame less than half a
   period before it), which follows swing and small tempo drift.
4. The octave decision among ``X/2, X, 2X`` with three cues: a log-normal
   tempo prior around 115 BPM; kick/snare backbone onsets half-way between
   the ``X`` beats (a backbeat at ``2X`` puts drums there, off-beat hats do
   not) or only on alternate beats; and the harmonic rhythm: chords change
   on bar lines, so the level whose 4-beat bars best separate the chroma of
   the half-bars either side of their bar lines wins (``bar_contrast``,
   weighted by how much sustained, tonal content the song has). At ``2X``
   the beats are tracked again at that tempo; at ``X/2`` every other beat
   is kept.
5. Beats per bar: 3 where the chords clearly change every 3 beats, else 4.
   Downbeats: a Viterbi pass over the position-in-bar of each beat, with
   beat-synchronous evidence from chord change (chroma of the sustained
   spectrum over the half-bars either side of each beat), kick/snare
   (backbone) onsets and low-band onsets. Onset envelopes treat the time
   before the first frame as silence, so a song that starts on a beat at
   t = 0 keeps that beat.
6. Phrases: every 16 beats from the first downbeat, snapped to downbeats.
   (Steps 5-6 and the beat-synchronous cues they share with step 4 live in
   ``engine.metre``.)
7. Confidence (``grid_confidence``): whether the onset envelope repeats at
   the beat period and the beats sit on its peaks; free-tempo music and
   songs without a pulse score low instead of passing for a sure grid.

The default, ``beat_grid(spec, tracker="learned")``, replaces steps 1-4 by a learned
beat activation (``engine.beat_activation``, BeatNet's CRNN) decoded by an
HMM over tempo and phase (``engine.beat_dbn``, with its octave check),
drops weak beats at the edges as step 3 does, and adds the network's
downbeat activation to the evidence of step 5 (``learned_beat_grid``).

Everything is vectorised over frames; the Python loops run over beats or over
half-period chunks (a few hundred to a few thousand iterations for a
4-minute song).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import numpy as np

from editorbot.engine.errors import BadInput
from editorbot.engine.formats import TRACKER_ENV, TRACKERS
from editorbot.engine.metre import (
    ONSET_LEAD_FRAMES,
    SustainedSpectrum,
    bar_contrast,
    beat_frames,
    detect_beats_per_bar,
    downbeat_evidence,
    find_downbeats,
    peak_near,
    phrase_starts,
    sustained_spectrum,
    viterbi_bar_positions,
    zscore,
)
from editorbot.engine.spectrum import Spectrum

log = logging.getLogger(__name__)

DEFAULT_TEMPO_BPM = 120.0
TEMPO_SPAN_BEATS = 8  # the learned grid's tempo: median over spans of this many beats


def default_tracker() -> str:
    """The tracker named by ``$EDITORBOT_TRACKER`` (unset or empty: ``"learned"``, the first of ``TRACKERS``).

    Raises
    ------
    BadInput
        The variable names no tracker of ``TRACKERS``.
    """
    value = os.environ.get(TRACKER_ENV, "").strip()
    if not value:
        return TRACKERS[0]
    if value not in TRACKERS:
        raise BadInput(f"{TRACKER_ENV}={value}", f"unknown beat tracker (one of {', '.join(TRACKERS)})")
    return value


# The octave prior and cue weights hold every synthetic survey song
# (bench/grid.py), every tests/drumkit.py song and the synthesizer's 70-204 BPM
# songs (tests/training/test_synth.py) right. A retune on the real corpus's dev
# half (centre 130 BPM, clarity 0.2, alternate-beat weight 4) moved its tempo
# agreement 47% -> 49% but doubled a 70 BPM synthetic song: reverted.
PRIOR_CENTRE_BPM = 115.0
PRIOR_SIGMA_OCTAVES = 0.8
REFERENCE_RANGE_BPM = (72.0, 144.0)
TIGHTNESS = 200.0
# The bar-length cue of the octave decision: its weight, and the contrast
# (see ``bar_contrast``) above which it counts fully.
BAR_CUE_WEIGHT = 3.0
BAR_CONTRAST_CLEAR = 0.08
# Kick/snare onsets half-way between the beats at this share of those on the
# beats count for the doubled level; less counts against it.
MID_RATIO_EVEN = 0.6
# Alternate beats with kick/snare onsets under this share of the others count
# for the halved level (weighted by ALT_CUE_WEIGHT); more counts against it.
ALT_RATIO_UNEVEN = 0.4
ALT_CUE_WEIGHT = 2.0
# Under this ``Grid.confidence`` the grid is a guess: ``analyze`` and ``edit`` say so.
UNSURE_CONFIDENCE = 0.5
UNSURE_GRID = "weak pulse: free tempo or no beat; the grid is a guess"
# grid_confidence: the onset autocorrelation at the beat period, and the
# on-beat/between-beat onset contrast, that map to 0 and to 1.
CONFIDENCE_PULSE = (0.1, 0.3)
CONFIDENCE_CONTRAST = (1.1, 1.6)


@dataclass(frozen=True)
class Grid:
    """The beat grid of a song.

    Attributes
    ----------
    tempo_bpm : float
        global tempo (beats per minute), from a least-squares fit
        of beat times against beat index (the learned tracker: 60 / the
        median beat interval, measured over spans of ``TEMPO_SPAN_BEATS``).
    beat_times : np.ndarray
        ``(n_beats,)`` float64 seconds, strictly increasing.
    downbeats : np.ndarray
        ``(n_bars,)`` int64 indices into ``beat_times`` of bar starts.
    beats_per_bar : int
        beats in a bar: 4, or 3 where the harmony clearly
        changes every 3 beats (``detect_beats_per_bar``).
    phrase_starts : np.ndarray
        ``(n_phrases,)`` int64 indices into ``beat_times``: one
        every 16 beats starting at the first downbeat (beats before it are
        a pickup), each on a downbeat.
    confidence : float
        0..1, how clearly the onsets mark the beats
        (``grid_confidence``): under about 0.5 the song has a weak or free
        pulse and the grid is a guess. Grids built from known beats keep
        the default 1.
    """

    tempo_bpm: float
    beat_times: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int
    phrase_starts: np.ndarray
    confidence: float = 1.0

    @property
    def n_beats(self) -> int:
        return int(self.beat_times.shape[0])

    @property
    def unsure(self) -> bool:
        """True when the grid is a guess (``confidence`` under ``UNSURE_CONFIDENCE``): free tempo or no steady beat."""
        return self.confidence < UNSURE_CONFIDENCE


# ---------------------------------------------------------------------------
# Onset envelopes


def _mel_centres_hz(n_mels: int, fmax_hz: float) -> np.ndarray:
    """``(n_mels,)`` centre frequencies (Hz) of a Slaney mel filterbank from 0 Hz to ``fmax_hz``."""
    f_sp = 200.0 / 3.0
    min_log_hz, min_log_mel = 1000.0, 15.0
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f: float) -> float:
        return f / f_sp if f < min_log_hz else min_log_mel + np.log(f / min_log_hz) / logstep

    mels = np.linspace(0.0, hz_to_mel(fmax_hz), n_mels + 2)[1:-1]
    return np.where(mels < min_log_mel, f_sp * mels, min_log_hz * np.exp(logstep * (mels - min_log_mel)))


def band_onsets(spec: Spectrum) -> dict[str, np.ndarray]:
    """Onset envelopes of the spectrum, each ``(n_frames,)`` float32, frame-aligned.

    Returns
    -------
    dict[str, np.ndarray]
        ``"full"``: mean positive dB flux over all mel bands (``onset_strength``);
        ``"low"``: the same below 150 Hz (kick and bass);
        ``"high"``: the same above 2 kHz (snare noise, kick click, hats,
        cymbals: the drums, with little of the bass and chords);
        ``"backbone"``: positive flux of ``log1p(magnitude)`` over 30 Hz-2 kHz
        (kick and snare, the drums that carry the beat).
    """
    centres = _mel_centres_hz(spec.mel_db.shape[0], spec.sr / 2.0)
    n_low = max(1, int(np.searchsorted(centres, 150.0)))
    # The same flux as ``engine.spectrum.onset_strength``, computed here once
    # for all bands so the band envelopes share its frame alignment, which
    # ONSET_LEAD_FRAMES compensates.
    mel = spec.mel_db
    flux = np.zeros(mel.shape, dtype=np.float32)
    np.maximum(mel[:, 1:] - mel[:, :-1], 0.0, out=flux[:, 1:])
    if mel.shape[1] > 1:
        # Before the first frame there is silence: a song that starts on a
        # hit at t = 0 has its onset in frame 0. Each band's quietest level
        # in the song stands for that silence, and the onset is capped at
        # the band's largest flux elsewhere, so a loud start is one onset,
        # not an outlier.
        flux[:, 0] = np.minimum(np.maximum(mel[:, 0] - mel.min(axis=1), 0.0), flux[:, 1:].max(axis=1))
    full = flux.mean(axis=0)
    low = flux[:n_low].mean(axis=0)
    high = flux[int(np.searchsorted(centres, 2000.0)) :].mean(axis=0) if centres[-1] >= 2000.0 else full
    # Kick and snare both carry most of their energy between 30 Hz and 2 kHz,
    # where hats barely reach; a compressed linear-magnitude flux there keeps
    # quiet components (hat leakage, noise floor) quiet, unlike a dB flux.
    freqs = np.arange(spec.magnitude.shape[0]) * (spec.sr / spec.n_fft)
    lo, hi = int(np.searchsorted(freqs, 30.0)), int(np.searchsorted(freqs, 2000.0))
    band = np.log1p(spec.magnitude[lo:hi])
    backbone = np.zeros(spec.n_frames, dtype=np.float32)
    if spec.n_frames > 1:
        rise = np.maximum(band[:, 1:] - band[:, :-1], 0.0)
        backbone[1:] = rise.sum(axis=0)
        backbone[0] = np.minimum(np.maximum(band[:, 0] - band.min(axis=1), 0.0), rise.max(axis=1)).sum()
    return {
        "full": full.astype(np.float32),
        "low": low.astype(np.float32),
        "high": high.astype(np.float32),
        "backbone": backbone,
    }


def beat_envelope(envs: dict[str, np.ndarray]) -> np.ndarray:
    """``(n_frames,)`` the onset envelope that tempo and beats are tracked on: standardised full, low and high bands.

    The bands between 150 Hz and 2 kHz, where chords and the upper bass
    harmonics live, count only through the full band: a stab or a bass
    octave jump on a syncopated off-beat (the "and" of 2 and 4) is a large
    onset there, and weighting that range up (as a below-500-Hz band would)
    lets such off-beats outvote the kick and snare for the beat phase. The
    low band keeps the kick, the high band the snare, hats and kick click.
    """
    return _normalise(envs["full"]) + _normalise(envs["low"]) + _normalise(envs["high"])


def _normalise(env: np.ndarray) -> np.ndarray:
    """Divide by the standard deviation (a silent envelope stays zero)."""
    sd = float(env.std())
    return env / sd if sd > 1e-9 else np.zeros_like(env)


def _autocorrelation(env: np.ndarray, max_lag: int) -> np.ndarray:
    """``(max_lag + 1,)`` autocorrelation of the mean-removed ``env``, 1 at lag 0 (all zero if flat)."""
    x = env - env.mean()
    n = len(x)
    n_fft = 1 << int(np.ceil(np.log2(max(2 * n, 2))))
    f = np.fft.rfft(x, n_fft)
    ac = np.fft.irfft(f * np.conj(f), n_fft)[: max_lag + 1]
    if len(ac) < max_lag + 1:
        ac = np.pad(ac, (0, max_lag + 1 - len(ac)))
    # Unbiased: divide by the overlap so long lags are not penalised for length.
    overlap = np.maximum(n - np.arange(max_lag + 1), 1)
    ac = ac / overlap
    return ac / ac[0] if ac[0] > 1e-12 else np.zeros_like(ac)


# ---------------------------------------------------------------------------
# Tempo


def _tempo_prior(tempo_bpm: np.ndarray | float) -> np.ndarray | float:
    """Log of a log-normal tempo prior (0 at ``PRIOR_CENTRE_BPM``), per BPM."""
    z = np.log2(np.asarray(tempo_bpm, dtype=np.float64) / PRIOR_CENTRE_BPM) / PRIOR_SIGMA_OCTAVES
    return -0.5 * z * z


def estimate_tempo(
    onset_env: np.ndarray,
    *,
    sr: int,
    hop_length: int,
    min_bpm: float = REFERENCE_RANGE_BPM[0],
    max_bpm: float = REFERENCE_RANGE_BPM[1],
) -> float:
    """Dominant beat-level pulse of an onset envelope, within ``[min_bpm, max_bpm]``.

    A comb over the autocorrelation at 1, 2, 3 and 4 periods scores each
    tempo, so a pulse wins by being regular at the beat and the bar scale
    rather than by one strong lag (which is how 8th-note hats double a
    tempo). The range is about one octave: the octave itself is decided later
    by ``beat_grid`` from other cues.

    Parameters
    ----------
    onset_env : np.ndarray
        ``(n_frames,)`` onset strength.
    sr : int
        sample rate (Hz).
    hop_length : int
        frame hop (samples).
    min_bpm, max_bpm : float
        the tempo range searched (BPM).

    Returns
    -------
    float
        tempo in BPM (``DEFAULT_TEMPO_BPM`` if the envelope has no pulse).
    """
    env = np.asarray(onset_env, dtype=np.float64)
    fps = sr / hop_length
    max_lag = int(np.ceil(4 * 60.0 * fps / min_bpm)) + 2
    ac = _autocorrelation(env, max_lag)
    if not np.any(ac[1:] > 0):
        return DEFAULT_TEMPO_BPM
    tempi = np.geomspace(min_bpm, max_bpm, 400)
    lags = 60.0 * fps / tempi
    k = np.arange(1, 5)[:, None]
    lag_k = k * lags[None, :]  # (4, n_tempi) fractional lags
    comb = np.interp(lag_k, np.arange(max_lag + 1), ac).sum(axis=0)
    # A faint prior only breaks near-ties at the range edges (60 vs 120).
    score = comb + 0.1 * _tempo_prior(tempi)
    return float(tempi[int(np.argmax(score))])


# ---------------------------------------------------------------------------
# Beat tracking


def _smooth_local_score(env: np.ndarray, period: float) -> np.ndarray:
    """Onset envelope convolved with a Gaussian of std ``period / 32`` frames (Ellis 2007)."""
    half = int(np.ceil(period))
    t = np.arange(-half, half + 1)
    window = np.exp(-0.5 * (t * 32.0 / period) ** 2)
    return np.convolve(env, window, mode="same")


def track_beats(
    onset_env: np.ndarray,
    tempo_bpm: float,
    *,
    sr: int,
    hop_length: int,
    tightness: float = TIGHTNESS,
) -> np.ndarray:
    """Beat times by dynamic programming on the onset envelope (Ellis 2007).

    Each frame's cumulative score is its local onset score plus the best
    predecessor between half and twice a period earlier, minus
    ``tightness * log(interval / period) ** 2``. Because a predecessor is at
    least half a period back, a whole half-period chunk of frames is scored
    at once from earlier chunks.

    Parameters
    ----------
    onset_env : np.ndarray
        ``(n_frames,)`` onset strength.
    tempo_bpm : float
        the expected tempo (BPM).
    sr : int
        sample rate (Hz).
    hop_length : int
        frame hop (samples).
    tightness : float
        how strongly intervals are held to the period.

    Returns
    -------
    np.ndarray
        ``(n_beats,)`` float64 beat times in seconds (empty if there is no onset energy).
    """
    env = np.asarray(onset_env, dtype=np.float64)
    n = len(env)
    fps = sr / hop_length
    if n < 3 or not np.any(env > 0) or not np.isfinite(tempo_bpm) or tempo_bpm <= 0:
        return np.zeros(0)
    period = 60.0 * fps / tempo_bpm
    local = _smooth_local_score(_normalise(env), period)

    d_min = max(1, int(round(period / 2)))
    d_max = max(d_min + 1, int(round(2 * period)))
    d = np.arange(d_min, d_max + 1)
    penalty = -tightness * np.log(d / period) ** 2

    # cum is stored after d_max slots of -inf, so a predecessor before the
    # first frame needs no mask.
    cum = np.full(n + d_max, -np.inf)
    cum[d_max : d_max + d_min] = local[:d_min]
    back = np.full(n, -1, dtype=np.int64)
    rel = np.arange(d_min)[:, None] - d[None, :]  # (chunk, n_d) predecessor offsets
    for start in range(d_min, n, d_min):
        stop = min(start + d_min, n)
        m = stop - start
        prev = rel[:m] + start  # frame indices of predecessors
        cand = cum[prev + d_max] + penalty
        best = cand.argmax(axis=1)
        best_score = cand[np.arange(m), best]
        # A beat may also start a new chain here (the first beat of the song).
        chain = best_score > 0
        cum[d_max + start : d_max + stop] = local[start:stop] + np.where(chain, best_score, 0.0)
        back[start:stop] = np.where(chain, prev[np.arange(m), best], -1)
    cum = cum[d_max:]

    # End on the best cumulative score: along a chain it grows with every
    # heard beat, and frames after the last beat only add penalties, so the
    # maximum is the last real beat even when the song ends in silence.
    last = int(np.argmax(cum))

    path = []
    i = last
    while i >= 0:
        path.append(i)
        i = int(back[i])
    frames = _trim_weak_beats(np.asarray(path[::-1], dtype=np.int64), local)
    # The lead correction must not put a beat after the last frame.
    frames = frames[frames + ONSET_LEAD_FRAMES <= n - 1]
    return (frames + ONSET_LEAD_FRAMES) * (hop_length / sr)


def _trim_weak_beats(frames: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Drop beats at the start and end whose local score is below half the RMS of the beats' scores.

    The DP keeps a steady chain going through silence (it costs nothing);
    beats there are not heard, so the grid starts where the music starts.
    """
    if len(frames) == 0:
        return frames
    strength = local[frames]
    threshold = 0.5 * np.sqrt(np.mean(strength**2))
    strong = np.flatnonzero(strength >= threshold)
    if len(strong) == 0:
        return frames[:0]
    return frames[strong[0] : strong[-1] + 1]


# ---------------------------------------------------------------------------
# Octave decision


def _octave_scores(
    spec: Spectrum,
    envs: dict[str, np.ndarray],
    sustained: SustainedSpectrum,
    beat_times: np.ndarray,
    tempo_bpm: float,
) -> dict[float, float]:
    """Score the metrical levels ``{0.5, 1, 2} x tempo_bpm`` given beats tracked at ``tempo_bpm``.

    Returns ``{multiplier: score}``; the highest score wins. Cues (see the
    module docstring): the log-normal prior; kick/snare ("backbone") onsets
    half-way between beats (evidence for 2x) or on alternate beats only
    (evidence for 0.5x); and ``bar_contrast``, the level whose bars of 4
    beats match the chord changes, weighted by how tonal the song is.
    """
    frames = beat_frames(beat_times, sr=spec.sr, hop_length=spec.hop_length, n_frames=spec.n_frames)
    scores = {m: float(_tempo_prior(m * tempo_bpm)) for m in (0.5, 1.0, 2.0)}
    if len(frames) < 8:
        return scores

    backbone = envs["backbone"]
    on = peak_near(backbone, frames)
    mid = peak_near(backbone, (frames[:-1] + frames[1:]) // 2)
    on_mean = float(on.mean())
    mid_ratio = alt_ratio = float("nan")
    if on_mean > 1e-9:
        # Kick/snare between the beats about as strong as on them: the beat
        # is twice as fast (a backbeat read at half speed). Off-beat hats do
        # not count here, which is what keeps 8th-note hats from doubling.
        # Symmetric, because the tracked beats may sit on either set of drums
        # (kicks on 1 and 3 or snares on 2 and 4 of the faster level).
        mid_mean = float(mid.mean())
        mid_ratio = min(mid_mean, on_mean) / max(mid_mean, on_mean)
        scores[2.0] += 2.0 * (mid_ratio - MID_RATIO_EVEN)
        # Every other beat without kick/snare: the beat may be half as fast.
        even, odd = float(on[0::2].mean()), float(on[1::2].mean())
        alt_ratio = min(even, odd) / max(even, odd, 1e-9)
        scores[0.5] += ALT_CUE_WEIGHT * (ALT_RATIO_UNEVEN - alt_ratio)

    # Chords change on bar lines: the level whose 4-beat bars best separate
    # harmony wins, each contrast relative to the best one, weighted by how
    # tonal the song is and how clear the best contrast is.
    contrast = bar_contrast(spec, frames, sustained=sustained)
    best = max(contrast.values())
    clarity = float(np.clip(best / BAR_CONTRAST_CLEAR, 0.0, 1.0))
    bar = {m: c / best if best > 1e-9 else 0.0 for m, c in contrast.items()}
    for m in scores:
        scores[m] += BAR_CUE_WEIGHT * sustained.tonal_weight * clarity * bar[m]
    log.debug(
        "octave cues at %.1f BPM: mid_ratio=%.2f alt_ratio=%.2f tonal=%.2f bar contrast=%s scores=%s",
        tempo_bpm,
        mid_ratio,
        alt_ratio,
        sustained.tonal_weight,
        {k: round(float(v), 3) for k, v in contrast.items()},
        {k: round(v, 2) for k, v in scores.items()},
    )
    return scores


def _half_level(beat_times: np.ndarray, backbone_on: np.ndarray) -> np.ndarray:
    """Every other beat: the alternate set with the stronger kick/snare onsets ``backbone_on`` ``(n_beats,)``."""
    if len(beat_times) < 2:
        return beat_times
    phase = 0 if backbone_on[0::2].mean() >= backbone_on[1::2].mean() else 1
    return beat_times[phase::2]


# ---------------------------------------------------------------------------
# Confidence


def grid_confidence(onset_env: np.ndarray, beat_times: np.ndarray, *, sr: int, hop_length: int) -> float:
    """0..1: whether the song has a steady pulse and the beats sit on it.

    The smaller of two scores, each mapped linearly onto 0..1 between the
    bounds of its constant:

    - pulse (``CONFIDENCE_PULSE``): the autocorrelation of ``onset_env`` at
      the median beat period (the best within 2 frames of it). A steady
      pulse repeats at its period (0.3-0.9 on the rhythmic songs of the
      real-music corpus' dev half); onsets at random times, free-tempo
      orchestral music or a drone do not (-0.05-0.15);
    - contrast (``CONFIDENCE_CONTRAST``): the mean of ``onset_env``'s peaks
      (within 2 frames) at the beats over its mean at the quarter, half and
      three-quarter points between them, so that a steady pulse the beats
      miss is not trusted either.

    Parameters
    ----------
    onset_env : np.ndarray
        ``(n_frames,)`` the envelope the beats were tracked on.
    beat_times : np.ndarray
        ``(n_beats,)`` seconds.
    sr : int
        sample rate (Hz).
    hop_length : int
        frame hop (samples).

    Returns
    -------
    float
        confidence in [0, 1]; 0 with under 8 beats.
    """
    frames = beat_frames(beat_times, sr=sr, hop_length=hop_length, n_frames=len(onset_env))
    if len(frames) < 8:
        return 0.0
    env = np.asarray(onset_env, dtype=np.float64)
    on = float(peak_near(env, frames).mean())
    if on <= 1e-9:
        return 0.0
    a, b = frames[:-1], frames[1:]
    between = np.concatenate([(3 * a + b) // 4, (a + b) // 2, (a + 3 * b) // 4])
    off = float(peak_near(env, between).mean())
    contrast = on / off if off > 1e-9 else np.inf
    period = int(round(float(np.median(np.diff(frames)))))
    ac = _autocorrelation(env, period + 2)
    pulse = float(ac[max(1, period - 2) : period + 3].max())

    def scale(x: float, bounds: tuple[float, float]) -> float:
        return float(np.clip((x - bounds[0]) / (bounds[1] - bounds[0]), 0.0, 1.0))

    return min(scale(pulse, CONFIDENCE_PULSE), scale(contrast, CONFIDENCE_CONTRAST))


# ---------------------------------------------------------------------------
# The grid


def _fit_tempo(beat_times: np.ndarray) -> float | None:
    """Tempo (BPM) from a least-squares line through beat time against beat index; None if under 2 beats."""
    if len(beat_times) < 2:
        return None
    idx = np.arange(len(beat_times), dtype=np.float64)
    slope = np.polyfit(idx, beat_times, 1)[0]
    return float(60.0 / slope) if slope > 0 else None


# The learned tracker's downbeats: weight of the network's downbeat share
# (downbeat / (beat + downbeat) activation at each beat, z-scored) beside
# ``downbeat_evidence``; chosen on the dev half of the real-music corpus.
LEARNED_DOWNBEAT_WEIGHT = 0.5
# The octave check (``engine.beat_dbn.faster_level``) and the trimming of weak
# edge beats, switchable for the benches that measure them.
LEARNED_OCTAVE_CHECK = True
LEARNED_TRIM_EDGES = True


def learned_beat_grid(spec: Spectrum, envs: dict[str, np.ndarray] | None = None) -> Grid | None:
    """The grid from BeatNet's beat/downbeat activation (``engine.beat_activation``) and ``engine.beat_dbn``.

    Beats: the hidden-Markov decoding of the summed beat and downbeat
    activations, at twice the tempo where ``beat_dbn.faster_level`` asks for
    it, without the weak beats at either edge (``_trim_weak_beats``). Bars: ``detect_beats_per_bar``, then the Viterbi pass over
    the position in the bar with ``downbeat_evidence`` plus the network's
    downbeat share. None when ``spec`` holds no 22,050-Hz signal, the clip
    is under a second, or fewer than 4 beats are found.

    Raises
    ------
    engine.beat_activation.ActivationUnavailable
        its weight files (``models/beatnet``) are missing.
    """
    from editorbot.engine import beat_activation, beat_dbn

    if spec.y is None or spec.sr != beat_activation.SR or len(spec.y) < spec.sr:
        return None
    envs = envs if envs is not None else band_onsets(spec)
    act = beat_activation.activations(spec.y)
    beat_act = act.sum(axis=1)
    beat_frames = beat_dbn.decode_beats(beat_act, beat_activation.FPS)
    faster = beat_dbn.faster_level(beat_act, beat_frames, beat_activation.FPS) if LEARNED_OCTAVE_CHECK else None
    if faster is not None:
        beat_frames = faster
    if LEARNED_TRIM_EDGES and len(beat_frames):
        # As the onset tracker does: the decoder keeps a steady chain through
        # a lead-in without a pulse (a riser, a pad), so weak beats at the
        # edges go and the grid starts where the beats start.
        local = np.zeros(len(beat_act))
        local[beat_frames] = beat_dbn.peak_near(beat_act, beat_frames)
        beat_frames = _trim_weak_beats(beat_frames, local)
    if len(beat_frames) >= 2:
        # A beat in the song's last half beat would span a sliver of audio
        # (33 ms on one corpus track) that an edit could keep on its own; the
        # sliver goes with the beat before it instead (beat_spans' fold).
        end_frame = len(spec.y) / spec.sr * beat_activation.FPS
        beat_frames = beat_frames[beat_frames <= end_frame - 0.5 * float(np.median(np.diff(beat_frames)))]
    if len(beat_frames) < 4:
        return None
    beats = beat_frames / beat_activation.FPS
    sustained = sustained_spectrum(spec)
    beats_per_bar = detect_beats_per_bar(spec, beats, sustained=sustained)
    evidence = downbeat_evidence(spec, beats, envs=envs, sustained=sustained, beats_per_bar=beats_per_bar)
    lo = np.clip(beat_frames - 2, 0, len(act) - 1)
    hi = np.clip(beat_frames + 3, 1, len(act))
    share = np.array([act[a:b, 1].max() / max(float(act[a:b].sum(axis=1).max()), 1e-6) for a, b in zip(lo, hi)])
    evidence = evidence + LEARNED_DOWNBEAT_WEIGHT * zscore(share)
    downbeats = np.flatnonzero(viterbi_bar_positions(evidence, beats_per_bar) == 0).astype(np.int64)
    # The median interval, not the least-squares line of the onset tracker:
    # the HMM follows tempo changes, and a song with a slower section would
    # get a global tempo that none of its sections has. Measured over spans
    # of TEMPO_SPAN_BEATS beats, because one interval is a whole number of
    # 20-ms frames (140 BPM would read as 142.9).
    span = min(TEMPO_SPAN_BEATS, len(beats) - 1)
    tempo = 60.0 * span / float(np.median(beats[span:] - beats[:-span]))
    confidence = grid_confidence(beat_envelope(envs), beats, sr=spec.sr, hop_length=spec.hop_length)
    log.info(
        "learned grid: %.2f BPM, %d beats, %d bars, confidence %.2f", tempo, len(beats), len(downbeats), confidence
    )
    return Grid(
        tempo_bpm=float(tempo),
        beat_times=np.asarray(beats, dtype=np.float64),
        downbeats=downbeats,
        beats_per_bar=int(beats_per_bar),
        phrase_starts=phrase_starts(len(beats), downbeats),
        confidence=confidence,
    )


def beat_grid(spec: Spectrum, *, tracker: str | None = None) -> Grid:
    """Tempo, beats, downbeats and phrases of a song from its spectrum.

    Parameters
    ----------
    spec : Spectrum
        the shared STFT of the 22,050 Hz analysis signal.
    tracker : str | None
        ``"learned"`` (``learned_beat_grid``, falling back to ``"onset"``
        where it finds no grid) or ``"onset"`` (the steps of the module
        docstring); None: ``default_tracker()`` (``"learned"`` unless
        ``$EDITORBOT_TRACKER`` says otherwise).

    Returns
    -------
    Grid
        a ``Grid``. Silence or a clip too short for a pulse gives
        ``DEFAULT_TEMPO_BPM`` (or the best estimate) and whatever beats were found.

    Examples
    --------
    >>> import numpy as np
    >>> from engine.spectrum import compute_spectrum
    >>> y = np.zeros(22050 * 10, dtype=np.float32)
    >>> y[::11025] = 1.0  # a click every 0.5 s at 22,050 Hz: 120 BPM
    >>> grid = beat_grid(compute_spectrum(y), tracker="onset")
    >>> round(grid.tempo_bpm), grid.n_beats
    (120, 20)
    """
    sr, hop = spec.sr, spec.hop_length
    if not np.all(np.isfinite(spec.mel_db)):
        spec = dataclasses.replace(
            spec,
            magnitude=np.nan_to_num(spec.magnitude, nan=0.0, posinf=0.0, neginf=0.0),
            mel_db=np.nan_to_num(spec.mel_db, nan=-100.0, posinf=0.0, neginf=-100.0),
        )
    envs = band_onsets(spec)
    env = beat_envelope(envs)
    tracker = default_tracker() if tracker is None else tracker
    if tracker == "learned":
        learned = learned_beat_grid(spec, envs)
        if learned is not None:
            return learned
    elif tracker != "onset":
        raise ValueError(f"unknown tracker {tracker!r} (one of {', '.join(TRACKERS)})")
    reference_bpm = estimate_tempo(env, sr=sr, hop_length=hop)
    beats = track_beats(env, reference_bpm, sr=sr, hop_length=hop)

    sustained = sustained_spectrum(spec)
    scores = _octave_scores(spec, envs, sustained, beats, reference_bpm)
    multiplier = max(scores, key=lambda m: scores[m])
    frames = beat_frames(beats, sr=sr, hop_length=hop, n_frames=spec.n_frames)
    if multiplier == 2.0:
        # Tracked again at the faster level rather than by adding midpoints:
        # at the slower level a groove whose kicks and snares fall on
        # alternate beats offers two competing phases (kick beats or snare
        # beats), and a switch between them at a section change would
        # squeeze or drop beats.
        beats = track_beats(env, 2.0 * reference_bpm, sr=sr, hop_length=hop)
    elif multiplier == 0.5:
        beats = _half_level(beats, peak_near(envs["backbone"], frames))
    tempo = _fit_tempo(beats) or multiplier * reference_bpm

    beats_per_bar = detect_beats_per_bar(spec, beats, sustained=sustained)
    downbeats = find_downbeats(spec, beats, beats_per_bar=beats_per_bar, envs=envs, sustained=sustained)
    phrases = phrase_starts(len(beats), downbeats)
    confidence = grid_confidence(env, beats, sr=sr, hop_length=hop)
    log.info(
        "grid: %.2f BPM (reference %.2f x %g), %d beats, %d bars, %d phrases, confidence %.2f",
        tempo,
        reference_bpm,
        multiplier,
        len(beats),
        len(downbeats),
        len(phrases),
        confidence,
    )
    return Grid(
        tempo_bpm=float(tempo),
        beat_times=np.asarray(beats, dtype=np.float64),
        downbeats=downbeats,
        beats_per_bar=beats_per_bar,
        phrase_starts=phrases,
        confidence=confidence,
    )
