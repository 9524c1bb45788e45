"""Deterministic multi-instrument song synthesizer with known structure.

Nobody has a library of (raw song, edited song) pairs, so the training data
starts from songs whose beat grid, bars, phrases and sections are known
exactly. ``synth_song(seed)`` renders one such song: drums (kick, snare or
clap, closed and open hats, crash on section starts, fills), a mono bass
following the chord roots, chords (pads or stabs of detuned saw/triangle
voices through a lowpass), and a phrase-structured lead melody in key with
vibrato, mixed to stereo through a light master bus.

Everything random comes from ``np.random.default_rng(seed)`` (and generators
spawned from it), so the same seed and arguments give byte-identical samples.

Timing model (all ground truth):

- ``beat_times[i] = offset_s + i * 60 / tempo_bpm``: beats are never moved.
- Bars are 4 beats; ``downbeats = [0, 4, 8, ...]``; phrases are 16 beats and
  every section is a whole number of phrases, so a song is a whole number of
  phrases long (``duration_s`` is rounded to the nearest phrase, which is
  also a bar line), followed by a short release tail.
- Swing delays off-beat subdivisions only: with 8th swing the "and" of each
  beat moves from 0.5 to ``0.5 + swing / 2`` beats; with 16th swing the
  second and fourth 16ths move by ``swing / 4`` beats. Positions on a beat
  map to themselves.
- The notated beat is the beat a listener would tap. Every drum family but
  half-time puts its snare or clap on 2 and 4 of the notated tempo and its
  hats on the beats; half-time (kick on 1, snare on 3) is used only at
  135-155 BPM, where hats on every beat carry the notated tempo, because
  above that it is heard at half the notated tempo. From 155 BPM up every
  song is a drum & bass breakbeat. Chords change on bar lines (one chord
  per bar), and the bass, where it plays, starts every bar on the chord root.

Speed: notes and drum hits are rendered once per distinct (pitch, length,
timbre) and added into the mix by slicing, so a one-minute song takes a few
hundred milliseconds on one core.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from scipy import signal

logger = logging.getLogger(__name__)

BEATS_PER_BAR = 4
BEATS_PER_PHRASE = 16
STEPS_PER_BEAT = 4  # patterns are written on a 16th-note grid
STEPS_PER_BAR = BEATS_PER_BAR * STEPS_PER_BEAT
TEMPO_RANGE_BPM = (70.0, 180.0)
DURATION_RANGE_S = (60.0, 240.0)
PEAK_DBFS = -1.0

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
# Chord progressions as 0-based scale degrees, one chord per bar (4 bars = 1 phrase).
PROGRESSIONS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 5, 4), (0, 2, 3, 4), (3, 4, 2, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 3, 4, 0), (0, 5, 3, 4), (5, 6, 0, 0), (3, 4, 5, 6)),
}
INSTRUMENTS = ("kick", "snare", "hats", "open_hat", "crash", "bass", "chords", "lead")
DRUM_FAMILIES = ("four_on_the_floor", "backbeat", "half_time", "breakbeat")

# Drum patterns: instrument -> ((step, velocity), ...) on the 16-step bar.
_Pattern = dict[str, tuple[tuple[int, float], ...]]
_DRUM_PATTERNS: dict[str, tuple[_Pattern, ...]] = {
    "four_on_the_floor": (
        {
            "kick": ((0, 1.0), (4, 0.9), (8, 0.95), (12, 0.9)),
            "snare": ((4, 0.9), (12, 0.9)),
            "hats": ((0, 0.5), (2, 0.9), (4, 0.5), (6, 0.9), (8, 0.5), (10, 0.9), (12, 0.5), (14, 0.9)),
            "open_hat": ((2, 0.7), (6, 0.7), (10, 0.7), (14, 0.7)),
        },
        {
            "kick": ((0, 1.0), (4, 0.9), (8, 0.95), (12, 0.9)),
            "snare": ((4, 0.9), (12, 0.9), (15, 0.35)),
            "hats": tuple((s, 0.9 if s % 4 == 2 else (0.55 if s % 4 == 0 else 0.35)) for s in range(16)),
            "open_hat": ((6, 0.6), (14, 0.7)),
        },
    ),
    "backbeat": (
        {
            "kick": ((0, 1.0), (7, 0.6), (8, 0.9)),
            "snare": ((4, 0.95), (12, 0.95)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.6) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.6),),
        },
        {
            "kick": ((0, 1.0), (8, 0.85), (10, 0.7)),
            "snare": ((4, 0.95), (12, 0.95)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else (0.6 if s % 2 == 0 else 0.35)) for s in range(16)),
            "open_hat": ((6, 0.5),),
        },
    ),
    "half_time": (
        {
            "kick": ((0, 1.0), (10, 0.7)),
            "snare": ((8, 1.0),),
            "hats": tuple((s, 0.95 if s % 4 == 0 else 0.45) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.5),),
        },
        {
            "kick": ((0, 1.0), (3, 0.5), (10, 0.75)),
            "snare": ((8, 1.0), (15, 0.3)),
            "hats": tuple((s, 0.95) for s in range(0, 16, 4)) + ((6, 0.4), (14, 0.4)),
            "open_hat": ((2, 0.45),),
        },
    ),
    "breakbeat": (
        {
            "kick": ((0, 1.0), (10, 0.85)),
            "snare": ((4, 1.0), (7, 0.3), (9, 0.3), (12, 1.0)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.55) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.5),),
        },
        {
            "kick": ((0, 1.0), (8, 0.55), (10, 0.85)),
            "snare": ((4, 1.0), (12, 1.0), (14, 0.35)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.5) for s in range(0, 16, 2)),
            "open_hat": ((6, 0.5),),
        },
    ),
}
# Bass rhythms: ((step, length_steps, interval_semitones), ...); every one starts on step 0.
_BASS_PATTERNS: tuple[tuple[tuple[int, int, int], ...], ...] = (
    tuple((s, 2, 12 if s in (6, 14) else 0) for s in range(0, 16, 2)),
    ((0, 3, 0), (3, 3, 0), (6, 2, 12), (8, 3, 0), (11, 3, 0), (14, 2, 7)),
    ((0, 6, 0), (6, 2, 0), (8, 4, 0), (12, 2, 7), (14, 2, 12)),
    ((0, 2, 0), (2, 2, 0), (6, 2, 0), (10, 2, 0), (14, 2, 0)),
    ((0, 4, 0), (4, 2, 0), (8, 4, 0), (12, 2, 12), (14, 2, 0)),
)
_BASS_SPARSE = ((0, 8, 0), (8, 8, 0))
_STAB_RHYTHMS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 2), (6, 2), (10, 2)),
    ((0, 3), (4, 1), (8, 3), (12, 1)),
    ((0, 2), (2, 2), (6, 2), (10, 2), (14, 2)),
    ((0, 4), (6, 2), (8, 4), (14, 2)),
)
# Lead rhythm cells for one bar: ((step, length_steps), ...).
_LEAD_CELLS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 4), (4, 2), (6, 2), (8, 6), (14, 2)),
    ((0, 6), (6, 2), (8, 4), (12, 4)),
    ((2, 2), (4, 4), (8, 2), (10, 2), (12, 4)),
    ((0, 3), (3, 3), (6, 2), (8, 8)),
    ((0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 2), (14, 2)),
    ((0, 8), (10, 2), (12, 4)),
)


@dataclass
class Section:
    """One section of a synthesized song.

    Attributes
    ----------
    name : str
        "intro", "verse", "chorus", "bridge" or "outro".
    start_beat : int
        index of the section's first beat in ``Song.beat_times``.
    n_beats : int
        length in beats, a multiple of 16 (whole phrases).
    energy : float
        0..1, how full and loud the section is.
    instruments : tuple[str, ...]
        names from ``INSTRUMENTS`` playing in this section.
    """

    name: str
    start_beat: int
    n_beats: int
    energy: float
    instruments: tuple[str, ...]


@dataclass
class Song:
    """A synthesized song and its exact structure.

    Attributes
    ----------
    samples : np.ndarray
        ``(2, n_samples)`` float32 stereo, peak at -1 dBFS.
    sample_rate : int
        Hz.
    tempo_bpm : float
        beats per minute (constant).
    beat_times : np.ndarray
        ``(n_beats,)`` float64 seconds of every beat.
    downbeats : np.ndarray
        ``(n_bars,)`` int indices into ``beat_times`` of beat 1 of each bar.
    sections : list[Section]
        in order, covering every beat exactly once.
    key : str
        e.g. ``"A minor"``.
    seed : int
        the seed the song was made from.
    swing : float
        0..0.3, delay of off-beat subdivisions (see module docstring).
    swing_grid : int
        8 or 16, which subdivision swings.
    drum_family : str
        one of ``DRUM_FAMILIES``.
    offset_s : float
        time of the first beat in seconds (silence or a riser before it).
    """

    samples: np.ndarray
    sample_rate: int
    tempo_bpm: float
    beat_times: np.ndarray
    downbeats: np.ndarray
    sections: list[Section]
    key: str
    seed: int
    swing: float
    swing_grid: int = 8
    drum_family: str = "backbeat"
    offset_s: float = 0.0

    @property
    def duration_s(self) -> float:
        """Length of ``samples`` in seconds."""
        return self.samples.shape[1] / self.sample_rate

    @property
    def phrase_starts(self) -> np.ndarray:
        """``(n_phrases,)`` int indices into ``beat_times`` of each phrase's first beat."""
        return np.arange(0, len(self.beat_times), BEATS_PER_PHRASE)

    def labels(self) -> dict:
        """JSON-ready ground truth: tempo, beats, downbeats, sections and song parameters."""
        return {
            "seed": self.seed,
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
            "tempo_bpm": self.tempo_bpm,
            "key": self.key,
            "swing": self.swing,
            "swing_grid": self.swing_grid,
            "drum_family": self.drum_family,
            "offset_s": self.offset_s,
            "beat_times": [float(t) for t in self.beat_times],
            "downbeats": [int(i) for i in self.downbeats],
            "sections": [
                {
                    "name": s.name,
                    "start_beat": s.start_beat,
                    "n_beats": s.n_beats,
                    "energy": s.energy,
                    "instruments": list(s.instruments),
                }
                for s in self.sections
            ],
        }


