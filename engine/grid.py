"""Tempo, beats, downbeats, bars and 16-beat phrases (DESIGN section 3).

The grid is computed from the shared ``Spectrum`` (no second STFT):

1. Onset envelopes from ``mel_db``: the full-band spectral flux, a
   "kick/snare" flux (mel bands below 500 Hz) and a low band (below 150 Hz).
2. A reference pulse ``X`` in 60-130 BPM: the tempo whose comb over the onset
   autocorrelation (lags of 1-4 beats) is strongest. Any song's beat sits at
   ``X/2``, ``X`` or ``2X``, so the octave decision is a choice among three.
3. Beats at ``X`` by Ellis-style dynamic programming (vectorised in chunks of
   half a period, because no beat can depend on a frame less than half a
   period before it), which follows swing and small tempo drift.
4. The octave decision among ``X/2, X, 2X`` with three cues: a log-normal
   tempo prior around 115 BPM, kick/snare activity half-way between the
   ``X`` beats (a backbeat at ``2X`` puts drums there, off-beat hats do not),
   and metrical regularity: the bar (the period of bass / chord changes)
   should last 4 beats, not 2 or 8.
5. Downbeats: a Viterbi pass over the position-in-bar of each beat, with
   beat-synchronous evidence from harmonic change (chroma and low-band
   spectral shape) and low-band onsets.
6. Phrases: every 16 beats from the first downbeat, snapped to downbeats.

Everything is vectorised over frames; the Python loops run over beats or over
half-period chunks (a few hundred to a few thousand iterations for a
4-minute song).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d

from engine.spectrum import Spectrum, onset_strength

log = logging.getLogger(__name__)

DEFAULT_TEMPO_BPM = 120.0
PRIOR_CENTRE_BPM = 115.0
PRIOR_SIGMA_OCTAVES = 0.8
REFERENCE_RANGE_BPM = (72.0, 144.0)
TIGHTNESS = 100.0
# The dB flux of the centred 2048-sample Hann STFT peaks when an attack is
# about one hop before the frame centre (measured on isolated clicks, noise
# bursts and kicks: 20-29 ms early at hop 512 / 22,050 Hz), so beat frames are
# reported one hop later.
ONSET_LEAD_FRAMES = 1
PHRASE_BEATS = 16


@dataclass(frozen=True)
class Grid:
    """The beat grid of a song.

    Attributes:
        tempo_bpm: global tempo (beats per minute), from a least-squares fit
            of beat times against beat index.
        beat_times: ``(n_beats,)`` float64 seconds, strictly increasing.
        downbeats: ``(n_bars,)`` int64 indices into ``beat_times`` of bar starts.
        beats_per_bar: beats in a bar (4 unless detected otherwise).
        phrase_starts: ``(n_phrases,)`` int64 indices into ``beat_times``: one
            every 16 beats starting at the first downbeat (beats before it are
            a pickup), each on a downbeat.
    """

    tempo_bpm: float
    beat_times: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int
    phrase_starts: np.ndarray

    @property
    def n_beats(self) -> int:
        return int(self.beat_times.shape[0])


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

    Returns:
        ``"full"``: mean positive dB flux over all mel bands (``onset_strength``);
        ``"kick_snare"``: the same over mel bands below 500 Hz, where kicks,
        snare bodies and bass live but hi-hats barely reach;
        ``"low"``: the same below 150 Hz (kick and bass).
    """
    full = onset_strength(spec)
    centres = _mel_centres_hz(spec.mel_db.shape[0], spec.sr / 2.0)
    n_ks = max(1, int(np.searchsorted(centres, 500.0)))
    n_low = max(1, int(np.searchsorted(centres, 150.0)))
    sub = spec.mel_db[:n_ks]
    flux = np.zeros_like(sub)
    np.maximum(sub[:, 1:] - sub[:, :-1], 0.0, out=flux[:, 1:])
    ks = flux.mean(axis=0)
    low = flux[:n_low].mean(axis=0)
    return {"full": full.astype(np.float32), "kick_snare": ks.astype(np.float32), "low": low.astype(np.float32)}


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
    by ``beat_grid`` from other cues. Parameters:
        onset_env: ``(n_frames,)`` onset strength.
        sr: sample rate (Hz); hop_length: frame hop (samples).
    Returns:
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

    Parameters:
        onset_env: ``(n_frames,)`` onset strength.
        tempo_bpm: the expected tempo (BPM).
        sr: sample rate (Hz); hop_length: frame hop (samples).
        tightness: how strongly intervals are held to the period.
    Returns:
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

    cum = np.zeros(n)
    back = np.full(n, -1, dtype=np.int64)
    cum[:d_min] = local[:d_min]
    for start in range(d_min, n, d_min):
        t = np.arange(start, min(start + d_min, n))
        prev = t[:, None] - d[None, :]
        cand = np.where(prev >= 0, cum[np.maximum(prev, 0)] + penalty, -np.inf)
        best = np.argmax(cand, axis=1)
        best_score = cand[np.arange(len(t)), best]
        # A beat may also start a new chain here (the first beat of the song).
        chain = best_score > 0
        cum[t] = local[t] + np.where(chain, best_score, 0.0)
        back[t] = np.where(chain, prev[np.arange(len(t)), best], -1)

    # End on the best cumulative score: along a chain it grows with every
    # heard beat, and frames after the last beat only add penalties, so the
    # maximum is the last real beat even when the song ends in silence.
    last = int(np.argmax(cum))

    frames = []
    i = last
    while i >= 0:
        frames.append(i)
        i = int(back[i])
    frames = np.asarray(frames[::-1], dtype=np.int64)
    frames = _trim_weak_beats(frames, local)
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
# Beat-synchronous cues


