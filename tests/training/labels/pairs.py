"""Short (raw, edit) pairs whose every beat's edit is known, for the tests of ``training.labels``.

Pairs are made from ``synth_song`` + an explicit walk + ``plan_from_actions``
on the song's true grid + ``render_plan``, so each test knows exactly what
was done to every beat (the pair's truth labels).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np

from editorbot.engine.audio import Audio, sha256_file, write_audio
from editorbot.engine.grid import Grid
from editorbot.engine.plan import plan_from_actions, plan_to_dict
from editorbot.engine.render import render_plan
from editorbot.training.data.synth import synth_song

DURATION_S = 24.0
TEMPO_BPM = 120.0

#: Structural walk over 48 beats (12 bars): every structural type.
STRUCT_WALK = [
    ("KEEP", "BAR", "NEUTRAL"),
    ("CUT", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("LOOP", "BAR", "NEG_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("REVERSE", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("STUTTER", "BEAT", "POS_SMALL"),
    ("KEEP", "BEAT", "NEUTRAL"),
    ("STUTTER", "BEAT", "NEG_SMALL"),
    ("KEEP", "BEAT", "NEUTRAL"),
    ("SILENCE", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("SPEED", "BAR", "POS_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
]

#: Effects walk over 48 beats.
EFFECT_WALK = [
    ("FADE_IN", "BAR", "NEUTRAL"),
    ("GAIN", "BAR", "NEG_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("LOWPASS", "BAR", "NEG_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("DISTORTION", "BAR", "POS_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("WIDTH", "BAR", "NEG_LARGE"),
    ("PITCH", "BAR", "POS_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("TREBLE", "BAR", "POS_LARGE"),
    ("FADE_OUT", "BAR", "NEUTRAL"),
]


def _analysis(song, path: str) -> SimpleNamespace:
    """What ``plan_from_actions`` reads, on the song's true grid."""
    n = len(song.beat_times)
    grid = Grid(
        tempo_bpm=song.tempo_bpm,
        beat_times=np.asarray(song.beat_times),
        downbeats=np.arange(0, n, 4),
        beats_per_bar=4,
        phrase_starts=np.arange(0, n, 16),
    )
    return SimpleNamespace(audio=Audio(song.samples, song.sample_rate, path), sha256=sha256_file(path), grid=grid)


def make_pair(folder: str, name: str, seed: int, walk: list[tuple[str, str, str]]) -> dict:
    """Write ``input/NAME_raw.wav``, ``desired_output/NAME_edit.wav`` and the truth labels ``labels/NAME.json``."""
    for d in ("input", "desired_output", "labels"):
        os.makedirs(os.path.join(folder, d), exist_ok=True)
    song = synth_song(seed, duration_s=DURATION_S, tempo_bpm=TEMPO_BPM)
    raw = os.path.join(folder, "input", f"{name}_raw.wav")
    edit = os.path.join(folder, "desired_output", f"{name}_edit.wav")
    write_audio(raw, song.samples, song.sample_rate)
    plan = plan_from_actions(_analysis(song, raw), walk)
    rendered = render_plan(plan, song.samples, song.sample_rate)
    write_audio(edit, rendered, song.sample_rate)
    label = os.path.join(folder, "labels", f"{name}.json")
    with open(label, "w", encoding="utf-8") as f:
        json.dump({"plan": plan_to_dict(plan)}, f)
    return {"raw": raw, "edit": edit, "label": label, "plan": plan_to_dict(plan), "rendered": rendered, "sr": song.sample_rate}
