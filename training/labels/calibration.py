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
labels stays near the common intercept (``--shrink 4``). On those 277
labels, precision per confidence fifth went 0.87 / 0.82 / 0.84 / 0.86 /
0.99 raw to - / - / - / 0.69 / 0.91 calibrated: most labels are right, and
the raw confidence tells the wrong ones only weakly (slope 0.33). KEEP
beats keep their confidence (how sure "nothing was done" is; it was not
fitted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONF_CLIP = 0.02  # confidences are clipped to [CONF_CLIP, 1 - CONF_CLIP] before the logit (as fitted)
CALIBRATION_SLOPE = 0.331
CALIBRATION_DEFAULT = 2.115  # the common intercept: a type the fit saw no labels of
CALIBRATION: dict[str, float] = {
    "BASS": 2.159,
    "COMPRESS": 2.376,
    "CUT": 2.410,
    "DELAY": 2.188,
    "DISTORTION": 2.197,
    "FADE_IN": 2.258,
    "FADE_OUT": 1.623,
    "GAIN": 1.927,
    "HIGHPASS": 2.626,
    "LOOP": 1.401,
    "LOWPASS": 2.020,
    "PITCH": 2.303,
    "REVERB": 2.407,
    "REVERSE": 2.274,
    "SILENCE": 2.151,
    "SPEED": 1.318,
    "STUTTER": 2.168,
    "TREBLE": 2.260,
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