# --------------------------------------------------------------------------- timing


def swing_warp(pos_beats: np.ndarray, swing: float, grid: int = 8) -> np.ndarray:
    """Map straight positions (in beats) to swung positions (in beats).

    Piecewise linear inside each swing unit (a beat for ``grid=8``, half a beat
    for ``grid=16``): the unit's start stays, its midpoint moves later by
    ``swing / 2`` of the unit. Whole beats never move.

    Parameters
    ----------
    pos_beats : np.ndarray
        ``(n,)`` positions in beats from the first beat.
    swing : float
        0..0.3 (0 = straight).
    grid : int
        8 or 16.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64 swung positions in beats.
    """
    pos = np.asarray(pos_beats, dtype=np.float64)
    if swing <= 0.0:
        return pos.copy()
    unit = 1.0 if grid == 8 else 0.5
    scaled = pos / unit
    k = np.floor(scaled + 1e-9)
    f = np.clip(scaled - k, 0.0, 1.0)
    mid = 0.5 + swing / 2.0
    g = np.where(f < 0.5, f * (mid / 0.5), mid + (f - 0.5) * ((1.0 - mid) / 0.5))
    return (k + g) * unit


# --------------------------------------------------------------------------- oscillators and envelopes


def _phase(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Phase in cycles ``(n,)`` float32 in [0, 1) and per-sample increment ``(n,)`` for a (possibly varying) frequency."""
    if np.ndim(freq_hz) == 0:
        inc = np.full(n, float(freq_hz) / sr, dtype=np.float32)
        ph = np.arange(n, dtype=np.float32) * np.float32(float(freq_hz) / sr) + np.float32(phase0)
    else:
        inc = (np.asarray(freq_hz, dtype=np.float64) / sr).astype(np.float32)
        ph = np.cumsum(inc) - inc + np.float32(phase0)
    ph -= np.floor(ph)
    return ph, inc


def _polyblep(ph: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """PolyBLEP residual ``(n,)`` that removes most aliasing from a saw step at phase 0."""
    out = np.zeros_like(ph)
    lo = ph < inc
    t = ph[lo] / inc[lo]
    out[lo] = t + t - t * t - 1.0
    hi = ph > 1.0 - inc
    t = (ph[hi] - 1.0) / inc[hi]
    out[hi] = t * t + t + t + 1.0
    return out


def _saw(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth ``(n,)`` float64 in [-1, 1]."""
    ph, inc = _phase(freq_hz, n, sr, phase0)
    return 2.0 * ph - 1.0 - _polyblep(ph, inc)


def _square(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited square ``(n,)`` as the difference of two half-cycle-apart saws."""
    ph, inc = _phase(freq_hz, n, sr, phase0)
    ph2 = (ph + 0.5) % 1.0
    return 0.5 * ((2.0 * ph - 1.0 - _polyblep(ph, inc)) - (2.0 * ph2 - 1.0 - _polyblep(ph2, inc)))


def _triangle(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Triangle ``(n,)`` in [-1, 1] (naive; its harmonics fall fast enough)."""
    ph, _ = _phase(freq_hz, n, sr, phase0)
    return 2.0 * np.abs(2.0 * ph - 1.0) - 1.0


def _adsr(n: int, sr: int, attack_s: float, decay_s: float, sustain: float, release_s: float, gate_n: int) -> np.ndarray:
    """Envelope ``(n,)``: linear attack, exponential decay to ``sustain``, exponential release after ``gate_n`` samples."""
    t = np.arange(n) / sr
    a = max(attack_s, 1e-4)
    env = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - a, 0.0) / max(decay_s, 1e-4))
    env = np.where(t < a, t / a, env)
    gate_s = gate_n / sr
    level_at_gate = float(np.interp(gate_s, t, env)) if gate_n < n else float(env[-1])
    rel = level_at_gate * np.exp(-np.maximum(t - gate_s, 0.0) / max(release_s / 4.0, 1e-4))
    env = np.where(t < gate_s, env, rel)
    return env


