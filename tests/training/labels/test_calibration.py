"""training.labels.calibration: confidence as the probability that a label is right, per type."""

from __future__ import annotations

import numpy as np

from editorbot.training.labels.calibration import CALIBRATION, calibrate


def test_calibration_is_monotone_per_type_and_leaves_keep_alone() -> None:
    raw = np.linspace(0.0, 1.0, 21, dtype=np.float32)
    for t in CALIBRATION:
        cal = calibrate([t] * raw.size, raw)
        assert np.all(np.diff(cal) >= 0.0), t
        assert np.all((cal > 0.0) & (cal < 1.0)), t
    keep = calibrate(["KEEP"] * raw.size, raw)
    assert np.array_equal(keep, raw)
    # a type whose labels were less often right is less sure at the same raw confidence
    speed, highpass = calibrate(["SPEED", "HIGHPASS"], np.array([0.6, 0.6]))
    assert speed < highpass


def test_calibrated_and_raw_confidence_give_the_same_labels(corpus) -> None:
    from editorbot.training.labels.infer import infer_pair

    p = corpus["fx"]
    cal = infer_pair(p["raw"], p["edit"], name="fx", cache=False)
    raw = infer_pair(p["raw"], p["edit"], name="fx", cache=False, calibrated=False)
    assert np.array_equal(cal.labels, raw.labels)
    assert cal.walk == raw.walk
    moved = cal.labels[:, 0] != 0
    assert moved.any() and not np.allclose(cal.confidence[moved], raw.confidence[moved])
    assert np.allclose(cal.confidence[~moved], raw.confidence[~moved])
