"""Beat and downbeat activations from BeatNet's CRNN, run in numpy (DESIGN section 3).

BeatNet (Heydari et al., ISMIR 2021) trained three small CRNNs, whose
weights come with editorbot under CC BY 4.0 (``models/beatnet``: its
NOTICE.md gives the attribution, convert.py how the files were made): a log-frequency
spectrogram and its positive difference (272 values per 20-ms frame) go
through a 1-D convolution, a linear layer, a two-layer unidirectional LSTM
(150 cells) and a softmax over beat, downbeat and no beat. Nothing is
downloaded at run time and torch is not needed: the weights are plain
arrays in ``.npz`` files (read without pickle) and the network runs in
numpy.

The front end is a numpy copy of the madmom processors BeatNet was trained
with (``BeatNet.log_spect.LOG_SPECT``): 1411-sample Hann frames (64 ms at
22,050 Hz) centred every 441 samples (50 frames/s), a 705-bin magnitude
spectrum, 24-band-per-octave triangular filters from 30 Hz to 17 kHz
(normalised to unit area, duplicates merged), ``log10(1 + x)``, and the
positive first difference.

The LSTM runs in numba, one pass over the song (it is causal, and from a
zero state it takes a second or two to settle: ``activations`` lets it
settle on ``LEAD_IN`` frames of silence first); the input side of its
gates, the convolution and the front end are computed for the whole song
at once, so that only the 150 x 600 recurrent product and the gates'
sigmoids (a float32 exp the compiler vectorises) are left inside the loop
over frames.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
from numba import njit

from editorbot.engine.errors import ActivationUnavailable

log = logging.getLogger(__name__)

SR = 22050
FRAME = 1411
HOP = 441
FPS = SR / HOP
BANDS_PER_OCTAVE = 24
FMIN_HZ, FMAX_HZ, FREF_HZ = 30.0, 17000.0, 440.0
DEFAULT_MODEL = 1
#: The models whose mean activation the learned tracker reads.
ENSEMBLE = (1, 2, 3)
FEATURE_BLOCK = 128  # frames per block of the front end: a block and its spectrum stay in L2
#: Frames of silence (2 s) the networks hear before the song (``activations``).
LEAD_IN = 100


def weights_path(model: int = DEFAULT_MODEL) -> Path:
    """The ``.npz`` file of BeatNet model ``model`` (1: trained without GTZAN, 2: without Ballroom, 3: without the Rock corpus)."""
    path = Path(str(resources.files("editorbot") / "models" / "beatnet" / f"model_{model}.npz"))
    if not path.exists():
        raise ActivationUnavailable(f"{path}: the learned beat tracker's weights are missing")
    return path


@functools.lru_cache(maxsize=4)
def load_weights(model: int = DEFAULT_MODEL) -> dict[str, np.ndarray]:
    """BeatNet model ``model``'s weights (float32 arrays keyed as in its ``state_dict``)."""
    with np.load(weights_path(model), allow_pickle=False) as npz:
        return {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}


@functools.lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    """``(705, 136)`` float32 madmom ``LogarithmicFilterbank`` for the 1411-point frames (see module doc)."""
    n_bins = FRAME >> 1
    bin_freqs = np.fft.fftfreq(n_bins * 2, 1.0 / SR)[:n_bins]
    left = np.floor(np.log2(FMIN_HZ / FREF_HZ) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX_HZ / FREF_HZ) * BANDS_PER_OCTAVE)
    freqs = FREF_HZ * 2.0 ** (np.arange(left, right) / BANDS_PER_OCTAVE)
    freqs = freqs[np.searchsorted(freqs, FMIN_HZ) :]
    freqs = freqs[: np.searchsorted(freqs, FMAX_HZ, "right")]
    idx = np.clip(bin_freqs.searchsorted(freqs), 1, n_bins - 1)
    idx -= (freqs - bin_freqs[idx - 1]) < (bin_freqs[idx] - freqs)
    bins = np.unique(idx)
    filters = []
    for i in range(len(bins) - 2):
        start, centre, stop = (int(b) for b in bins[i : i + 3])
        if stop - start < 2:
            centre, stop = start, start + 1
        c, s = centre - start, stop - start
        tri = np.zeros(s)
        tri[:c] = np.linspace(0.0, 1.0, c, endpoint=False)
        tri[c:] = np.linspace(1.0, 0.0, s - c, endpoint=False)
        tri /= tri.sum()
        col = np.zeros(n_bins)
        col[start:stop] = tri
        filters.append(col)
    return np.stack(filters, axis=1).astype(np.float32)


