"""Beat and downbeat activations from BeatNet's CRNN, run in numpy (DESIGN section 3).

BeatNet (``pip install BeatNet --no-deps``; Heydari et al., ISMIR 2021)
ships three small CRNNs with its wheel under CC BY 4.0: a log-frequency
spectrogram and its positive difference (272 values per 20-ms frame) go
through a 1-D convolution, a linear layer, a two-layer unidirectional LSTM
(150 cells) and a softmax over beat, downbeat and no beat. Nothing is
downloaded at run time and torch is not needed: the weights are read from
the wheel's ``.pt`` zip archive directly (``_read_state_dict``) and the
network runs in numpy.

The front end is a numpy copy of the madmom processors BeatNet was trained
with (``BeatNet.log_spect.LOG_SPECT``): 1411-sample Hann frames (64 ms at
22,050 Hz) centred every 441 samples (50 frames/s), a 705-bin magnitude
spectrum, 24-band-per-octave triangular filters from 30 Hz to 17 kHz
(normalised to unit area, duplicates merged), ``log10(1 + x)``, and the
positive first difference.

The LSTM runs in numba, one pass over the song (it is causal: its first
second or two, before the state settles, mark beats weakly).
"""

from __future__ import annotations

import functools
import io
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
from numba import njit

log = logging.getLogger(__name__)

SR = 22050
FRAME = 1411
HOP = 441
FPS = SR / HOP
BANDS_PER_OCTAVE = 24
FMIN_HZ, FMAX_HZ, FREF_HZ = 30.0, 17000.0, 440.0
DEFAULT_MODEL = 1


class ActivationUnavailable(RuntimeError):
    """BeatNet's weights are not installed."""


def weights_path(model: int = DEFAULT_MODEL) -> Path:
    """The ``.pt`` file of BeatNet model ``model`` (1: trained without GTZAN, 2: without Ballroom, 3: without the Rock corpus)."""
    import importlib.util

    spec = importlib.util.find_spec("BeatNet")
    if spec is None or not spec.submodule_search_locations:
        raise ActivationUnavailable("BeatNet is not installed (pip install BeatNet --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / f"model_{model}_weights.pt"
    if not path.exists():
        raise ActivationUnavailable(f"{path}: BeatNet's weights are missing")
    return path


class _Storage:
    def __init__(self, key: str, dtype: np.dtype) -> None:
        self.key, self.dtype = key, dtype


_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64, "IntStorage": np.int32}


def _read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch ``state_dict`` zip file as numpy arrays, without torch.

    Only plain tensors are rebuilt; any other object in the pickle is refused,
    so reading the file never runs code.
    """
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        blobs: dict[str, bytes] = {}

        def rebuild(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: object) -> np.ndarray:
            if storage.key not in blobs:
                blobs[storage.key] = zf.read(f"{root}/data/{storage.key}")
            flat = np.frombuffer(blobs[storage.key], dtype=storage.dtype)
            item = flat.itemsize
            return np.lib.stride_tricks.as_strided(
                flat[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
            ).copy()

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return rebuild
                if module == "collections" and name == "OrderedDict":
                    import collections

                    return collections.OrderedDict
                if module == "torch" and name in _DTYPES:
                    return name
                raise pickle.UnpicklingError(f"{path}: unexpected object {module}.{name}")

            def persistent_load(self, pid):  # type: ignore[no-untyped-def]
                _, storage_type, key, _location, _numel = pid
                return _Storage(str(key), np.dtype(_DTYPES[storage_type]))

        state = Unpickler(io.BytesIO(zf.read(f"{root}/data.pkl"))).load()
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


@functools.lru_cache(maxsize=4)
def load_weights(model: int = DEFAULT_MODEL) -> dict[str, np.ndarray]:
    """BeatNet model ``model``'s weights (float32 arrays keyed as in its ``state_dict``)."""
    return _read_state_dict(weights_path(model))


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
    mag = np.abs(sfft.rfft(frames * window, axis=1, workers=1)[:, : FRAME >> 1]).astype(np.float32)
    spec = np.log10(mag @ _filterbank() + 1.0)
    diff = np.zeros_like(spec)
    np.maximum(spec[1:] - spec[:-1], 0.0, out=diff[1:])
    return np.hstack([spec, diff])


