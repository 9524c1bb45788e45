"""The last step of inferring BC labels: each label's confidence made a probability that the label is right.

The raw confidence of a label (``infer``: the alignment's match of its move,
times, for an effect, how clearly it won and how much of the beat's change
it explains) orders labels of one type well, but not labels of different
types: a structural move's match is high wherever the audio lines up, right
type or not (a LOOP a beat off its repeats, a SPEED patched over audio the
raw song does not hold), while an effect that explains only part of a
beat's change scores low and is still mostly right. Pooled, the label
precision per confidence band was not monotone (test half of
``bench/labels_real.py`` at bc246d2, lowest band first: 0.20 / 0.61 / 0.79 /
0.91 / 0.80).

Each non-KEEP label's confidence ``c`` becomes
``sigmoid(CALIBRATION[type] + CALIBRATION_SLOPE * logit(c))``: monotone in
``c`` within a type (no label changes, nor the order of one type's labels),
and fitted to whether labels were right, per type. The table is fitted by
``bench/labels_calibration.py`` on the labels ``bench/labels_real.py
--split dev --uncalibrated --labels-out`` scores (dev half, seed 23: the
foreign editor's and the project's styles' pairs together); a type with few
labels stays near the common intercept. KEEP beats keep their confidence
(how sure "nothing was done" is; it was not fitted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONF_CLIP = 0.02  # confidences are clipped to [CONF_CLIP, 1 - CONF_CLIP] before the logit (as fitted)
CALIBRATION_SLOPE = 0.557
CALIBRATION_DEFAULT = 2.022  # the common intercept: a type the fit saw no labels of
CALIBRATION: dict[str, float] = {
    "BASS": 2.087,
    "COMPRESS": 2.437,
    "CUT": 2.168,
    "DELAY": 2.118,
    "DISTORTION": 2.129,
    "FADE_IN": 2.138,
    "FADE_OUT": 1.712,
    "GAIN": 1.527,
    "HIGHPASS": 2.624,
    "LOOP": 1.350,
    "LOWPASS": 1.930,
    "PITCH": 2.222,
    "REVERB": 2.479,
    "REVERSE": 2.138,
    "SILENCE": 2.042,
    "SPEED": 1.106,
    "STUTTER": 2.047,
    "TREBLE": 2.140,
}


def calibrate(types: Sequence[str], confidence: np.ndarray) -> np.ndarray:
    """The calibrated confidence of each beat's label (see the module docstring).

    Parameters
    ----------
    types : Sequence[str]
        ``n`` label type names (``engine.actions.TYPES``).
    confidence : np.ndarray
        ``(n,)`` raw confidence in [0, 1].

    Returns
    -------
    np.ndarray
        ``(n,)`` float32 in (0, 1); KEEP beats unchanged.
    """
    raw = np.clip(np.asarray(confidence, dtype=np.float64), CONF_CLIP, 1.0 - CONF_CLIP)
    out = np.asarray(confidence, dtype=np.float32).copy()
    for i, t in enumerate(types):
        if t == "KEEP":
            continue
        z = CALIBRATION.get(t, CALIBRATION_DEFAULT) + CALIBRATION_SLOPE * math.log(raw[i] / (1.0 - raw[i]))
        out[i] = 1.0 / (1.0 + math.exp(-z))
    return out
