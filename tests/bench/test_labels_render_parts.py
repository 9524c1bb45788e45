"""bench/labels_render_parts.py: the retimed render, the level match, and the foreign editor at the vocabulary's steps."""

from __future__ import annotations

import numpy as np
import pytest

from bench import foreign_editor
from bench.labels_render_parts import _at_steps, _spliced, _step, leveled, retimed
from editorbot.training.labels.render_check import msstft_distance

SR = 22050


def test_a_render_that_drifts_late_is_retimed_onto_the_edit() -> None:
    """A render 15 ms later per second than the edit (splices that overlap less) is far off; retimed it is close."""
    rng = np.random.default_rng(3)
    edit = np.zeros(8 * SR, np.float32)
    for k in range(32):  # a click every 250 ms
        edit[k * SR // 4 : k * SR // 4 + 300] = rng.standard_normal(300).astype(np.float32)
    render = np.zeros_like(edit)
    for k in range(32):
        t = k * SR // 4 + int(0.015 * SR * (k // 4))
        render[t : t + 300] = edit[k * SR // 4 : k * SR // 4 + 300]
    far = msstft_distance(render, edit)
    near = msstft_distance(retimed(render, edit, SR, int(0.03 * SR)), edit)
    assert near < 0.5 * far
    quieter = leveled(0.5 * edit, edit, SR)
    assert np.allclose(quieter, edit, atol=1e-5)


def test_the_foreign_editor_at_steps_and_with_its_joins_changed_is_put_back() -> None:
    """Inside ``_at_steps`` a -4.5 dB GAIN renders at the step (-6 dB); outside, as drawn; the splicer is restored."""
    assert _step("GAIN", -4.5) == -6.0 and _step("LOWPASS", 1100.0) == 800.0 and _step("SPEED", 1.15) == pytest.approx(1.1)
    seg = np.ones((1, 100), np.float32)
    rng = np.random.default_rng(0)
    out, db, _ = foreign_editor._effect("GAIN", seg, SR, np.random.default_rng(0))
    with _at_steps():
        stepped, db2, _ = foreign_editor._effect("GAIN", seg, SR, rng)
    assert db == db2
    assert 20 * np.log10(stepped[0, 0]) == pytest.approx(_step("GAIN", db), abs=1e-4)
    assert 20 * np.log10(out[0, 0]) == pytest.approx(db, abs=1e-4)
    saved = foreign_editor.splice
    peaks: list[float] = []
    with _spliced(peaks, join_samples=10):
        joined = foreign_editor.splice([seg, 2 * seg], [40], ["linear"])
    assert foreign_editor.splice is saved and joined.shape == (1, 190)
    assert peaks == [pytest.approx(float(np.max(np.abs(joined))))]
