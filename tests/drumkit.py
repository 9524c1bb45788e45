"""Deterministic synthetic drum songs with known beats and downbeats.

Used by the beat-grid tests: every song comes with its ground truth, so tempo,
beat and downbeat accuracy can be measured without any external audio.

Instruments are synthesized from scratch: a kick (pitched sine sweep with a
click), a snare (noise burst plus a tone), a closed hi-hat (high-passed noise),
and, on accented downbeats, a bass note whose pitch changes from bar to bar
plus a crash cymbal at the start of every 4-bar group. Every hit gets a few
milliseconds of human timing jitter and a little velocity variation, and the
whole mix gets a low noise floor.

Patterns are written on a 16-step grid per 4/4 bar (step = one 16th note):

- ``four_on_floor``: kick on every beat, clap/snare on 2 and 4, open-ish hats
  on the off-beat 8ths (the classic source of double-tempo errors).
- ``backbeat``: rock beat, kick on 1 and 3 (plus the "and" of 3), snare on 2
  and 4, hats on 8ths.
- ``halftime``: kick on 1, snare on 3, hats on 8ths: the kick/snare pulse is
  half the tempo, so only the hats and the bar accents tell the true tempo.
- ``breakbeat``: syncopated kick, snare on 2 and 4 with ghost notes, busy
  16th hats accented on the 8ths.
"""

from __future__ import annotations

import numpy as np

PATTERNS: dict[str, dict[str, list[tuple[int, float]]]] = {
    # instrument -> list of (16th step in bar, velocity)
    "four_on_floor": {
        "kick": [(0, 1.0), (4, 1.0), (8, 1.0), (12, 1.0)],
        "snare": [(4, 0.8), (12, 0.8)],
        "hat": [(2, 0.9), (6, 0.9), (10, 0.9), (14, 0.9)],
    },
    "backbeat": {
        "kick": [(0, 1.0), (8, 1.0), (10, 0.7)],
        "snare": [(4, 1.0), (12, 1.0)],
        "hat": [(s, 0.8 if s % 4 == 0 else 0.6) for s in range(0, 16, 2)],
    },
    "halftime": {
        "kick": [(0, 1.0), (3, 0.6)],
        "snare": [(8, 1.0)],
        "hat": [(s, 0.8 if s % 4 == 0 else 0.55) for s in range(0, 16, 2)],
    },
    "breakbeat": {
        "kick": [(0, 1.0), (2, 0.8), (10, 0.9)],
        "snare": [(4, 1.0), (7, 0.35), (9, 0.35), (12, 1.0), (15, 0.35)],
        "hat": [(s, 0.7 if s % 2 == 0 else 0.4) for s in range(16)],
    },
}

# Bass roots (Hz) cycled bar by bar when downbeats are accented: a chord-root
# change on every downbeat, as in most popular music.
_BASS_ROOTS_HZ = (55.0, 73.42, 65.41, 49.0, 61.74, 82.41, 58.27, 69.3)


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` kick drum: exponential pitch sweep 160 -> 48 Hz with a short click."""
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    freq = 48.0 + 112.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    body = np.sin(phase) * np.exp(-t / 0.12)
    click = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.3
    return (body + click).astype(np.float32)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` snare drum: a 190 Hz tone plus a decaying, slightly brightened noise burst."""
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05) * 0.6
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0) * 0.5 + noise * 0.5  # tilt towards the highs
    return (tone + noise * np.exp(-t / 0.06) * 0.5).astype(np.float32)


def _hat(sr: int, rng: np.random.Generator, decay_s: float = 0.035) -> np.ndarray:
    """``(n,)`` closed hi-hat: second difference of white noise (a crude high-pass) with a fast decay."""
    n = int(0.12 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 2), n=2)
    return (noise * np.exp(-t / decay_s) * 0.12).astype(np.float32)


def _crash(sr: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` crash cymbal: long, bright noise decay."""
    n = int(1.5 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 1))
    return (noise * np.exp(-t / 0.45) * 0.12).astype(np.float32)


