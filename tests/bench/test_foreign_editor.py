"""The benchmark's foreign editor: click-free splices, a truth that round-trips, the same edit from the same seed."""

from __future__ import annotations

import json

import numpy as np

from bench.foreign_editor import edit, events_from_json, events_to_json, splice

SR = 22050


def _sine(n: int, phase: float) -> np.ndarray:
    return np.sin(2 * np.pi * 440.0 * np.arange(n) / SR + phase)[None, :]


def test_splice_crossfades_are_click_free() -> None:
    # two pieces in opposite phase: a hard cut jumps by ~2, a crossfade stays as smooth as the sine
    a, b = _sine(4000, 0.0), _sine(4000, np.pi + 2 * np.pi * 440.0 * 4000 / SR)
    slope = np.max(np.abs(np.diff(a[0])))
    hard = splice([a, b], [0], ["linear"])
    assert hard.shape == (1, 8000)
    assert np.max(np.abs(np.diff(hard[0]))) > 1.5
    for shape in ("linear", "equal_power"):
        out = splice([a, b], [int(0.01 * SR)], [shape])
        assert out.shape == (1, 8000 - int(0.01 * SR))
        # equal power lifts coherent material by up to sqrt(2) mid-fade; a click jumps ~16x the slope
        assert np.max(np.abs(np.diff(out[0]))) <= 1.5 * slope


def test_edit_is_seeded_and_its_truth_round_trips() -> None:
    rng = np.random.default_rng(0)
    beats = np.arange(0.25, 12.0, 0.5)
    y = 0.1 * rng.standard_normal((2, 12 * SR))
    for t in beats:
        k = int(t * SR)
        y[:, k:k + 200] += np.hanning(200)
    out1, ev1, info1 = edit(y, SR, seed=5, mp3=False, beats_s=beats)
    out2, ev2, _ = edit(y, SR, seed=5, mp3=False, beats_s=beats)
    assert np.array_equal(out1, out2) and ev1 == ev2
    assert ev1, "seed 5 makes at least one edit"
    assert np.max(np.abs(out1)) <= 10 ** (-1 / 20) + 1e-6
    text = events_to_json(ev1, info1, SR)
    assert events_from_json(text) == ev1
    doc = json.loads(text)
    assert doc["sample_rate"] == SR and not doc["mp3"]
    for e in doc["events"]:
        assert set(e) >= {"type", "src_start_s", "src_end_s", "amount", "crossfade_ms"}
        assert 0.0 <= e["src_start_s"] < e["src_end_s"] <= 12.0