def features(mono: np.ndarray) -> np.ndarray:
    """``(n_frames, 272)`` float32 BeatNet input of 22,050-Hz mono audio: log filtered spectrum and its positive difference.

    Frame ``i`` is centred on sample ``i * 441``; ``n_frames = ceil(len / 441)``.
    """
    from scipy import fft as sfft

    y = np.asarray(mono, dtype=np.float32)
    n_frames = max(1, -(-len(y) // HOP))
    half = FRAME // 2
    padded = np.zeros(half + n_frames * HOP + FRAME, dtype=np.float32)
    padded[half : half + len(y)] = y
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, FRAME), strides=(HOP * padded.itemsize, padded.itemsize)
    )
    window = np.hanning(FRAME).astype(np.float32)
    lo, hi, weights = _filter_ranges()
    n_bands = len(lo)
    out = np.empty((n_frames, 2 * n_bands), dtype=np.float32)
    block = np.empty((min(FEATURE_BLOCK, n_frames), FRAME), dtype=np.float32)
    # In blocks that stay in cache: one array of every windowed frame and
    # its spectrum would be ~150 MB for a 4-minute song, and allocating it
    # cost more than the FFTs.
    for start in range(0, n_frames, FEATURE_BLOCK):
        rows = min(FEATURE_BLOCK, n_frames - start)
        np.multiply(frames[start : start + rows], window, out=block[:rows])
        _log_bands(sfft.rfft(block[:rows], axis=1, workers=1), lo, hi, weights, out, start)
    _positive_difference(out, n_bands)
    return out


