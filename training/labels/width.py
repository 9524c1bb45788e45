"""Step 5 of inferring BC labels, stereo: whether a forward beat's width was changed, and by how much.

WIDTH scales the side signal (left less right) and keeps the mid one (left
plus right). ``side_scale`` reads the side's scale where the mid's level
kept (a quick screen); ``width_slot`` the amount of a width change, judged
only where the mid is the raw beat's waveform (another editor's splice or
effect on its own grid changes part of a beat, and with it the faint side
of a near-mono song).
"""

from __future__ import annotations

import math

import numpy as np

from editorbot.engine import actions as vocab

WIDTH_VALUES = tuple(v for v in vocab.AMOUNT_TABLE["WIDTH"] if not math.isnan(v))
WIDTH_MIN_MID_CORR = 0.95  # a width change keeps the mid's waveform (``width_slot``) ...
WIDTH_MAX_LAG = 256  # ... at a lag of at most this many samples (6 ms at 44.1 kHz: where a beat is placed to) ...
WIDTH_PARTS = 8  # ... judged in this many parts of the beat, of which half or more must keep it


def side_scale(raw_st: np.ndarray, edit_st: np.ndarray) -> float | None:
    """How much the side signal of stereo beat ``(2, n)`` was scaled (amplitude, edit over raw) where the mid's level kept; None if not.

    None for a mono source (side 40 dB or more under the mid), where the
    mid's level moved by over 1 dB, or where the side moved by under 0.2.
    """
    if raw_st.shape[0] < 2 or edit_st.shape[0] < 2:
        return None
    mid_r = 0.5 * (raw_st[0] + raw_st[1])
    mid_e = 0.5 * (edit_st[0] + edit_st[1])
    side_r = 0.5 * (raw_st[0] - raw_st[1])
    side_e = 0.5 * (edit_st[0] - edit_st[1])
    em_r, em_e = float(mid_r @ mid_r), float(mid_e @ mid_e)
    es_r, es_e = float(side_r @ side_r), float(side_e @ side_e)
    if em_r <= 1e-9 or es_r <= 1e-4 * em_r:
        return None  # mono source: width means nothing
    if abs(10.0 * math.log10(max(em_e, 1e-12) / em_r)) > 1.0:
        return None  # the mid changed too: not a width change
    w = math.sqrt(es_e / es_r)
    return None if abs(w - 1.0) < 0.2 else w


def width_slot(raw_st: np.ndarray, edit_st: np.ndarray) -> tuple[int, float] | None:
    """Amount slot of a WIDTH change between stereo beats ``(2, n)``, with its dB error; None if none.

    WIDTH scales the side signal and keeps the mid one. The side's scale
    (``side_scale``) is read only over the parts of the beat (eighths)
    whose mid is the raw beat's waveform (normalised correlation at least
    ``WIDTH_MIN_MID_CORR``, the edit placed within ``WIDTH_MAX_LAG``
    samples), and they must make up half the beat or more. A beat that
    straddles another editor's effect or splice (its grid is not ours) has
    part of its mid changed, and on a near-mono song the side (20-40 dB
    under the mid) is leakage that such a change moves by a few dB over
    the whole beat: read as a width change, it was a false effect label
    (the foreign editor's dev pairs). A true width change holds where the
    mid is untouched (the project's renderer: a width beat whose last
    eighth the next action's pitch shift reaches).
    """
    if side_scale(raw_st, edit_st) is None:
        return None
    n = min(raw_st.shape[1], edit_st.shape[1])
    mid_r = 0.5 * (raw_st[0, :n] + raw_st[1, :n])
    mid_e = 0.5 * (edit_st[0, :n] + edit_st[1, :n])
    lag = _best_lag(mid_r, mid_e, WIDTH_MAX_LAG)
    r = raw_st[:, max(-lag, 0) : n - max(lag, 0)]
    e = edit_st[:, max(lag, 0) : n + min(lag, 0)]
    m = r.shape[1] // WIDTH_PARTS
    if m < 64:
        return None
    kept = []
    for k in range(WIDTH_PARTS):
        a = 0.5 * (r[0, k * m : (k + 1) * m] + r[1, k * m : (k + 1) * m])
        b = 0.5 * (e[0, k * m : (k + 1) * m] + e[1, k * m : (k + 1) * m])
        den = math.sqrt(float(a @ a) * float(b @ b))
        if den > 0.0 and float(a @ b) >= WIDTH_MIN_MID_CORR * den:
            kept.append(slice(k * m, (k + 1) * m))
    if 2 * len(kept) < WIDTH_PARTS:
        return None  # the mid is not the raw beat's over most of it: something else changed it
    w = side_scale(np.concatenate([r[:, s] for s in kept], axis=1), np.concatenate([e[:, s] for s in kept], axis=1))
    if w is None:
        return None  # where the mid is the raw beat's, the side is too
    slot = int(np.argmin([abs(w - v) for v in WIDTH_VALUES]))
    return slot, abs(w - WIDTH_VALUES[slot])


def _best_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """The lag (samples, within ``max_lag``) at which ``y`` best matches ``x`` (``y[t + lag] ~ x[t]``); equal lengths.

    A beat's place in the edit is measured to within a few ms
    (``splices``); a waveform comparison must not fail on that.
    """
    n = min(x.shape[0], y.shape[0])
    lag = min(max_lag, n - 1)
    if lag <= 0:
        return 0
    size = 1 << int(math.ceil(math.log2(2 * n)))
    xy = np.fft.irfft(np.fft.rfft(y[:n], size) * np.conj(np.fft.rfft(x[:n], size)), size)
    near = np.concatenate([xy[size - lag :], xy[: lag + 1]])  # lags -lag..lag
    return int(np.argmax(near)) - lag