def _midi_hz(midi: float) -> float:
    """Frequency in Hz of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _sos(kind: str, cutoff_hz: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    """Butterworth second-order sections for ``kind`` in {"lowpass", "highpass", "bandpass"}."""
    nyq = sr / 2.0
    if isinstance(cutoff_hz, tuple):
        wn: float | tuple[float, float] = (min(cutoff_hz[0], nyq * 0.95), min(cutoff_hz[1], nyq * 0.97))
    else:
        wn = min(cutoff_hz, nyq * 0.97)
    return signal.butter(order, wn, btype=kind, fs=sr, output="sos")


def _pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains for ``pan`` in [-1, 1] (0 = centre, -3 dB each)."""
    angle = (pan + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


# --------------------------------------------------------------------------- mixing buffer


class _Bus:
    """A stereo float32 buffer ``(2, n_samples)`` that notes are added into by slicing."""

    def __init__(self, n_samples: int) -> None:
        self.buf = np.zeros((2, n_samples), dtype=np.float32)

    def add(self, start: int, wave: np.ndarray, gain_l: float, gain_r: float | None = None) -> None:
        """Add ``wave`` (``(m,)`` mono or ``(2, m)`` stereo) at sample ``start``, clipped to the buffer."""
        n = self.buf.shape[1]
        m = wave.shape[-1]
        lo = max(start, 0)
        hi = min(start + m, n)
        if hi <= lo:
            return
        seg = wave[..., lo - start : hi - start]
        if gain_r is None:
            gain_r = gain_l
        if seg.ndim == 1:
            self.buf[0, lo:hi] += gain_l * seg
            self.buf[1, lo:hi] += gain_r * seg
        else:
            self.buf[0, lo:hi] += gain_l * seg[0]
            self.buf[1, lo:hi] += gain_r * seg[1]


# --------------------------------------------------------------------------- drum kit


class _DrumKit:
    """Per-song drum sounds, each rendered once (a few variants) and reused for every hit.

    Waveforms are float32, mono ``(m,)`` for kick/snare and stereo ``(2, m)``
    for hats and crash (independent noise per channel gives width).
    """

    def __init__(self, rng: np.random.Generator, sr: int, use_clap: bool) -> None:
        self.sr = sr
        self.kick = self._kick(rng)
        self.snare = [self._clap(rng) if use_clap else self._snare(rng) for _ in range(2)]
        hat_tone = rng.uniform(0.9, 1.15)
        closed_decay = rng.uniform(0.025, 0.05)
        self.hats = [self._metal(rng, 0.12, closed_decay, hat_tone, 7000.0) for _ in range(4)]
        self.open_hat = [self._metal(rng, 0.7, rng.uniform(0.18, 0.3), hat_tone, 6000.0) for _ in range(2)]
        self.crash = self._metal(rng, 2.5, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.3), 3500.0, noise_mix=0.7)

    def _t(self, length_s: float) -> np.ndarray:
        """``(m,)`` time axis in seconds for a sound of ``length_s``."""
        return np.arange(int(length_s * self.sr)) / self.sr

    def _kick(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` kick: sine swept down from 150-260 Hz to 42-60 Hz, driven, plus a beater click."""
        t = self._t(0.5)
        f_start, f_end = rng.uniform(150.0, 260.0), rng.uniform(42.0, 60.0)
        sweep_s, decay_s = rng.uniform(0.02, 0.045), rng.uniform(0.16, 0.32)
        freq = f_end + (f_start - f_end) * np.exp(-t / sweep_s)
        body = np.sin(2.0 * np.pi * np.cumsum(freq) / self.sr) * np.exp(-t / decay_s)
        # Beater click: a few ms of band-passed noise, added after the drive so it stays audible.
        click = signal.sosfilt(_sos("bandpass", (1500.0, 8000.0), self.sr), rng.standard_normal(len(t)))
        click *= np.exp(-t / rng.uniform(0.004, 0.008)) / (np.max(np.abs(click[: int(0.01 * self.sr)])) + 1e-9)
        drive = rng.uniform(1.0, 2.5)
        x = np.tanh(drive * body) / np.tanh(drive) + rng.uniform(0.25, 0.45) * click
        x[: int(0.001 * self.sr)] *= np.linspace(0.0, 1.0, int(0.001 * self.sr))
        return x.astype(np.float32)

    def _snare(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` snare: two-partial tone body plus band-passed noise with its own decay."""
        t = self._t(0.4)
        f1 = rng.uniform(170.0, 240.0)
        body = (np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * 1.6 * f1 * t)) * np.exp(-t / rng.uniform(0.03, 0.07))
        noise = signal.sosfilt(_sos("bandpass", (1200.0, 9000.0), self.sr), rng.standard_normal(len(t)))
        noise *= np.exp(-t / rng.uniform(0.07, 0.18))
        x = 0.6 * body + 1.4 * noise
        return (x / np.max(np.abs(x))).astype(np.float32)

    def _clap(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` clap: band-passed noise with three quick bursts and a short tail."""
        t = self._t(0.4)
        noise = signal.sosfilt(_sos("bandpass", (900.0, 5000.0), self.sr), rng.standard_normal(len(t)))
        env = np.exp(-t / rng.uniform(0.08, 0.16))
        for burst_s in (0.0, 0.009, 0.019):
            env = env + (t >= burst_s) * np.exp(-np.maximum(t - burst_s, 0.0) / 0.004)
        x = noise * env
        return (x / np.max(np.abs(x))).astype(np.float32)

    def _metal(
        self,
        rng: np.random.Generator,
        length_s: float,
        decay_s: float,
        tone: float,
        highpass_hz: float,
        noise_mix: float = 0.5,
    ) -> np.ndarray:
        """Hat/cymbal: six inharmonic squares (808 ratios) plus noise, highpassed; ``(2, m)``."""
        t = self._t(length_s)
        n = len(t)
        metal = sum(_square(f * tone, n, self.sr, rng.uniform()) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
        sos = _sos("highpass", highpass_hz, self.sr, order=4)
        env = np.exp(-t / decay_s) * np.minimum(t / 0.0005, 1.0)
        chans = []
        for _ in range(2):
            x = (1.0 - noise_mix) * metal / 6.0 + noise_mix * rng.standard_normal(n)
            chans.append(signal.sosfilt(sos, x) * env)
        x = np.stack(chans)
        return (x / np.max(np.abs(x))).astype(np.float32)


# --------------------------------------------------------------------------- song plan


@dataclass
class SongPlan:
    """Every choice a seed makes, drawn before any audio is rendered.

    ``plan_song`` returns one without rendering (cheap: for picking seeds by
    tempo, family or form); ``synth_song`` renders the same plan. Steps are
    16th notes within a bar (0..15); patterns are tuples of steps.

    Attributes
    ----------
    tempo_bpm : float
        beats per minute.
    swing : float
        0..0.3, see ``swing_warp``.
    swing_grid : int
        8 or 16.
    offset_s : float
        time of the first beat (s).
    riser : bool
        a noise swell fills it.
    root : int
        key root pitch class (0 = C).
    mode : str
        a key of ``MODES``.
    progressions : dict[str, tuple[int, ...]]
        section name -> one scale degree per bar (4 bars).
    seventh_chords : bool
        four-note chords instead of triads.
    drum_family : str
        one of ``DRUM_FAMILIES``.
    drum_variant : int
        pattern index.
    use_clap : bool
        clap instead of snare.
    bass_pattern : tuple[tuple[int, int, int], ...]
        ``((step, length_steps, interval_semitones), ...)`` per bar.
    chord_style : str
        "pad" or "stab".
    stab_rhythm : tuple[tuple[int, int], ...]
        ``((step, length_steps), ...)``.
    sections : list[Section]
        the form, covering every beat.
    tail_s : float
        release tail after the last bar (s).
    duck_depth : float
        0..1 sidechain dip of bass and chords under each kick.
    """

    tempo_bpm: float
    swing: float
    swing_grid: int
    offset_s: float
    riser: bool
    root: int
    mode: str
    progressions: dict[str, tuple[int, ...]]
    seventh_chords: bool
    drum_family: str
    drum_variant: int
    use_clap: bool
    bass_pattern: tuple[tuple[int, int, int], ...]
    chord_style: str
    stab_rhythm: tuple[tuple[int, int], ...]
    sections: list[Section] = field(default_factory=list)
    tail_s: float = 2.0
    duck_depth: float = 0.3


def _choose_family(rng: np.random.Generator, tempo_bpm: float) -> str:
    """Drum pattern family for a tempo (one draw from ``rng`` whatever the tempo).

    Fast tempos (155 BPM and up) get drum & bass breakbeats only, with the
    snare on 2 and 4 of the notated tempo: a half-time groove there (snare
    on 3, kick and snare a bar apart) is heard at half the notated tempo, so
    its notated beat would not be the beat a listener taps. Half-time stays
    at 135-155 BPM, where its hats keep the notated beat audible.
    """
    choices: tuple[str, ...]
    weights: tuple[float, ...]
    if tempo_bpm < 95.0:
        choices, weights = ("backbeat", "breakbeat", "four_on_the_floor"), (0.5, 0.35, 0.15)
    elif tempo_bpm < 135.0:
        choices, weights = ("four_on_the_floor", "backbeat", "breakbeat"), (0.4, 0.4, 0.2)
    elif tempo_bpm < 155.0:
        choices, weights = ("four_on_the_floor", "breakbeat", "backbeat", "half_time"), (0.3, 0.3, 0.2, 0.2)
    else:
        choices, weights = ("breakbeat",), (1.0,)
    return str(rng.choice(choices, p=np.asarray(weights) / np.sum(weights)))


def _section_names(n_phrases: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """Song form as (name, n_phrases) blocks summing to ``n_phrases``."""
    if n_phrases == 1:
        return [("verse", 1)]
    if n_phrases == 2:
        return [("verse", 1), ("chorus", 1)]
    if n_phrases == 3:
        return [("intro", 1), ("verse", 1), ("chorus", 1)]
    intro = 2 if n_phrases >= 12 and rng.random() < 0.4 else 1
    outro = 2 if n_phrases >= 14 and rng.random() < 0.3 else 1
    middle = n_phrases - intro - outro
    block = 2 if middle >= 6 else 1
    order = ["verse", "chorus", "verse", "chorus", "bridge", "chorus"]
    blocks: list[tuple[str, int]] = []
    i = 0
    while middle > 0:
        name = order[i] if i < len(order) else ("verse", "chorus")[(i - len(order)) % 2]
        size = min(1 if name == "bridge" and rng.random() < 0.5 else block, middle)
        blocks.append((name, size))
        middle -= size
        i += 1
    if len(blocks) >= 2 and blocks[-1][0] == "verse" and blocks[-2][0] == "chorus":
        blocks[-1] = ("chorus", blocks[-1][1])
    merged: list[tuple[str, int]] = []
    for name, size in blocks:
        if merged and merged[-1][0] == name:
            merged[-1] = (name, merged[-1][1] + size)
        else:
            merged.append((name, size))
    return [("intro", intro)] + merged + [("outro", outro)]


def _make_sections(n_phrases: int, rng: np.random.Generator) -> list[Section]:
    """Sections with energy and instrumentation per section."""
    energy_range = {"intro": (0.2, 0.35), "verse": (0.45, 0.6), "chorus": (0.85, 1.0), "bridge": (0.35, 0.55), "outro": (0.2, 0.35)}
    sections = []
    beat = 0
    for k, (name, phrases) in enumerate(_section_names(n_phrases, rng)):
        energy = float(round(rng.uniform(*energy_range[name]), 3))
        if name == "intro":
            inst = ["kick", "hats", "chords"] + (["bass"] if rng.random() < 0.3 else [])
        elif name == "verse":
            inst = ["kick", "snare", "hats", "bass", "chords"] + (["lead"] if rng.random() < 0.35 else [])
        elif name == "chorus":
            inst = ["kick", "snare", "hats", "open_hat", "bass", "chords", "lead"]
        elif name == "bridge":
            inst = ["kick", "hats", "bass", "chords"] + (["snare"] if rng.random() < 0.6 else []) + (["lead"] if rng.random() < 0.5 else [])
        else:  # outro
            inst = ["kick", "hats", "chords"] + (["bass"] if rng.random() < 0.5 else [])
        if k > 0 and energy >= 0.4:
            inst.append("crash")
        sections.append(
            Section(
                name=name,
                start_beat=beat,
                n_beats=phrases * BEATS_PER_PHRASE,
                energy=energy,
                instruments=tuple(i for i in INSTRUMENTS if i in inst),
            )
        )
        beat += phrases * BEATS_PER_PHRASE
    return sections


def _make_plan(
    rng: np.random.Generator, duration_s: float | None, tempo_bpm: float | None
) -> SongPlan:
    """Draw every song-level choice from ``rng`` (always in the same order, whatever the arguments)."""
    drawn_tempo = float(np.round(rng.uniform(*TEMPO_RANGE_BPM), 2))
    drawn_duration = float(rng.uniform(*DURATION_RANGE_S))
    tempo = float(tempo_bpm) if tempo_bpm is not None else drawn_tempo
    duration = float(duration_s) if duration_s is not None else drawn_duration
    # Draw every value unconditionally so a forced tempo or duration leaves the other choices alone.
    swings, offsets, coins = rng.uniform(0.08, 0.3), rng.uniform(0.05, 2.0), rng.random(4)
    offset_s = 0.0 if coins[2] < 0.4 else float(np.round(offsets, 4))
    riser = bool(offset_s > 0.6 and coins[3] < 0.6)
    root = int(rng.integers(12))
    mode = str(rng.choice(tuple(MODES)))
    family_modes = "major" if mode in ("major", "mixolydian") else "minor"
    progs = PROGRESSIONS[family_modes]
    order = rng.permutation(len(progs))
    verse = progs[order[0]]
    chorus = verse if rng.random() < 0.5 else progs[order[1]]
    bridge = progs[order[2]]
    progressions = {"intro": verse, "verse": verse, "chorus": chorus, "bridge": bridge, "outro": chorus}
    family = _choose_family(rng, tempo)
    # Swing as players and drum machines use it: 8th-note shuffle for backbeat
    # grooves at moderate tempos, MPC-style 16th swing for electronic
    # families; the swing ratio shrinks as the tempo rises.
    swing_grid = 8 if family == "backbeat" and (tempo < 130.0 or coins[1] < 0.3) else 16
    max_swing = 0.3 - 0.2 * float(np.clip((tempo - 110.0) / 70.0, 0.0, 1.0))
    swing = float(np.round(swings * max_swing / 0.3, 3)) if coins[0] < 0.35 else 0.0
    variant, bass_pick, stab_pick = (int(v) for v in rng.integers(0, 1 << 30, size=3))
    more_coins = rng.random(3)
    pattern = _DRUM_PATTERNS[family][variant % len(_DRUM_PATTERNS[family])]
    beat_s = 60.0 / tempo
    n_phrases = max(1, int(round(duration / (BEATS_PER_PHRASE * beat_s))))
    return SongPlan(
        tempo_bpm=tempo,
        swing=swing,
        swing_grid=swing_grid,
        offset_s=offset_s,
        riser=riser,
        root=root,
        mode=mode,
        progressions=progressions,
        seventh_chords=bool(more_coins[0] < 0.4),
        drum_family=family,
        drum_variant=variant % len(_DRUM_PATTERNS[family]),
        use_clap=bool(family == "four_on_the_floor" and more_coins[1] < 0.6),
        bass_pattern=_bass_patterns_for(family, pattern)[bass_pick % len(_bass_patterns_for(family, pattern))],
        chord_style="pad" if more_coins[2] < 0.5 else "stab",
        stab_rhythm=_stab_rhythms_for(family)[stab_pick % len(_stab_rhythms_for(family))],
        sections=_make_sections(n_phrases, rng),
        tail_s=float(rng.uniform(1.5, 3.0)),
        # Sidechain ducking of bass and chords under the kick: deep "pumping" for four-on-the-floor.
        # (an electronic-dance hallmark; other grooves only breathe a little).
        duck_depth=float(0.4 + 0.35 * more_coins[2]) if family == "four_on_the_floor" else float(0.1 * more_coins[1]),
    )


def _bass_patterns_for(family: str, drums: _Pattern) -> list[tuple[tuple[int, int, int], ...]]:
    """Bass rhythms that suit a drum family.

    Off-beat ("pumping") bass belongs to four-on-the-floor, where the kick
    holds the beat; breakbeats (drum & bass at fast tempos) get long notes
    that change on the downbeat or on beat 3; half-time grooves get a bass
    locked to the kick (an 808 line) or notes on the beats.
    """
    if family == "four_on_the_floor":
        return list(_BASS_PATTERNS)
    if family == "backbeat":
        return [p for k, p in enumerate(_BASS_PATTERNS) if k != 3]
    if family == "breakbeat":
        return [_BASS_SPARSE, ((0, 12, 0), (12, 4, 7)), _BASS_PATTERNS[4]]
    kicks = sorted(step for step, _ in drums["kick"])
    locked = tuple(
        (step, min((kicks[i + 1] if i + 1 < len(kicks) else STEPS_PER_BAR) - step, 8), 0) for i, step in enumerate(kicks)
    )
    return [locked, _BASS_PATTERNS[4]]


def _stab_rhythms_for(family: str) -> list[tuple[tuple[int, int], ...]]:
    """Chord-stab rhythms that suit a drum family (off-beat house stabs only over four-on-the-floor)."""
    if family == "four_on_the_floor":
        return list(_STAB_RHYTHMS)
    return [r for k, r in enumerate(_STAB_RHYTHMS) if k != 2]


def _section_of_bar(sections: Sequence[Section]) -> list[Section]:
    """``[section for each bar]``."""
    out = []
    for s in sections:
        out.extend([s] * (s.n_beats // BEATS_PER_BAR))
    return out


def _chord_pcs(plan: SongPlan, degree: int) -> list[int]:
    """Pitch classes (0..11, relative to C) of the chord on scale ``degree`` (root first)."""
    scale = MODES[plan.mode]
    n_tones = 4 if plan.seventh_chords else 3
    return [(plan.root + scale[(degree + 2 * k) % 7]) % 12 for k in range(n_tones)]


def _place(pc: int, low: int) -> int:
    """MIDI note of pitch class ``pc`` in the octave ``[low, low + 12)``."""
    return low + (pc - low) % 12


# --------------------------------------------------------------------------- the renderer


class _Renderer:
    """Turns a ``SongPlan`` into stereo audio. One instance renders one song."""

    def __init__(self, plan: SongPlan, rng: np.random.Generator, sr: int) -> None:
        self.plan = plan
        self.rng = rng
        self.sr = sr
        self.beat_s = 60.0 / plan.tempo_bpm
        self.n_beats = sum(s.n_beats for s in plan.sections)
        self.n_samples = int(round((plan.offset_s + self.n_beats * self.beat_s + plan.tail_s) * sr))
        self.bar_sections = _section_of_bar(plan.sections)
        self.bar_chords: list[int] = []
        for s in plan.sections:
            prog = plan.progressions[s.name]
            self.bar_chords.extend(prog[b % len(prog)] for b in range(s.n_beats // BEATS_PER_BAR))
        self._cache: dict[tuple, np.ndarray] = {}
        self.kick_hits: list[tuple[int, float]] = []  # (start sample, gain) of every kick, for ducking

    # -- timing helpers
    def sample_at(self, pos_beats: np.ndarray) -> np.ndarray:
        """Sample indices ``(n,)`` of positions in beats (swing applied)."""
        pos = swing_warp(pos_beats, self.plan.swing, self.plan.swing_grid)
        return np.round((self.plan.offset_s + pos * self.beat_s) * self.sr).astype(np.int64)

    def steps_s(self, n_steps: float) -> float:
        """Seconds of ``n_steps`` 16th notes (straight)."""
        return n_steps * self.beat_s / STEPS_PER_BEAT

    def cached(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        """Waveform for ``key``, made once per song."""
        wave = self._cache.get(key)
        if wave is None:
            wave = make()
            self._cache[key] = wave
        return wave

    # -- drums
    def drums(self) -> np.ndarray:
        """``(2, n_samples)`` drum bus."""
        plan, rng = self.plan, self.rng
        kit = _DrumKit(rng, self.sr, plan.use_clap)
        pattern = _DRUM_PATTERNS[plan.drum_family][plan.drum_variant]
        bus = _Bus(self.n_samples)
        events: dict[str, list[tuple[float, float]]] = {k: [] for k in ("kick", "snare", "hats", "open_hat", "crash")}
        n_bars = len(self.bar_sections)
        for bar, sec in enumerate(self.bar_sections):
            base = bar * BEATS_PER_BAR
            bar_in_sec = (base - sec.start_beat) // BEATS_PER_BAR
            last_bar_of_section = bar_in_sec == sec.n_beats // BEATS_PER_BAR - 1
            next_sec = self.bar_sections[bar + 1] if bar + 1 < n_bars else None
            fill = (
                last_bar_of_section
                and next_sec is not None
                and next_sec.energy > sec.energy
                and "snare" in sec.instruments
            )
            e = sec.energy
            for step, vel in pattern["kick"] if e >= 0.4 else ((0, 1.0), (8, 0.8)):
                if "kick" in sec.instruments and not (fill and step >= 8 and step != 8):
                    events["kick"].append((base + step / STEPS_PER_BEAT, vel))
            if "snare" in sec.instruments:
                for step, vel in pattern["snare"]:
                    if not (fill and step >= 8):
                        events["snare"].append((base + step / STEPS_PER_BEAT, vel))
            if fill:
                for step in range(8, 16):
                    events["snare"].append((base + step / STEPS_PER_BEAT, 0.35 + 0.6 * (step - 8) / 7))
            if "hats" in sec.instruments:
                # Sparse sections play quarter notes so the beat stays audible.
                hats = pattern["hats"] if e >= 0.4 else tuple((s, 0.8) for s in range(0, 16, 4)) + (
                    ((2, 0.4), (6, 0.4), (10, 0.4), (14, 0.4)) if e >= 0.3 else ()
                )
                open_steps = {s for s, _ in pattern["open_hat"]} if "open_hat" in sec.instruments else set()
                for step, vel in hats:
                    if step not in open_steps:
                        events["hats"].append((base + step / STEPS_PER_BEAT, vel))
                for step, vel in pattern["open_hat"]:
                    if step in open_steps:
                        events["open_hat"].append((base + step / STEPS_PER_BEAT, vel))
            if "crash" in sec.instruments and bar_in_sec == 0:
                events["crash"].append((float(base), 1.0))
        levels = {"kick": 0.95, "snare": 0.55, "hats": 0.2, "open_hat": 0.15, "crash": 0.16}
        energy_gain = np.array([0.75 + 0.25 * s.energy for s in self.bar_sections])
        for name, evs in events.items():
            if not evs:
                continue
            pos = np.array([p for p, _ in evs])
            vels = np.array([v for _, v in evs])
            vels = vels * (1.0 + 0.06 * rng.standard_normal(len(vels))) * energy_gain[(pos // BEATS_PER_BAR).astype(int)]
            starts = self.sample_at(pos)
            variants = rng.integers(0, 4, size=len(evs))
            for start, v, var in zip(starts, vels, variants, strict=True):
                g = float(levels[name] * v)
                if name == "kick":
                    bus.add(int(start), kit.kick, g)
                    self.kick_hits.append((int(start), g))
                elif name == "snare":
                    gl, gr = _pan_gains(-0.05)
                    bus.add(int(start), kit.snare[var % 2], g * gl, g * gr)
                elif name == "hats":
                    gl, gr = _pan_gains(0.3)
                    bus.add(int(start), kit.hats[var], g * gl, g * gr)
                elif name == "open_hat":
                    gl, gr = _pan_gains(0.25)
                    bus.add(int(start), kit.open_hat[var % 2], g * gl, g * gr)
                else:
                    bus.add(int(start), kit.crash, g * 0.8, g * 0.8)
        if plan.riser and plan.offset_s > 0:
            n = int(plan.offset_s * self.sr)
            t = np.arange(n) / n
            noise = signal.sosfilt(_sos("bandpass", (2000.0, 9000.0), self.sr), rng.standard_normal((2, n)), axis=-1)
            riser = (noise * (t**3) * 0.25).astype(np.float32)
            bus.add(int(self.sample_at(np.array([0.0]))[0]) - n, riser, 1.0)
        return bus.buf

    # -- bass
    def _bass_note(self, midi: int, n_gate: int, bright: float) -> np.ndarray:
        """Plucky bass note ``(m,)``: a saw whose bright lowpassed layer decays into a dark one (a filter envelope)."""
        f0 = _midi_hz(midi)
        n = n_gate + int(0.06 * self.sr)
        t = np.arange(n, dtype=np.float32) / self.sr
        osc = _saw(f0, n, self.sr) + 0.6 * np.sin(2.0 * np.pi * f0 * t)  # a little more fundamental
        bright_layer = signal.sosfilt(_sos("lowpass", 350.0 + 1600.0 * bright, self.sr), osc)
        dark_layer = signal.sosfilt(_sos("lowpass", 220.0, self.sr), osc)
        pluck = np.exp(-t / (0.04 + 0.08 * bright))
        body = dark_layer + (bright_layer - dark_layer) * pluck
        env = _adsr(n, self.sr, 0.008, 0.25, 0.6, 0.05, n_gate)
        x = np.tanh(1.5 * body * env)
        return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)

    def bass(self) -> np.ndarray:
        """``(2, n_samples)`` bass bus (mono, centred)."""
        plan = self.plan
        bus = _Bus(self.n_samples)
        for bar, sec in enumerate(self.bar_sections):
            if "bass" not in sec.instruments:
                continue
            pattern = plan.bass_pattern if sec.energy >= 0.4 else _BASS_SPARSE
            root_pc = _chord_pcs(plan, self.bar_chords[bar])[0]
            root = _place(root_pc, 33)
            pos = bar * BEATS_PER_BAR + np.array([s for s, _, _ in pattern]) / STEPS_PER_BEAT
            starts = self.sample_at(pos)
            bright = round(sec.energy, 1)
            for (step, length, interval), start in zip(pattern, starts, strict=True):
                midi = root + interval
                n_gate = int(self.steps_s(length) * self.sr * 0.85)
                wave = self.cached(("bass", midi, n_gate, bright), lambda: self._bass_note(midi, n_gate, bright))  # noqa: B023 - called at once
                vel = 1.0 if step == 0 else 0.8
                bus.add(int(start), wave, 0.65 * vel)
        return bus.buf

    # -- chords
    def _chord_tone(self, midi: int, n: int) -> np.ndarray:
        """``(2, n)`` unfiltered chord voice: detuned saws (one per side) plus a centred triangle."""
        f = _midi_hz(midi)
        detune = 2.0 ** (0.09 / 12.0)  # 9 cents
        phase = (midi * 0.137) % 1.0
        tri = 0.6 * _triangle(f, n, self.sr, phase)
        return np.stack([_saw(f / detune, n, self.sr, phase) + tri, _saw(f * detune, n, self.sr, 1.0 - phase) + tri])

    def _chord_wave(self, midis: tuple[int, ...], n_gate: int, cutoff_hz: float, pad: bool) -> np.ndarray:
        """``(2, m)`` chord: the voices of ``midis`` summed, lowpassed at ``cutoff_hz`` and enveloped."""
        release_s = 0.6 if pad else 0.08
        n = n_gate + int(release_s * self.sr)
        x = cast(np.ndarray, sum(self.cached(("tone", m, n), functools.partial(self._chord_tone, m, n)) for m in midis))
        x = signal.sosfilt(_sos("lowpass", cutoff_hz, self.sr, order=2), x, axis=-1)
        if pad:
            env = _adsr(n, self.sr, min(0.25, 0.3 * n_gate / self.sr), 0.4, 0.8, release_s, n_gate)
        else:
            env = _adsr(n, self.sr, 0.005, 0.12, 0.35, release_s, n_gate)
        return (x * (env / len(midis))).astype(np.float32)

    def chords(self) -> np.ndarray:
        """``(2, n_samples)`` chord bus."""
        plan = self.plan
        bus = _Bus(self.n_samples)
        bar_steps = STEPS_PER_BAR
        for bar, sec in enumerate(self.bar_sections):
            if "chords" not in sec.instruments:
                continue
            pcs = _chord_pcs(plan, self.bar_chords[bar])
            midis = tuple(sorted(_place(pc, 55) for pc in pcs))
            pad = plan.chord_style == "pad" or sec.name in ("intro", "bridge", "outro")
            cutoff = float(900.0 + 4000.0 * round(sec.energy * 3.0) / 3.0)  # 4 levels, so waves are reused
            rhythm = ((0, bar_steps),) if pad else plan.stab_rhythm
            pos = bar * BEATS_PER_BAR + np.array([s for s, _ in rhythm]) / STEPS_PER_BEAT
            for (step, length), start in zip(rhythm, self.sample_at(pos), strict=True):
                n_gate = int(self.steps_s(length if pad else min(length, 2) * 0.6) * self.sr)
                wave = self.cached(("chord", midis, n_gate, cutoff, pad), lambda: self._chord_wave(midis, n_gate, cutoff, pad))  # noqa: B023 - called at once
                vel = 1.0 if step == 0 else 0.75
                bus.add(int(start), wave, (0.4 if pad else 0.5) * vel)
        return bus.buf

    # -- lead
    def _lead_note(self, midi: int, n_gate: int, cutoff_hz: float) -> np.ndarray:
        """``(m,)`` lead note: saw + square with delayed vibrato, lowpassed."""
        n = n_gate + int(0.12 * self.sr)
        t = np.arange(n) / self.sr
        vib_depth = np.clip((t - 0.15) / 0.2, 0.0, 1.0) * 0.25  # semitones
        freq = _midi_hz(midi) * 2.0 ** (vib_depth * np.sin(2 * np.pi * 5.5 * t) / 12.0)
        x = 0.6 * _saw(freq, n, self.sr) + 0.4 * _square(freq, n, self.sr)
        x = signal.sosfilt(_sos("lowpass", cutoff_hz, self.sr), x)
        env = _adsr(n, self.sr, 0.01, 0.2, 0.7, 0.1, n_gate)
        return (x * env).astype(np.float32)

    def _phrase_melody(self, first_bar: int) -> list[tuple[float, float, int]]:
        """Four bars of melody as ``(pos_beats, length_beats, midi)``: motif, answer, motif, cadence."""
        plan, rng = self.plan, self.rng
        scale = MODES[plan.mode]
        cell_a = _LEAD_CELLS[int(rng.integers(len(_LEAD_CELLS)))]
        cell_b = _LEAD_CELLS[int(rng.integers(len(_LEAD_CELLS)))]
        # Scale-degree walk for the motif (relative to the key root, around the 5th octave).
        walk_a = np.cumsum(rng.integers(-2, 3, size=len(cell_a)))
        walk_b = np.cumsum(rng.integers(-2, 3, size=len(cell_b)))
        notes: list[tuple[float, float, int]] = []
        start_degree = int(rng.integers(0, 5))
        for k, (cell, walk) in enumerate(((cell_a, walk_a), (cell_b, walk_b), (cell_a, walk_a), (cell_b, walk_b))):
            bar = first_bar + k
            if bar >= len(self.bar_chords):
                break
            chord = _chord_pcs(plan, self.bar_chords[bar])
            for j, ((step, length), w) in enumerate(zip(cell, walk, strict=True)):
                degree = start_degree + int(w) + (1 if k == 2 else 0)
                midi = 12 * 5 + plan.root + 12 * (degree // 7) + scale[degree % 7] + 12
                if step % 4 == 0:  # on a beat: snap to the nearest chord tone
                    cands = [_place(pc, midi - 6) for pc in chord]
                    midi = min(cands, key=lambda m: abs(m - midi))
                if k == 3 and j == len(cell) - 1:  # cadence on the chord root, held
                    midi = _place(chord[0], midi - 6)
                    length = max(length, STEPS_PER_BAR - step)
                while midi > 86:
                    midi -= 12
                while midi < 64:
                    midi += 12
                notes.append((bar * BEATS_PER_BAR + step / STEPS_PER_BEAT, length / STEPS_PER_BEAT, midi))
        return notes

    def lead(self) -> np.ndarray:
        """``(2, n_samples)`` lead bus, slightly off centre."""
        bus = _Bus(self.n_samples)
        gl, gr = _pan_gains(-0.12)
        n_bars = len(self.bar_sections)
        for bar in range(0, n_bars, BEATS_PER_PHRASE // BEATS_PER_BAR):
            sec = self.bar_sections[bar]
            if "lead" not in sec.instruments:
                continue
            melody = self._phrase_melody(bar)
            if sec.energy < 0.6:  # sparser in verses and bridges: every other note
                melody = melody[::2] if len(melody) > 4 else melody
            pos = np.array([p for p, _, _ in melody])
            cutoff = float(round(1500.0 + 3500.0 * sec.energy, -2))
            for (p, length, midi), start in zip(melody, self.sample_at(pos), strict=True):
                n_gate = int(length * self.beat_s * self.sr * 0.9)
                wave = self.cached(("lead", midi, n_gate, cutoff), lambda: self._lead_note(midi, n_gate, cutoff))  # noqa: B023 - called at once
                vel = 1.0 if (p % 1.0) == 0 else 0.85
                bus.add(int(start), wave, 0.4 * vel * gl, 0.4 * vel * gr)
        return bus.buf


def _sidechain_gain(kick_hits: Sequence[tuple[int, float]], n_samples: int, sr: int, depth: float, release_s: float) -> np.ndarray:
    """Gain ``(n_samples,)`` float32 that dips by up to ``depth`` at every kick and recovers over ``release_s``.

    The dip is a difference of exponentials (5 ms attack), so ducked parts
    swell back smoothly instead of clicking; one dip shape is added at every
    kick by slicing.
    """
    gain = np.ones(n_samples, dtype=np.float32)
    if not kick_hits or depth <= 0.0:
        return gain
    t = np.arange(int(5.0 * release_s * sr), dtype=np.float32) / sr
    dip = np.exp(-t / release_s) - np.exp(-t / 0.005)
    dip = (depth / dip.max()) * dip
    duck = np.zeros(n_samples, dtype=np.float32)
    top = max(g for _, g in kick_hits)
    for start, g in kick_hits:
        lo, hi = max(start, 0), min(start + len(dip), n_samples)
        if hi > lo:
            duck[lo:hi] = np.maximum(duck[lo:hi], (g / top) * dip[lo - start : hi - start])
    return gain - duck


def _master(mix: np.ndarray, send: np.ndarray, sr: int, room_size: float) -> np.ndarray:
    """Reverb on ``send``, sum, soft-clip the peaks, normalise the peak to ``PEAK_DBFS``.

    Parameters
    ----------
    mix : np.ndarray
        ``(2, n)`` float32 dry mix.
    send : np.ndarray
        ``(2, n)`` float32 reverb send.
    sr : int
        sample rate (Hz).
    room_size : float
        0..1 reverb size.

    Returns
    -------
    np.ndarray
        ``(2, n)`` float32, peak exactly ``PEAK_DBFS`` (unless silent).
    """
    import pedalboard

    wet = pedalboard.Reverb(room_size=room_size, damping=0.5, wet_level=1.0, dry_level=0.0, width=1.0)(send, sr)
    out = mix + 0.35 * wet
    # Soft clip: the loudest drum transients lose about 3 dB, the body of the mix is untouched.
    rms = float(np.sqrt(np.mean(out * out))) + 1e-12
    knee = 4.0 * rms
    over = np.abs(out) > knee
    x = out[over]
    out[over] = np.sign(x) * (knee + knee * np.tanh((np.abs(x) - knee) / knee))
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out = out * (10.0 ** (PEAK_DBFS / 20.0) / peak)
    return out.astype(np.float32)


def plan_song(seed: int, *, duration_s: float | None = None, tempo_bpm: float | None = None) -> SongPlan:
    """The ``SongPlan`` that ``synth_song`` with the same arguments renders (no audio is made)."""
    if tempo_bpm is not None and not (20.0 <= tempo_bpm <= 400.0):
        raise ValueError(f"tempo_bpm {tempo_bpm} outside 20..400")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s {duration_s} must be positive")
    plan_rng = np.random.default_rng(seed).spawn(4)[0]
    return _make_plan(plan_rng, duration_s, tempo_bpm)


def _render_parts(
    seed: int, duration_s: float | None, tempo_bpm: float | None, sample_rate: int
) -> tuple[SongPlan, _Renderer, dict[str, np.ndarray], np.random.Generator]:
    """The plan, renderer, ducked dry parts ``{drums, bass, chords, lead}: (2, n)`` and the master's generator."""
    if sample_rate < 8000:
        raise ValueError(f"sample_rate {sample_rate} below 8000 Hz")
    plan = plan_song(seed, duration_s=duration_s, tempo_bpm=tempo_bpm)
    _, drum_rng, tone_rng, master_rng = np.random.default_rng(seed).spawn(4)
    renderer = _Renderer(plan, drum_rng, sample_rate)
    drums = renderer.drums()
    renderer.rng = tone_rng
    bass = renderer.bass()
    chords = renderer.chords()
    lead = renderer.lead()
    duck = _sidechain_gain(
        renderer.kick_hits, renderer.n_samples, sample_rate, depth=plan.duck_depth, release_s=0.35 * renderer.beat_s
    )
    bass *= duck
    chords *= duck
    lead *= 0.5 + 0.5 * duck
    return plan, renderer, {"drums": drums, "bass": bass, "chords": chords, "lead": lead}, master_rng


def synth_stems(
    seed: int,
    *,
    duration_s: float | None = None,
    tempo_bpm: float | None = None,
    sample_rate: int = 44100,
) -> dict[str, np.ndarray]:
    """The dry stems of ``synth_song(seed, ...)``: the parts before the master bus.

    The song's mix adds a reverb send and a soft clip on top of their sum, so
    separators are scored on ``sum(stems.values())`` against these, which it
    equals exactly. There is no singing: ``vocals`` is absent.

    Returns
    -------
    dict[str, np.ndarray]
        ``{"drums", "bass", "other"}`` (chords + lead), each ``(2, n_samples)``
        float32, the same length as the song.
    """
    _, _, parts, _ = _render_parts(seed, duration_s, tempo_bpm, sample_rate)
    return {
        "drums": parts["drums"].astype(np.float32),
        "bass": parts["bass"].astype(np.float32),
        "other": (parts["chords"] + parts["lead"]).astype(np.float32),
    }


def synth_song(
    seed: int,
    *,
    duration_s: float | None = None,
    tempo_bpm: float | None = None,
    sample_rate: int = 44100,
) -> Song:
    """Render a deterministic stereo song with known beats, bars and sections.

    Parameters
    ----------
    seed : int
        selects every random choice (tempo, key, form, patterns, sounds).
    duration_s : float | None
        wanted length of the beat grid in seconds; rounded to the
        nearest whole phrase (16 beats, so also a bar line; at least one
        phrase). A release tail of 1.5-3 s follows. Default: 60-240 s
        drawn from the seed.
    tempo_bpm : float | None
        beats per minute; default drawn from the seed in 70-180.
    sample_rate : int
        Hz.

    Returns
    -------
    Song
        ``Song`` with ``samples`` ``(2, n_samples)`` float32 peaking at -1 dBFS.

    Examples
    --------
    >>> song = synth_song(7, duration_s=30.0)
    >>> song.samples.shape[0], song.sample_rate
    (2, 44100)
    >>> len(song.beat_times) % 16  # whole phrases
    0
    """
    plan, renderer, parts, master_rng = _render_parts(seed, duration_s, tempo_bpm, sample_rate)
    drums, bass, chords, lead = parts["drums"], parts["bass"], parts["chords"], parts["lead"]
    mix = drums + bass + chords + lead
    send = 0.6 * chords + 0.5 * lead + 0.1 * drums
    samples = _master(mix, send, sample_rate, room_size=float(master_rng.uniform(0.3, 0.75)))
    beat_s = 60.0 / plan.tempo_bpm
    n_beats = renderer.n_beats
    song = Song(
        samples=samples,
        sample_rate=sample_rate,
        tempo_bpm=plan.tempo_bpm,
        beat_times=plan.offset_s + np.arange(n_beats) * beat_s,
        downbeats=np.arange(0, n_beats, BEATS_PER_BAR),
        sections=plan.sections,
        key=f"{NOTE_NAMES[plan.root]} {plan.mode}",
        seed=seed,
        swing=plan.swing,
        swing_grid=plan.swing_grid,
        drum_family=plan.drum_family,
        offset_s=plan.offset_s,
    )
    logger.debug(
        "synth seed=%d tempo=%.2f key=%s family=%s swing=%.2f sections=%s",
        seed,
        plan.tempo_bpm,
        song.key,
        plan.drum_family,
        plan.swing,
        [s.name for s in plan.sections],
    )
    return song


def write_song(song: Song, out_path: str | os.PathLike[str]) -> Path:
    """Write ``song`` to ``out_path`` (format from the suffix; float WAV for .wav) atomically."""
    from editorbot.engine.audio import write_audio

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_audio(out, song.samples, song.sample_rate)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m editorbot.training.data.synth --seed S --duration 30 --out song.wav [--json labels.json]``."""
    parser = argparse.ArgumentParser(prog="python -m editorbot.training.data.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=None, help="seconds (rounded to whole phrases)")
    parser.add_argument("--tempo", type=float, default=None, help="BPM (default: from the seed, 70-180)")
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--out", required=True, help="audio file to write (.wav, .flac)")
    parser.add_argument("--json", default=None, help="also write the ground-truth labels here")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        song = synth_song(args.seed, duration_s=args.duration, tempo_bpm=args.tempo, sample_rate=args.sample_rate)
    except ValueError as err:
        print(f"{args.out}: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    write_song(song, args.out)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        from editorbot.engine.atomic import write_json_atomic

        write_json_atomic(out, song.labels())
    print(
        f"{args.out}: seed {song.seed}, {song.duration_s:.2f} s, {song.tempo_bpm:.2f} BPM, key {song.key}, "
        f"{song.drum_family}, swing {song.swing:.2f}/{song.swing_grid}, first beat {song.offset_s:.3f} s, "
        f"{len(song.beat_times)} beats, {len(song.downbeats)} bars (rendered in {elapsed:.2f} s)"
    )
    for s in song.sections:
        t = song.beat_times[s.start_beat]
        print(f"  {s.name:<7} beat {s.start_beat:>4} ({t:7.2f} s) {s.n_beats:>3} beats energy {s.energy:.2f} {','.join(s.instruments)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