@functools.lru_cache(maxsize=1)
def _filter_ranges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_filterbank`` as ranges: band ``b`` weighs bins ``lo[b]:hi[b]`` by ``weights[b, : hi[b] - lo[b]]``.

    Each triangle spans a few bins of 705: 98 % of the dense product's
    multiply-adds were by zero.
    """
    fb = _filterbank()
    lo = np.array([np.flatnonzero(col)[0] for col in fb.T], dtype=np.int64)
    hi = np.array([np.flatnonzero(col)[-1] + 1 for col in fb.T], dtype=np.int64)
    weights = np.zeros((fb.shape[1], int((hi - lo).max())), dtype=np.float32)
    for b, (a, z) in enumerate(zip(lo, hi)):
        weights[b, : z - a] = fb[a:z, b]
    return lo, hi, weights


@njit(cache=True, fastmath=True, nogil=True)
def _log_bands(
    spectrum: np.ndarray, lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, out: np.ndarray, row0: int
) -> None:
    """``out[row0 + i, b] = log10(1 + sum of band b's weights x |spectrum[i]|)`` for each row ``i`` of ``spectrum``."""
    n_bins = FRAME >> 1
    mag = np.empty(n_bins, dtype=np.float32)
    for i in range(spectrum.shape[0]):
        for k in range(n_bins):
            z = spectrum[i, k]
            mag[k] = np.sqrt(z.real * z.real + z.imag * z.imag)
        for b in range(lo.shape[0]):
            acc = np.float32(0.0)
            for k in range(lo[b], hi[b]):
                acc += weights[b, k - lo[b]] * mag[k]
            out[row0 + i, b] = np.log10(np.float32(1.0) + acc)


@njit(cache=True, fastmath=True, nogil=True)
def _positive_difference(out: np.ndarray, n_bands: int) -> None:
    """``out[:, n_bands:]``: the positive first difference of ``out[:, :n_bands]`` over frames (0 for the first)."""
    for b in range(n_bands):
        out[0, n_bands + b] = 0.0
    for i in range(1, out.shape[0]):
        for b in range(n_bands):
            out[i, n_bands + b] = max(out[i, b] - out[i - 1, b], np.float32(0.0))


@njit(cache=True, fastmath=True, nogil=True)
def _conv_pool(x: np.ndarray, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """BeatNet's 1-D convolution over the 272 inputs, ReLU and max-pool by 2: ``(T, channels, n_pool)``.

    ``x`` ``(T, n_in)``, ``w`` ``(channels, taps)``, ``bias`` ``(channels,)``.
    """
    n_t, n_in = x.shape
    n_ch, k = w.shape
    n_pool = (n_in - k + 1) // 2
    out = np.empty((n_t, n_ch, n_pool), dtype=np.float32)
    for t in range(n_t):
        for ch in range(n_ch):
            for p in range(n_pool):
                a = bias[ch]
                b = bias[ch]
                for j in range(k):
                    a += w[ch, j] * x[t, 2 * p + j]
                    b += w[ch, j] * x[t, 2 * p + 1 + j]
                out[t, ch, p] = max(a, b, np.float32(0.0))
    return out


# float32 exp by Cody-Waite range reduction and Cephes' expf polynomial
# (relative error ~2e-7): numba has no vector exp without Intel's SVML, and
# the scalar expf calls were a third of the LSTM's time.
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_CLAMP = np.float32(87.0)  # exp(+-87) stays a normal float32


@njit(cache=True, fastmath=True, nogil=True)
def _sigmoid(x: np.ndarray, scale: np.ndarray, out: np.ndarray, pow2: np.ndarray, pow2_bits: np.ndarray) -> None:
    """``out = 1 / (1 + exp(-scale * x))`` element-wise, in loops the compiler vectorises.

    ``x``, ``scale``, ``out``, ``pow2`` ``(n,)`` float32; ``pow2_bits`` is
    ``pow2.view(np.int32)`` (scratch: ``2 ** k`` is built from its exponent
    bits, in a loop of its own so that the two views never alias within one).
    """
    n = x.shape[0]
    for u in range(n):
        z = min(max(-scale[u] * x[u], -_EXP_CLAMP), _EXP_CLAMP)
        k = np.floor(z * _LOG2E + np.float32(0.5))
        r = z - k * _LN2_HI - k * _LN2_LO
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[u] = p * r * r + r + np.float32(1.0)
        pow2[u] = k
    for u in range(n):
        pow2_bits[u] = (np.int32(pow2[u]) + np.int32(127)) << np.int32(23)
    for u in range(n):
        out[u] = np.float32(1.0) / (np.float32(1.0) + out[u] * pow2[u])


@njit(cache=True, fastmath=True, nogil=True)
def _lstm(gates_in: np.ndarray, bias: np.ndarray, w_hh_t: np.ndarray) -> np.ndarray:
    """One LSTM layer (torch's gate order i, f, g, o) from a zero state: ``(T, hidden)``.

    ``gates_in`` ``(T, 4 * hidden)`` is the input's share of the gates (one
    matrix product for the whole song, outside the recurrence), ``bias``
    ``(4 * hidden,)`` both biases summed (added here: a pass over the whole
    ``gates_in`` cost as much as the product); ``w_hh_t`` ``(hidden, 4 *
    hidden)`` the recurrent weights, transposed, so that the recurrent
    product is a run of contiguous multiply-adds the compiler vectorises.
    That product streams the 360 kB of weights from the L2 cache every
    frame and bounds the loop (~4 us a frame on the 2-core machine).
    """
    n_t, four_h = gates_in.shape
    hidden = four_h // 4
    h = np.zeros(hidden, dtype=np.float32)
    c = np.zeros(hidden, dtype=np.float32)
    out = np.empty((n_t, hidden), dtype=np.float32)
    g = np.empty(four_h, dtype=np.float32)
    s = np.empty(four_h, dtype=np.float32)
    pow2 = np.empty(four_h, dtype=np.float32)
    pow2_bits = pow2.view(np.int32)
    c2 = np.empty(hidden, dtype=np.float32)
    # One sigmoid pass over every gate: tanh(x) = 2 sigmoid(2x) - 1 for the cell input and the cell.
    scale = np.ones(four_h, dtype=np.float32)
    scale[2 * hidden : 3 * hidden] = 2.0
    two_s = np.full(hidden, 2.0, dtype=np.float32)
    one, two = np.float32(1.0), np.float32(2.0)
    blocked = hidden - hidden % 6
    for t in range(n_t):
        for u in range(four_h):
            g[u] = gates_in[t, u] + bias[u]
        # Six rows of the weights per pass over the gates: a sixth of the
        # loads and stores of ``g``.
        for j in range(0, blocked, 6):
            h0, h1, h2, h3, h4, h5 = h[j], h[j + 1], h[j + 2], h[j + 3], h[j + 4], h[j + 5]
            for u in range(four_h):
                g[u] += (
                    h0 * w_hh_t[j, u]
                    + h1 * w_hh_t[j + 1, u]
                    + h2 * w_hh_t[j + 2, u]
                    + h3 * w_hh_t[j + 3, u]
                    + h4 * w_hh_t[j + 4, u]
                    + h5 * w_hh_t[j + 5, u]
                )
        for j in range(blocked, hidden):
            hj = h[j]
            for u in range(four_h):
                g[u] += hj * w_hh_t[j, u]
        _sigmoid(g, scale, s, pow2, pow2_bits)
        for u in range(hidden):
            cc = s[hidden + u] * c[u] + s[u] * (two * s[2 * hidden + u] - one)
            c[u] = cc
        _sigmoid(c, two_s, c2, pow2, pow2_bits)
        for u in range(hidden):
            hh = s[3 * hidden + u] * (two * c2[u] - one)
            h[u] = hh
            out[t, u] = hh
    return out


def network(feats: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """``(batch, time, 3)`` softmax (beat, downbeat, no beat) of BeatNet's CRNN over ``feats (batch, time, 272)``."""
    out = []
    for x in np.asarray(feats, dtype=np.float32):
        pooled = _conv_pool(np.ascontiguousarray(x), weights["conv1.weight"][:, 0], weights["conv1.bias"])
        h = pooled.reshape(len(x), -1) @ weights["linear0.weight"].T
        h += weights["linear0.bias"]
        # One (T, 600) buffer for both layers' input side: a fresh 30-MB
        # array per layer cost its page faults again.
        gates = np.empty((len(x), weights["lstm.weight_ih_l0"].shape[0]), dtype=np.float32)
        for layer in (0, 1):
            np.matmul(h, weights[f"lstm.weight_ih_l{layer}"].T, out=gates)
            h = _lstm(
                gates,
                weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"],
                np.ascontiguousarray(weights[f"lstm.weight_hh_l{layer}"].T),
            )
        logits = h @ weights["linear.weight"].T + weights["linear.bias"]
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out.append(e / e.sum(axis=1, keepdims=True))
    return np.stack(out).astype(np.float32)


def activations(mono: np.ndarray, models: int | tuple[int, ...] = ENSEMBLE) -> np.ndarray:
    """``(n_frames, 2)`` float32 beat and downbeat activations at ``FPS`` frames/s of 22,050-Hz mono audio.

    Column 0 is the probability of a beat that is not a downbeat, column 1
    of a downbeat (frame ``i`` at ``i / FPS`` seconds). With several
    ``models`` (BeatNet's 1, 2, 3 by default), their mean: each was trained
    without one of BeatNet's corpora and each misreads the metrical level of
    different songs (on the real-music corpus' dev half, beat-only decoding:
    median beat F 0.896 / 0.711 / 0.855 alone, 0.943 for the mean). The
    networks hear ``LEAD_IN`` frames of silence before the song, so that
    their first second is not their settling from a zero state.

    Raises
    ------
    ActivationUnavailable
        the weight files (``models/beatnet``) are missing.
    """
    ids = (models,) if isinstance(models, int) else tuple(models)
    song = features(mono)
    # The networks start from a zero state, which they answer with 0.15-0.35
    # of beat for a second or two: beats the decoder would place in a silent
    # or beatless lead-in. LEAD_IN frames of silence first let them settle
    # (to ~0.02 in silence); their outputs are dropped.
    feats = np.zeros((1, LEAD_IN + len(song), song.shape[1]), dtype=np.float32)
    feats[0, LEAD_IN:] = song
    weights = [load_weights(m) for m in ids]
    # The networks' sequential LSTM loops release the GIL: one thread each.
    with ThreadPoolExecutor(max_workers=min(len(ids), os.cpu_count() or 1)) as pool:
        outs = list(pool.map(lambda w: network(feats, w)[0, LEAD_IN:, :2], weights))
    return np.asarray(np.mean(outs, axis=0, dtype=np.float32))
