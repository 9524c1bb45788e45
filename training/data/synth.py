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
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from scipy import signal

from editorbot.training.data.synth_plan import (
    BASS_SPARSE,
    BEATS_PER_BAR,
    BEATS_PER_PHRASE,
    DRUM_PATTERNS,
    LEAD_CELLS,
    MODES,
    NOTE_NAMES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Section,
    SongPlan,
    chord_pcs,
    make_plan,
    place_pitch,
    section_of_bar,
    swing_warp,
)
from editorbot.training.data.synth_voices import (
    Bus,
    DrumKit,
    adsr,
    butter_sos,
    master,
    midi_hz,
    pan_gains,
    saw,
    sidechain_gain,
    square,
    triangle,
)

logger = logging.getLogger(__name__)

PEAK_DBFS = -1.0

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
        self.bar_sections = section_of_bar(plan.sections)
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
        kit = DrumKit(rng, self.sr, plan.use_clap)
        pattern = DRUM_PATTERNS[plan.drum_family][plan.drum_variant]
        bus = Bus(self.n_samples)
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
                    gl, gr = pan_gains(-0.05)
                    bus.add(int(start), kit.snare[var % 2], g * gl, g * gr)
                elif name == "hats":
                    gl, gr = pan_gains(0.3)
                    bus.add(int(start), kit.hats[var], g * gl, g * gr)
                elif name == "open_hat":
                    gl, gr = pan_gains(0.25)
                    bus.add(int(start), kit.open_hat[var % 2], g * gl, g * gr)
                else:
                    bus.add(int(start), kit.crash, g * 0.8, g * 0.8)
        if plan.riser and plan.offset_s > 0:
            n = int(plan.offset_s * self.sr)
            t = np.arange(n) / n
            noise = signal.sosfilt(butter_sos("bandpass", (2000.0, 9000.0), self.sr), rng.standard_normal((2, n)), axis=-1)
            riser = (noise * (t**3) * 0.25).astype(np.float32)
            bus.add(int(self.sample_at(np.array([0.0]))[0]) - n, riser, 1.0)
        return bus.buf

    # -- bass
    def _bass_note(self, midi: int, n_gate: int, bright: float) -> np.ndarray:
        """Plucky bass note ``(m,)``: a saw whose bright lowpassed layer decays into a dark one (a filter envelope)."""
        f0 = midi_hz(midi)
        n = n_gate + int(0.06 * self.sr)
        t = np.arange(n, dtype=np.float32) / self.sr
        osc = saw(f0, n, self.sr) + 0.6 * np.sin(2.0 * np.pi * f0 * t)  # a little more fundamental
        bright_layer = signal.sosfilt(butter_sos("lowpass", 350.0 + 1600.0 * bright, self.sr), osc)
        dark_layer = signal.sosfilt(butter_sos("lowpass", 220.0, self.sr), osc)
        pluck = np.exp(-t / (0.04 + 0.08 * bright))
        body = dark_layer + (bright_layer - dark_layer) * pluck
        env = adsr(n, self.sr, 0.008, 0.25, 0.6, 0.05, n_gate)
        x = np.tanh(1.5 * body * env)
        return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)

    def bass(self) -> np.ndarray:
        """``(2, n_samples)`` bass bus (mono, centred)."""
        plan = self.plan
        bus = Bus(self.n_samples)
        for bar, sec in enumerate(self.bar_sections):
            if "bass" not in sec.instruments:
                continue
            pattern = plan.bass_pattern if sec.energy >= 0.4 else BASS_SPARSE
            root_pc = chord_pcs(plan, self.bar_chords[bar])[0]
            root = place_pitch(root_pc, 33)
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
        f = midi_hz(midi)
        detune = 2.0 ** (0.09 / 12.0)  # 9 cents
        phase = (midi * 0.137) % 1.0
        tri = 0.6 * triangle(f, n, self.sr, phase)
        return np.stack([saw(f / detune, n, self.sr, phase) + tri, saw(f * detune, n, self.sr, 1.0 - phase) + tri])

    def _chord_wave(self, midis: tuple[int, ...], n_gate: int, cutoff_hz: float, pad: bool) -> np.ndarray:
        """``(2, m)`` chord: the voices of ``midis`` summed, lowpassed at ``cutoff_hz`` and enveloped."""
        release_s = 0.6 if pad else 0.08
        n = n_gate + int(release_s * self.sr)
        x = cast(np.ndarray, sum(self.cached(("tone", m, n), functools.partial(self._chord_tone, m, n)) for m in midis))
        x = signal.sosfilt(butter_sos("lowpass", cutoff_hz, self.sr, order=2), x, axis=-1)
        if pad:
            env = adsr(n, self.sr, min(0.25, 0.3 * n_gate / self.sr), 0.4, 0.8, release_s, n_gate)
        else:
            env = adsr(n, self.sr, 0.005, 0.12, 0.35, release_s, n_gate)
        return (x * (env / len(midis))).astype(np.float32)

    def chords(self) -> np.ndarray:
        """``(2, n_samples)`` chord bus."""
        plan = self.plan
        bus = Bus(self.n_samples)
        bar_steps = STEPS_PER_BAR
        for bar, sec in enumerate(self.bar_sections):
            if "chords" not in sec.instruments:
                continue
            pcs = chord_pcs(plan, self.bar_chords[bar])
            midis = tuple(sorted(place_pitch(pc, 55) for pc in pcs))
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
        freq = midi_hz(midi) * 2.0 ** (vib_depth * np.sin(2 * np.pi * 5.5 * t) / 12.0)
        x = 0.6 * saw(freq, n, self.sr) + 0.4 * square(freq, n, self.sr)
        x = signal.sosfilt(butter_sos("lowpass", cutoff_hz, self.sr), x)
        env = adsr(n, self.sr, 0.01, 0.2, 0.7, 0.1, n_gate)
        return (x * env).astype(np.float32)

    def _phrase_melody(self, first_bar: int) -> list[tuple[float, float, int]]:
        """Four bars of melody as ``(pos_beats, length_beats, midi)``: motif, answer, motif, cadence."""
        plan, rng = self.plan, self.rng
        scale = MODES[plan.mode]
        cell_a = LEAD_CELLS[int(rng.integers(len(LEAD_CELLS)))]
        cell_b = LEAD_CELLS[int(rng.integers(len(LEAD_CELLS)))]
        # Scale-degree walk for the motif (relative to the key root, around the 5th octave).
        walk_a = np.cumsum(rng.integers(-2, 3, size=len(cell_a)))
        walk_b = np.cumsum(rng.integers(-2, 3, size=len(cell_b)))
        notes: list[tuple[float, float, int]] = []
        start_degree = int(rng.integers(0, 5))
        for k, (cell, walk) in enumerate(((cell_a, walk_a), (cell_b, walk_b), (cell_a, walk_a), (cell_b, walk_b))):
            bar = first_bar + k
            if bar >= len(self.bar_chords):
                break
            chord = chord_pcs(plan, self.bar_chords[bar])
            for j, ((step, length), w) in enumerate(zip(cell, walk, strict=True)):
                degree = start_degree + int(w) + (1 if k == 2 else 0)
                midi = 12 * 5 + plan.root + 12 * (degree // 7) + scale[degree % 7] + 12
                if step % 4 == 0:  # on a beat: snap to the nearest chord tone
                    cands = [place_pitch(pc, midi - 6) for pc in chord]
                    midi = min(cands, key=lambda m: abs(m - midi))
                if k == 3 and j == len(cell) - 1:  # cadence on the chord root, held
                    midi = place_pitch(chord[0], midi - 6)
                    length = max(length, STEPS_PER_BAR - step)
                while midi > 86:
                    midi -= 12
                while midi < 64:
                    midi += 12
                notes.append((bar * BEATS_PER_BAR + step / STEPS_PER_BEAT, length / STEPS_PER_BEAT, midi))
        return notes

    def lead(self) -> np.ndarray:
        """``(2, n_samples)`` lead bus, slightly off centre."""
        bus = Bus(self.n_samples)
        gl, gr = pan_gains(-0.12)
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


def plan_song(seed: int, *, duration_s: float | None = None, tempo_bpm: float | None = None) -> SongPlan:
    """The ``SongPlan`` that ``synth_song`` with the same arguments renders (no audio is made)."""
    if tempo_bpm is not None and not (20.0 <= tempo_bpm <= 400.0):
        raise ValueError(f"tempo_bpm {tempo_bpm} outside 20..400")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s {duration_s} must be positive")
    plan_rng = np.random.default_rng(seed).spawn(4)[0]
    return make_plan(plan_rng, duration_s, tempo_bpm)


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
    duck = sidechain_gain(
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
    samples = master(mix, send, sample_rate, room_size=float(master_rng.uniform(0.3, 0.75)), peak_dbfs=PEAK_DBFS)
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