@njit(cache=True, fastmath=True)
def _lstm(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One LSTM layer (torch's gate order i, f, g, o) over ``x (batch, time, in)`` from a zero state; ``(batch, time, hidden)``."""
    n_b, n_t, n_in = x.shape
    hidden = w_hh.shape[1]
    gates_in = (x.reshape(n_b * n_t, n_in) @ w_ih.T).reshape(n_b, n_t, 4 * hidden)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    h = np.zeros((n_b, hidden), dtype=np.float32)
    c = np.zeros((n_b, hidden), dtype=np.float32)
    out = np.empty((n_b, n_t, hidden), dtype=np.float32)
    for t in range(n_t):
        g = h @ w_hh_t
        for j in range(n_b):
            for u in range(hidden):
                gi = g[j, u] + gates_in[j, t, u] + b[u]
                gf = g[j, hidden + u] + gates_in[j, t, hidden + u] + b[hidden + u]
                gg = g[j, 2 * hidden + u] + gates_in[j, t, 2 * hidden + u] + b[2 * hidden + u]
                go = g[j, 3 * hidden + u] + gates_in[j, t, 3 * hidden + u] + b[3 * hidden + u]
                i = 1.0 / (1.0 + np.exp(-gi))
                f = 1.0 / (1.0 + np.exp(-gf))
                o = 1.0 / (1.0 + np.exp(-go))
                cc = f * c[j, u] + i * np.tanh(gg)
                c[j, u] = cc
                hh = o * np.tanh(cc)
                h[j, u] = hh
                out[j, t, u] = hh
    return out


def network(feats: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """``(batch, time, 3)`` softmax (beat, downbeat, no beat) of BeatNet's CRNN over ``feats (batch, time, 272)``."""
    n_b, n_t, n_in = feats.shape
    x = feats.reshape(-1, n_in)
    k = weights["conv1.weight"].shape[-1]
    n_out = n_in - k + 1
    w = weights["conv1.weight"][:, 0]
    conv = np.empty((x.shape[0], w.shape[0], n_out), dtype=np.float32)
    for ch in range(w.shape[0]):
        acc = np.full((x.shape[0], n_out), weights["conv1.bias"][ch], dtype=np.float32)
        for j in range(k):
            acc += w[ch, j] * x[:, j : j + n_out]
        conv[:, ch] = acc
    conv = np.maximum(conv, 0.0)
    n_pool = conv.shape[2] // 2
    pooled = conv[:, :, : 2 * n_pool].reshape(conv.shape[0], conv.shape[1], n_pool, 2).max(axis=3)
    h = pooled.reshape(pooled.shape[0], -1) @ weights["linear0.weight"].T + weights["linear0.bias"]
    h = h.reshape(n_b, n_t, -1).astype(np.float32)
    for layer in (0, 1):
        h = _lstm(
            np.ascontiguousarray(h),
            np.ascontiguousarray(weights[f"lstm.weight_ih_l{layer}"]),
            np.ascontiguousarray(weights[f"lstm.weight_hh_l{layer}"]),
            (weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]).astype(np.float32),
        )
    logits = h @ weights["linear.weight"].T + weights["linear.bias"]
    logits -= logits.max(axis=2, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=2, keepdims=True)


def activations(mono: np.ndarray, model: int = DEFAULT_MODEL) -> np.ndarray:
    """``(n_frames, 2)`` float32 beat and downbeat activations at ``FPS`` frames/s of 22,050-Hz mono audio.

    Column 0 is the probability of a beat that is not a downbeat, column 1
    of a downbeat (frame ``i`` at ``i / FPS`` seconds).

    Raises
    ------
    ActivationUnavailable
        BeatNet (its weights) is not installed.
    """
    weights = load_weights(model)
    return network(features(mono)[None], weights)[0, :, :2]