def _bass(sr: int, freq_hz: float, dur_s: float) -> np.ndarray:
    """``(n,)`` bass note: a sine with two harmonics, soft attack and release, ``dur_s`` long."""
    n = int(dur_s * sr)
    t = np.arange(n) / sr
    wave = np.sin(2 * np.pi * freq_hz * t) + 0.4 * np.sin(4 * np.pi * freq_hz * t) + 0.15 * np.sin(6 * np.pi * freq_hz * t)
    env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (dur_s - t) / 0.05) * np.exp(-t / 1.5)
    return (wave * env * 0.35).astype(np.float32)


def _add(y: np.ndarray, sound: np.ndarray, start_s: float, gain: float, sr: int) -> None:
    """Mix ``sound`` into ``y`` at ``start_s`` seconds (clipped at the ends)."""
    i = int(round(start_s * sr))
    if i >= len(y) or i + len(sound) <= 0:
        return
    lo = max(0, -i)
    hi = min(len(sound), len(y) - i)
    y[i + lo : i + hi] += gain * sound[lo:hi]


def drum_song(
    bpm: float,
    *,
    seconds: float,
    sr: int = 22050,
    pattern: str = "four_on_floor",
    swing: float = 0.0,
    seed: int = 0,
    accent_downbeat: bool = True,
    drift: float = 0.0,
    pickup_beats: int = 0,
    start_s: float = 0.2,
    jitter_s: float = 0.003,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthesize a drum song with known beats.

    Parameters
    ----------
    bpm : float
        tempo at the start (beats per minute).
    seconds : float
        length of the output (seconds).
    sr : int
        sample rate (Hz).
    pattern : str
        one of ``PATTERNS``.
    swing : float
        0 = straight; 1 = full triplet swing (off-beat 8ths and 16ths
        are delayed to 2/3 of their pair). Values around 0.3-0.6 are "mild".
    seed : int
        random seed; the same arguments give the same samples.
    accent_downbeat : bool
        add a bass note on every downbeat (pitch changes each
        bar) and a crash every 4 bars.
    drift : float
        relative tempo change over the song, linear in time
        (0.03 = 3% faster at the end).
    pickup_beats : int
        beats of pattern (taken from the end of a bar) before
        the first downbeat.
    start_s : float
        time of the first beat (seconds).
    jitter_s : float
        standard deviation of the per-hit timing jitter (seconds).

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        ``y``: ``(n_samples,)`` float32 mono signal, peak about 0.9.
        ``beat_times``: ``(n_beats,)`` float64 seconds of every beat inside the signal.
        ``downbeat_indices``: ``(n_bars,)`` int indices into ``beat_times`` of bar starts.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {sorted(PATTERNS)}")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    y = np.zeros(n, dtype=np.float32)

    # Beat times from a linearly drifting tempo: the period shrinks/grows with
    # elapsed time, so beat k is the running sum of periods.
    period0 = 60.0 / bpm
    beat_times = [start_s]
    while beat_times[-1] < seconds + 2 * period0:
        frac = min(1.0, beat_times[-1] / max(seconds, 1e-9))
        beat_times.append(beat_times[-1] + period0 / (1.0 + drift * frac))
    beats = np.asarray(beat_times)
    n_beats_all = len(beats)
    bar_pos = (np.arange(n_beats_all) - pickup_beats) % 4  # position of each beat in its bar
    downbeat_all = np.flatnonzero(bar_pos == 0)

    kits = {"kick": _kick(sr, rng), "snare": _snare(sr, rng), "hat": _hat(sr, rng)}
    crash = _crash(sr, rng)
    pat = PATTERNS[pattern]

    def step_time(beat_index: int, sub: int) -> float:
        """Time of 16th ``sub`` (0-3) of beat ``beat_index``, with swing on the off-beats."""
        period = beats[beat_index + 1] - beats[beat_index] if beat_index + 1 < n_beats_all else period0
        # Straight positions 0, .25, .5, .75 of the beat; swing delays the second
        # of each pair (8th off-beat at .5 -> up to 2/3; 16ths likewise within an 8th).
        pos8 = 0.5 + swing * (2.0 / 3.0 - 0.5) if sub >= 2 else 0.0
        pos16 = (0.25 + swing * (1.0 / 3.0 - 0.25)) if sub % 2 == 1 else 0.0
        return beats[beat_index] + period * (pos8 + pos16)

    for b in range(n_beats_all - 1):
        for name, hits in pat.items():
            for step, vel in hits:
                if step // 4 != bar_pos[b]:
                    continue
                t = step_time(b, step % 4) + rng.normal(0.0, jitter_s)
                gain = vel * rng.uniform(0.85, 1.0)
                _add(y, kits[name], t, gain, sr)
    if accent_downbeat:
        for k, b in enumerate(downbeat_all):
            if b + 4 >= n_beats_all:
                break
            bar_s = beats[b + 4] - beats[b]
            root = _BASS_ROOTS_HZ[k % len(_BASS_ROOTS_HZ)]
            _add(y, _bass(sr, root, bar_s * 0.95), beats[b], 1.0, sr)
            if k % 4 == 0:
                _add(y, crash, beats[b] + rng.normal(0.0, jitter_s), 1.0, sr)

    y += rng.normal(0.0, 1e-3, n).astype(np.float32)  # about -60 dBFS noise floor
    y *= 0.9 / max(float(np.abs(y).max()), 1e-9)

    inside = np.flatnonzero(beats < seconds)
    beat_out = beats[inside]
    down_out = np.flatnonzero(np.isin(inside, downbeat_all))
    return y.astype(np.float32), beat_out.astype(np.float64), down_out.astype(np.int64)


def chord_song(
    bpm: float,
    *,
    seconds: float,
    sr: int = 22050,
    seed: int = 0,
    beats_per_bar: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-drum music: a bass note on every beat and a chord that changes every bar.

    ``beats_per_bar`` = 3 gives a waltz (bass root on 1, the chord's fifth on 2 and 3).

    The chord (three sine-ish voices with soft attacks) follows I-vi-IV-V in
    C; the bass plays the chord root on each beat with a plucked envelope.
    There are no drums, so the beat must come from note onsets and harmony.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        ``y`` ``(n_samples,)`` float32, ``beat_times`` ``(n_beats,)`` seconds,
        ``downbeat_indices`` ``(n_bars,)`` indices into ``beat_times``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    y = np.zeros(n, dtype=np.float32)
    period = 60.0 / bpm
    beats = np.arange(0.25, seconds, period)
    chords_midi = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
    bar_s = beats_per_bar * period
    for k, b in enumerate(beats):
        chord = chords_midi[(k // beats_per_bar) % len(chords_midi)]
        jitter = rng.normal(0.0, 0.003)
        # Bass: root two octaves down (the fifth off the downbeat in 3/4), plucked.
        note = chord[0] if beats_per_bar == 4 or k % beats_per_bar == 0 else chord[2]
        f = 440.0 * 2 ** ((note - 24 - 69) / 12)
        m = int(period * sr)
        t = np.arange(m) / sr
        pluck = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * np.exp(-t / 0.25) * np.minimum(1.0, t / 0.004)
        _add(y, (0.5 * pluck).astype(np.float32), b + jitter, 1.0, sr)
        if k % beats_per_bar == 0:
            m = int(bar_s * sr)
            t = np.arange(m) / sr
            env = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (bar_s - t) / 0.05)
            pad = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((p - 69) / 12) * t) for p in chord)
            _add(y, (0.15 * pad * env).astype(np.float32), b + jitter, 1.0, sr)
    y += rng.normal(0.0, 1e-3, n).astype(np.float32)
    y *= 0.9 / max(float(np.abs(y).max()), 1e-9)
    return y, beats.astype(np.float64), np.arange(0, len(beats), beats_per_bar, dtype=np.int64)
