"""Fixtures shared by the ``editorbot`` command tests: a song and a saved plan for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from editorbot.engine.audio import sha256_file, write_audio
from editorbot.engine.plan import EditPlan, Effect, Grid, Marker, Segment, Source, save_plan

SR = 44_100
BEAT_S = 0.5  # 120 bpm
DURATION_S = 4.0


@dataclass
class SavedPlan:
    samples: np.ndarray  # the song, (n_channels, n_samples) float32
    wav: Path  # the song's file
    plan: EditPlan  # as saved (source path relative to the plan file)
    plan_path: Path


def song(duration_s: float = DURATION_S, sr: int = SR) -> np.ndarray:
    """Stereo 220 Hz tone with a decaying click on every beat, ``(2, n_samples)`` float32."""
    t = np.arange(round(duration_s * sr)) / sr
    clicks = np.exp(-(t % BEAT_S) * 40.0) * np.random.default_rng(0).standard_normal(t.size)
    mono = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.2 * clicks
    return np.stack([mono, 0.8 * mono]).astype(np.float32)


@pytest.fixture
def saved_plan(tmp_path: Path) -> SavedPlan:
    """A 4 s stereo wav and a plan saved beside it, its source path relative:
    the first beat twice, then -3 dB through a lowpass, one beat cut; 4 segments, 2 markers."""
    samples = song()
    wav = tmp_path / "song.wav"
    write_audio(wav, samples, SR)
    segments = [
        Segment(0.0, BEAT_S, 0.0, action="KEEP", beat=0),
        Segment(0.0, BEAT_S, BEAT_S, action="LOOP", beat=0),
        Segment(BEAT_S, 4 * BEAT_S, 2 * BEAT_S, gain_db=-3.0, effects=[Effect("lowpass", {"cutoff_hz": 2000.0})]),
        Segment(5 * BEAT_S, DURATION_S, 5 * BEAT_S, action="KEEP", beat=5),
    ]
    plan = EditPlan(
        source=Source("song.wav", sha256_file(wav), SR, 2, DURATION_S),
        grid=Grid(120.0, [i * BEAT_S for i in range(8)], [0, 4]),
        segments=segments,
        markers=[Marker(BEAT_S, "loop"), Marker(2 * BEAT_S, "quiet part", end_s=5 * BEAT_S)],
    )
    plan_path = tmp_path / "song.plan.json"
    save_plan(plan, plan_path)
    return SavedPlan(samples, wav, plan, plan_path)