def _beat_frames(beat_times: np.ndarray, *, sr: int, hop_length: int, n_frames: int) -> np.ndarray:
    """``(n_beats,)`` int onset-envelope frame of each beat time (undoing ``ONSET_LEAD_FRAMES``), clipped to the frames."""
    frames = np.round(np.asarray(beat_times) * (sr / hop_length)).astype(np.int64) - ONSET_LEAD_FRAMES
    return np.clip(frames, 0, max(n_frames - 1, 0))


def _peak_near(env: np.ndarray, frames: np.ndarray, radius: int = 2) -> np.ndarray:
    """``(len(frames),)`` maximum of ``env`` within ``radius`` frames of each frame."""
    if len(frames) == 0:
        return np.zeros(0)
    offsets = np.arange(-radius, radius + 1)
    idx = np.clip(frames[:, None] + offsets[None, :], 0, len(env) - 1)
    return env[idx].max(axis=1)


def _segment_means(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``(n_rows, n_beats)`` mean of the columns of ``x`` over each beat's span ``[f_i, f_{i+1})``.

    The last beat's span is one median beat long (clipped at the end).
    """
    n = x.shape[1]
    if len(frames) == 0:
        return np.zeros((x.shape[0], 0), dtype=np.float64)
    step = int(np.median(np.diff(frames))) if len(frames) > 1 else 1
    bounds = np.concatenate([frames, [min(n, frames[-1] + max(step, 1))]])
    bounds = np.maximum.accumulate(np.clip(bounds, 0, n))
    lengths = np.diff(bounds)
    starts = np.minimum(bounds[:-1], n - 1)
    sums = np.add.reduceat(x, starts, axis=1).astype(np.float64)
    # reduceat returns x[:, start] for an empty span; a zero-length span has no content.
    sums[:, lengths == 0] = 0.0
    return sums / np.maximum(lengths, 1)[None, :]


def _chroma_matrix(n_bins: int, *, sr: int, n_fft: int, fmin_hz: float = 60.0, fmax_hz: float = 2100.0) -> tuple[slice, np.ndarray]:
    """Hard pitch-class assignment of STFT bins between ``fmin_hz`` and ``fmax_hz``.

    Returns ``(bins, matrix)``: the slice of bins used and a ``(12, n_used)``
    0/1 matrix mapping them to pitch classes (C = 0).
    """
    freqs = np.arange(n_bins) * (sr / n_fft)
    lo = int(np.searchsorted(freqs, fmin_hz))
    hi = int(np.searchsorted(freqs, fmax_hz))
    f = freqs[lo:hi]
    pitch_class = np.round(12.0 * np.log2(f / 440.0) + 69.0).astype(np.int64) % 12
    m = np.zeros((12, len(f)), dtype=np.float32)
    m[pitch_class, np.arange(len(f))] = 1.0
    return slice(lo, hi), m


def _cosine_change(x: np.ndarray) -> np.ndarray:
    """``(n_beats,)`` 1 - cosine similarity of each column of ``x`` to the previous one (0 for the first)."""
    norm = np.linalg.norm(x, axis=0)
    xn = x / np.maximum(norm, 1e-12)[None, :]
    change = np.zeros(x.shape[1])
    if x.shape[1] > 1:
        change[1:] = 1.0 - np.sum(xn[:, 1:] * xn[:, :-1], axis=0)
        # A beat next to a silent one has no harmonic content to compare.
        silent = norm < 1e-9
        change[1:][silent[1:] | silent[:-1]] = 0.0
    return change


def harmonic_change(spec: Spectrum, beat_frames: np.ndarray) -> np.ndarray:
    """``(n_beats,)`` change of harmony at each beat versus the previous beat, in [0, 1].

    The mean of two cosine distances between consecutive beat spans: chroma
    (60-2100 Hz) and the low-band magnitude spectrum (20-430 Hz, where a bass
    note change shows even when the chroma resolution is poor).
    """
    bins, chroma_map = _chroma_matrix(spec.magnitude.shape[0], sr=spec.sr, n_fft=spec.n_fft)
    hi = max(bins.stop, 41)
    # A running minimum over ~0.2 s keeps sustained notes and drops drum
    # hits, so a kick/snare pattern does not read as a change of harmony.
    width = max(1, int(round(0.2 * spec.sr / spec.hop_length)))
    sustained = minimum_filter1d(spec.magnitude[:hi], size=width, axis=1, mode="nearest")
    mags = _segment_means(sustained, beat_frames)
    chroma = chroma_map @ mags[bins]
    low = np.sqrt(mags[2:41])
    return 0.5 * _cosine_change(chroma) + 0.5 * _cosine_change(low)


def _lag_correlation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """``(max_lag + 1,)`` normalised autocorrelation of a beat-level sequence (0 where undefined)."""
    xc = x - x.mean()
    var = float(np.mean(xc * xc))
    out = np.zeros(max_lag + 1)
    if var <= 1e-12:
        return out
    out[0] = 1.0
    for k in range(1, min(max_lag, len(x) - 2) + 1):
        out[k] = float(np.mean(xc[k:] * xc[:-k])) / var
    return out


# ---------------------------------------------------------------------------
# Octave decision


def _octave_scores(
    spec: Spectrum, envs: dict[str, np.ndarray], beat_times: np.ndarray, tempo_bpm: float
) -> dict[float, float]:
    """Score the metrical levels ``{0.5, 1, 2} x tempo_bpm`` given beats tracked at ``tempo_bpm``.

    Returns ``{multiplier: score}``; the highest score wins. Cues (see module docstring):
    log-normal prior; kick/snare onsets half-way between beats (for 2x) and on
    alternate beats (for 0.5x); and the bar length of harmonic change, which
    should be 4 beats at the true level.
    """
    frames = _beat_frames(beat_times, sr=spec.sr, hop_length=spec.hop_length, n_frames=spec.n_frames)
    scores = {m: float(_tempo_prior(m * tempo_bpm)) for m in (0.5, 1.0, 2.0)}
    if len(frames) < 8:
        return scores

    ks = envs["kick_snare"]
    on = _peak_near(ks, frames)
    mid = _peak_near(ks, (frames[:-1] + frames[1:]) // 2)
    on_mean = float(on.mean())
    if on_mean > 1e-9:
        # Drums between the beats as strong as on them: the beat is twice as fast.
        mid_ratio = float(mid.mean()) / on_mean
        even, odd = float(on[0::2].mean()), float(on[1::2].mean())
        alt_ratio = min(even, odd) / max(even, odd, 1e-9)
        scores[2.0] += 1.0 * (mid_ratio - 0.5)
        # Every other beat much weaker: the beat may be half as fast.
        scores[0.5] += 1.0 * (0.5 - alt_ratio)
    else:
        mid_ratio = alt_ratio = float("nan")

    change = harmonic_change(spec, frames)
    a = _lag_correlation(change, 8)
    # Bars last 4 beats: the harmonic change repeats at 4 beats of the true
    # level and not at half that.
    bar = {2.0: a[2] - a[1], 1.0: a[4] - a[2], 0.5: a[8] - a[4]}
    for m in scores:
        scores[m] += 2.0 * bar[m]
    log.debug(
        "octave cues at %.1f BPM: mid_ratio=%.2f alt_ratio=%.2f bar=%s scores=%s",
        tempo_bpm, mid_ratio, alt_ratio, {k: round(float(v), 2) for k, v in bar.items()},
        {k: round(v, 2) for k, v in scores.items()},
    )
    return scores


def _change_level(beat_times: np.ndarray, multiplier: float, ks_on: np.ndarray) -> np.ndarray:
    """Beats at ``multiplier`` (0.5, 1 or 2) times the tracked level.

    2x inserts midpoints (the tracked beats already follow drift); 0.5x keeps
    the alternate beats with the stronger kick/snare onsets.
    """
    if multiplier == 2.0 and len(beat_times) > 1:
        out = np.empty(2 * len(beat_times) - 1)
        out[0::2] = beat_times
        out[1::2] = 0.5 * (beat_times[:-1] + beat_times[1:])
        return out
    if multiplier == 0.5 and len(beat_times) > 1:
        phase = 0 if ks_on[0::2].mean() >= ks_on[1::2].mean() else 1
        return beat_times[phase::2]
    return beat_times


# ---------------------------------------------------------------------------
# Downbeats and phrases


def _viterbi_bar_positions(evidence: np.ndarray, beats_per_bar: int, switch_cost: float = 4.0) -> np.ndarray:
    """``(n_beats,)`` position in bar (0 = downbeat) of each beat.

    Maximises the summed ``evidence`` of beats labelled 0 while positions
    advance by one per beat; jumping elsewhere costs ``switch_cost`` (so a
    beat the tracker dropped or added re-aligns the bars instead of shifting
    every later downbeat).
    """
    n = len(evidence)
    states = np.arange(beats_per_bar)
    trans = np.full((beats_per_bar, beats_per_bar), -switch_cost)
    trans[states, (states + 1) % beats_per_bar] = 0.0  # trans[from, to]
    emit = np.zeros((n, beats_per_bar))
    emit[:, 0] = evidence
    score = emit[0].copy()
    back = np.zeros((n, beats_per_bar), dtype=np.int64)
    for i in range(1, n):
        cand = score[:, None] + trans
        back[i] = np.argmax(cand, axis=0)
        score = cand[back[i], states] + emit[i]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x, dtype=np.float64)


def downbeat_evidence(spec: Spectrum, beat_times: np.ndarray, *, envs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """``(n_beats,)`` how much each beat looks like a bar start (z-scored, unitless).

    Harmonic change (chords and bass notes change on the downbeat) weighs
    most; low-band onsets (kick, bass attack) and full-band onsets (crash)
    add to it.
    """
    envs = envs if envs is not None else band_onsets(spec)
    frames = _beat_frames(beat_times, sr=spec.sr, hop_length=spec.hop_length, n_frames=spec.n_frames)
    if len(frames) == 0:
        return np.zeros(0)
    change = harmonic_change(spec, frames)
    low = _peak_near(envs["low"], frames)
    full = _peak_near(envs["full"], frames)
    return _zscore(change) + 0.5 * _zscore(low) + 0.25 * _zscore(full)


def find_downbeats(
    spec: Spectrum,
    beat_times: np.ndarray,
    *,
    beats_per_bar: int = 4,
    envs: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Indices into ``beat_times`` of the bar starts.

    Parameters:
        spec: the song's spectrum.
        beat_times: ``(n_beats,)`` seconds.
        beats_per_bar: beats in a bar.
        envs: onset envelopes from ``band_onsets`` (recomputed if omitted).
    Returns:
        ``(n_bars,)`` int64 increasing indices.
    """
    n = len(beat_times)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    evidence = downbeat_evidence(spec, beat_times, envs=envs)
    if not np.any(evidence != 0):
        return np.arange(0, n, beats_per_bar, dtype=np.int64)
    positions = _viterbi_bar_positions(evidence, beats_per_bar)
    return np.flatnonzero(positions == 0).astype(np.int64)


def phrase_starts(n_beats: int, downbeats: np.ndarray, *, phrase_beats: int = PHRASE_BEATS) -> np.ndarray:
    """Indices of phrase starts: every ``phrase_beats`` beats from the first downbeat.

    Each start snaps to the nearest downbeat within half a bar of where it is
    due, so phrases stay on bar lines if the bar phase shifts; beats before
    the first downbeat are a pickup and start no phrase.

    Parameters:
        n_beats: number of beats.
        downbeats: ``(n_bars,)`` increasing indices into the beats.
        phrase_beats: phrase length in beats.
    Returns:
        ``(n_phrases,)`` int64 increasing indices.
    """
    downbeats = np.asarray(downbeats, dtype=np.int64)
    if n_beats <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(downbeats) == 0:
        return np.arange(0, n_beats, phrase_beats, dtype=np.int64)
    bar = int(np.median(np.diff(downbeats))) if len(downbeats) > 1 else 4
    starts = [int(downbeats[0])]
    while True:
        due = starts[-1] + phrase_beats
        if due >= n_beats:
            break
        near = downbeats[np.abs(downbeats - due) <= bar // 2]
        nxt = int(near[np.argmin(np.abs(near - due))]) if len(near) else due
        starts.append(max(nxt, starts[-1] + 1))
    return np.asarray(starts, dtype=np.int64)


# ---------------------------------------------------------------------------
# The grid


def _fit_tempo(beat_times: np.ndarray) -> float | None:
    """Tempo (BPM) from a least-squares line through beat time against beat index; None if under 2 beats."""
    if len(beat_times) < 2:
        return None
    idx = np.arange(len(beat_times), dtype=np.float64)
    slope = np.polyfit(idx, beat_times, 1)[0]
    return float(60.0 / slope) if slope > 0 else None


def beat_grid(spec: Spectrum) -> Grid:
    """Tempo, beats, downbeats and phrases of a song from its spectrum.

    Parameters:
        spec: the shared STFT of the 22,050 Hz analysis signal.
    Returns:
        a ``Grid``. Silence or a clip too short for a pulse gives
        ``DEFAULT_TEMPO_BPM`` (or the best estimate) and whatever beats were found.
    """
    sr, hop = spec.sr, spec.hop_length
    if not np.all(np.isfinite(spec.mel_db)):
        spec = Spectrum(
            magnitude=np.nan_to_num(spec.magnitude, nan=0.0, posinf=0.0, neginf=0.0),
            mel_db=np.nan_to_num(spec.mel_db, nan=-100.0, posinf=0.0, neginf=-100.0),
            sr=sr, n_fft=spec.n_fft, hop_length=hop,
        )
    envs = band_onsets(spec)
    env = _normalise(envs["full"]) + _normalise(envs["kick_snare"])
    reference_bpm = estimate_tempo(env, sr=sr, hop_length=hop)
    beats = track_beats(env, reference_bpm, sr=sr, hop_length=hop)

    scores = _octave_scores(spec, envs, beats, reference_bpm)
    multiplier = max(scores, key=scores.get)
    frames = _beat_frames(beats, sr=sr, hop_length=hop, n_frames=spec.n_frames)
    beats = _change_level(beats, multiplier, _peak_near(envs["kick_snare"], frames))
    tempo = _fit_tempo(beats) or multiplier * reference_bpm

    beats_per_bar = 4
    downbeats = find_downbeats(spec, beats, beats_per_bar=beats_per_bar, envs=envs)
    phrases = phrase_starts(len(beats), downbeats)
    log.info(
        "grid: %.2f BPM (reference %.2f x %g), %d beats, %d bars, %d phrases",
        tempo, reference_bpm, multiplier, len(beats), len(downbeats), len(phrases),
    )
    return Grid(
        tempo_bpm=float(tempo),
        beat_times=np.asarray(beats, dtype=np.float64),
        downbeats=downbeats,
        beats_per_bar=beats_per_bar,
        phrase_starts=phrases,
    )
