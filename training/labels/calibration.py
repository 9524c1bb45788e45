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
labels stays near the common intercept (``--shrink 4``). On those 263
labels (refitted once the splice-like SPEEDs and the long fades' quiet
beats stopped being labelled), precision per confidence fifth went 0.84 /
0.89 / 0.82 / 0.94 / 0.99 raw to - / - / - / 0.71 / 0.92 calibrated: most
labels are right, and the raw confidence tells the wrong ones only weakly
(slope 0.38). KEEP
beats keep their confidence (how sure "nothing was done" is; it was not
fitted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONF_CLIP = 0.02  # confidences are clipped to [CONF_CLIP, 1 - CONF_CLIP] before the logit (as fitted)
CALIBRATION_SLOPE = 0.379
CALIBRATION_DEFAULT = 2.326  # the common intercept: a type the fit saw no labels of
CALIBRATION: dict[str, float] = {
    "BASS": 2.366,
    "COMPRESS": 2.507,
    "CUT": 2.565,
    "DELAY": 2.366,
    "DISTORTION": 2.361,
    "FADE_IN": 2.258,
    "FADE_OUT": 1.797,
    "GAIN": 2.106,
    "HIGHPASS": 2.782,
    "LOOP": 1.891,
    "LOWPASS": 2.208,
    "PITCH": 2.484,
    "REVERB": 2.578,
    "REVERSE": 2.448,
    "SILENCE": 2.352,
    "SPEED": 1.991,
    "STUTTER": 2.363,
    "TREBLE": 2.440,
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
