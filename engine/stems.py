"""Stem separation: the built-in separator, choosing a separator, stem caching and features.

A separator (``engine.separator.Separator``, also importable from here) turns a
mix ``(n_channels, n_samples)`` into the stems it offers (``separator.stems``,
named as ``engine.features.STEM_NAMES``: drums, bass, vocals, other), each of
the mix's shape; what it does not separate stays in ``other``.

- ``BuiltinSeparator``: numpy/scipy only, always available; offers drums and
  other. Harmonic/percussive masks from a grey opening and median filters of
  the STFT magnitude. Its masks sum to one in every time-frequency bin and the
  inverse STFT reconstructs perfectly, so its stems add back up to the mix (to
  float rounding, about -130 dB). Its bass and vocal estimates did not beat
  mix/4 by 3 dB SDR (bench/stems.py), so it does not produce them.
- ``engine.demucs_separator.DemucsSeparator``: HTDemucs from local weights
  (the optional ``stems`` extra); model loading and applying it to long audio
  live in that module.

``separator_for(name, model_dir)`` picks one: ``auto`` uses demucs when its
weights are present and says why it did not otherwise. Stems are cached per
file (audio sha256 + separator) by ``separate_cached``; ``stem_columns``
pools stem rms, centroid and onset strength per beat, as engine.features
pools its columns (named ``stem_<separator kind>_<stem>_<feature>``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from editorbot.engine import demucs_separator, descriptors, features
from editorbot.engine.audio import ANALYSIS_SR, Audio, analysis_mono, load_audio, sha256_file, write_audio
from editorbot.engine.cache import FeatureCache, default_cache_dir
from editorbot.engine.chains import StemChain, load_chain
from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_FEATURES, STEM_NAMES
from editorbot.engine.formats import SEPARATOR_NAMES
from editorbot.engine.progress import progress
from editorbot.engine.separator import Separator, check_mix
from editorbot.engine.spectrum import HOP_LENGTH, N_FFT, compute_spectrum, onset_strength

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- STFT with perfect reconstruction

_FRAMES_PER_BLOCK = 256


def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, ``(n_fft,)`` float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def stft(x: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred STFT (zero padding ``n_fft // 2``), periodic Hann window.

    Parameters
    ----------
    x : np.ndarray
        ``(n_channels, n_samples)`` float32.

    Returns
    -------
    np.ndarray
        ``(n_channels, n_frames, 1 + n_fft // 2)`` complex64, frame-major (each
        frame's bins contiguous), ``n_frames = 1 + ceil(n_samples / hop_length)``.
    """
    n_channels, n_samples = x.shape
    pad = n_fft // 2
    n_frames = 1 + -(-n_samples // hop_length)
    padded = np.zeros((n_channels, (n_frames - 1) * hop_length + n_fft), dtype=np.float32)
    padded[:, pad : pad + n_samples] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length]
    window = _hann(n_fft)
    out = np.empty((n_channels, n_frames, n_fft // 2 + 1), dtype=np.complex64)
    for start in range(0, n_frames, _FRAMES_PER_BLOCK):
        stop = min(start + _FRAMES_PER_BLOCK, n_frames)
        out[:, start:stop] = scipy.fft.rfft(frames[:, start:stop] * window, axis=-1)
    return out


def istft(spec: np.ndarray, *, n_fft: int, hop_length: int, length: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Inverse of ``stft``: weighted overlap-add, divided by the summed squared window.

    With the same window for analysis and synthesis and ``hop_length`` dividing
    ``n_fft``, ``istft(stft(x)) == x`` to float rounding, and the transform is
    linear: stems made with masks that sum to one add up to the mix.

    Parameters
    ----------
    spec : np.ndarray
        ``(n_channels, n_frames, 1 + n_fft // 2)`` complex, from ``stft``.
    length : int
        samples to return (the signal's length before ``stft``).
    mask : np.ndarray | None
        optional ``(n_frames, 1 + n_fft // 2)`` real mask applied to every
        channel (block by block, so the masked spectrum is never stored whole).

    Returns
    -------
    np.ndarray
        ``(n_channels, length)`` float32.
    """
    if n_fft % hop_length:
        raise ValueError("hop_length must divide n_fft")
    n_channels, n_frames, _ = spec.shape
    ratio = n_fft // hop_length
    window = _hann(n_fft)
    n_blocks = n_frames + ratio - 1
    out = np.zeros((n_channels, n_blocks, hop_length), dtype=np.float32)
    for start in range(0, n_frames, _FRAMES_PER_BLOCK):
        stop = min(start + _FRAMES_PER_BLOCK, n_frames)
        block = spec[:, start:stop]
        if mask is not None:
            block = block * mask[start:stop]
        frames = scipy.fft.irfft(block, n=n_fft, axis=-1).astype(np.float32, copy=False)
        frames *= window
        frames = frames.reshape(n_channels, stop - start, ratio, hop_length)
        for j in range(ratio):
            out[:, start + j : stop + j] += frames[:, :, j]
    envelope = np.zeros((n_blocks, hop_length), dtype=np.float64)
    squared = (window.astype(np.float64) ** 2).reshape(ratio, hop_length)
    for j in range(ratio):
        envelope[j : j + n_frames] += squared[j]
    out = out.reshape(n_channels, -1)
    envelope = envelope.reshape(-1)
    good = envelope > 1e-8
    out[:, good] /= envelope[good].astype(np.float32)
    out[:, ~good] = 0.0
    pad = n_fft // 2
    result = out[:, pad : pad + length]
    if result.shape[1] < length:
        result = np.pad(result, ((0, 0), (0, length - result.shape[1])))
    return np.ascontiguousarray(result)


# --------------------------------------------------------------------------- median filtering

# Compare-exchange network whose element 4 ends as the median of 9 (Paeth;
# Devillard's opt_med9): 19 vectorised min/max pairs instead of a sort per bin.
_MEDIAN9_NETWORK = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip
_MEDIAN_BLOCK_ELEMENTS = 1 << 16


def median9(x: np.ndarray, *, axis: int, dilation: int = 1) -> np.ndarray:
    """Median over 9 taps spaced ``dilation`` apart along ``axis`` of a 2-D array.

    Equals ``scipy.ndimage.median_filter`` with a 9-tap footprint (dilated) and
    ``mode="mirror"`` edges; the taps span ``8 * dilation + 1`` elements, so a
    dilation widens the filter at the cost of a 9-tap median. Runs as a sorting
    network of elementwise min/max over cache-sized blocks.

    Parameters
    ----------
    x : np.ndarray
        ``(n_rows, n_cols)`` float32.
    axis : int
        0 filters down columns, 1 along rows.
    dilation : int
        spacing of the taps (>= 1).

    Returns
    -------
    np.ndarray
        float32 array of ``x``'s shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or axis not in (0, 1):
        raise ValueError("median9 filters a 2-D array along axis 0 or 1")
    work = x if axis == 1 else x.T
    reach = 4 * dilation
    n = work.shape[1]
    padded = np.pad(work, ((0, 0), (reach, reach)), mode="reflect" if n > 1 else "edge")
    result = np.empty_like(work)
    rows_per_block = max(1, _MEDIAN_BLOCK_ELEMENTS // max(n, 1))
    taps = np.empty((9, min(rows_per_block, work.shape[0]), n), dtype=np.float32)
    scratch = np.empty(taps.shape[1:], dtype=np.float32)
    for r0 in range(0, work.shape[0], rows_per_block):
        r1 = min(r0 + rows_per_block, work.shape[0])
        rows = r1 - r0
        p = [taps[k, :rows] for k in range(9)]
        for k in range(9):
            np.copyto(p[k], padded[r0:r1, k * dilation : k * dilation + n])
        tmp = scratch[:rows]
        for i, j in _MEDIAN9_NETWORK:
            np.minimum(p[i], p[j], out=tmp)
            np.maximum(p[i], p[j], out=p[j])
            p[i], tmp = tmp, p[i]
        result[r0:r1] = p[4]
    return result if axis == 1 else result.T


# --------------------------------------------------------------------------- built-in separator


def _crossover(freqs_hz: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """1 below ``low_hz``, 0 above ``high_hz``, a raised cosine over log frequency between."""
    f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3)
    position = np.clip(np.log2(f / low_hz) / np.log2(high_hz / low_hz), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * position)).astype(np.float32)


def _opening(x: np.ndarray, size: int) -> np.ndarray:
    """Grey opening along axis 0 (a running minimum, then a running maximum, over ``size`` rows)."""
    if size <= 1:
        return x.copy()
    return scipy.ndimage.maximum_filter1d(scipy.ndimage.minimum_filter1d(x, size=size, axis=0), size=size, axis=0)


@dataclass
class BuiltinSeparator(Separator):
    """Drums and the rest, by harmonic/percussive masks; numpy/scipy only.

    It offers two stems, ``drums`` and ``other`` (everything that is not
    drums). Its bass and vocal estimates did not beat the trivial mix/4 by
    3 dB SDR on the synthesizer's dry stems (bench/stems.py; docs/stems.md
    has the figures), so they are not produced: bass and vocals stay in
    ``other``.

    Masks per time-frequency bin, from the channel-averaged magnitude ``|X|``:

    - the sustained floor ``F``: the grey opening of ``|X|`` across time (a
      running minimum then maximum), over ``low_span_s`` below
      ``low_split_hz[0]`` and ``high_span_s`` above ``low_split_hz[1]``
      (blended between). A drum hit is shorter than the span, so the opening
      removes it; a held note is longer and survives. Below ~100 Hz a kick's
      body rings for a few hundred milliseconds, hence the longer span there.
    - ``H = min(F, median across time over harmonic_span_s, |X|)``, ``P =
      max(|X| - H, median across frequency over percussive_span_hz)``
      (Fitzgerald 2010 for the medians);
    - ``h = H^2 / (H^2 + P^2)``; drums ``1 - h``, other ``h``.

    The two masks sum to one and ``istft`` reconstructs perfectly, so the
    stems add up to the mix. The same masks apply to every channel.
    """

    harmonic_span_s: float = 0.2
    percussive_span_hz: float = 400.0
    low_span_s: float = 0.5
    high_span_s: float = 0.05
    low_split_hz: tuple[float, float] = (100.0, 250.0)
    window_s: float = 0.0464  # STFT window, rounded to a power of two in samples (2048 at 44.1 kHz)
    quiet: bool = True
    note: str | None = None

    name = "builtin"
    kind = "builtin"
    stems = ("drums", "other")
    VERSION = 2

    @property
    def cache_id(self) -> str:
        return (
            f"builtin/{self.VERSION}:{self.harmonic_span_s}:{self.percussive_span_hz}:"
            f"{self.low_span_s}:{self.high_span_s}:{self.low_split_hz}:{self.window_s}"
        )

    def stft_size(self, sample_rate: int) -> tuple[int, int]:
        """``(n_fft, hop_length)`` at ``sample_rate``: the window rounded to a power of two, hop a quarter."""
        n_fft = int(2 ** max(8, round(np.log2(self.window_s * sample_rate))))
        return n_fft, n_fft // 4

    def masks(self, spec: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """The ``(n_frames, n_bins)`` float32 masks of ``self.stems`` for ``spec`` from ``stft`` (they sum to one)."""
        n_fft, hop = self.stft_size(sample_rate)
        magnitude = np.abs(spec).mean(axis=0, dtype=np.float32)
        frame_s = hop / sample_rate
        bin_hz = sample_rate / n_fft
        freqs = np.arange(spec.shape[2]) * bin_hz
        low = _crossover(freqs, *self.low_split_hz)
        floor = _opening(magnitude, max(1, round(self.low_span_s / frame_s)))
        floor *= low
        floor += (1.0 - low) * _opening(magnitude, max(1, round(self.high_span_s / frame_s)))
        dt = max(1, round(self.harmonic_span_s / (8 * frame_s)))
        df = max(1, round(self.percussive_span_hz / (8 * bin_hz)))
        harmonic = median9(magnitude, axis=0, dilation=dt)
        np.minimum(harmonic, floor, out=harmonic)
        np.minimum(harmonic, magnitude, out=harmonic)
        del floor
        percussive = np.subtract(magnitude, harmonic)
        np.maximum(percussive, median9(magnitude, axis=1, dilation=df), out=percussive)
        del magnitude
        np.square(harmonic, out=harmonic)
        np.square(percussive, out=percussive)
        total = harmonic + percussive
        h = np.full_like(total, 0.5)
        np.divide(harmonic, total, out=h, where=total > 0)
        return {"drums": 1.0 - h, "other": h}

    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        x = check_mix(samples)
        n_fft, hop = self.stft_size(sample_rate)
        spec = stft(x, n_fft=n_fft, hop_length=hop)
        masks = self.masks(spec, sample_rate)
        stems = {}
        for name in progress(self.stems, desc="separating (builtin)", quiet=self.quiet):
            stems[name] = istft(spec, n_fft=n_fft, hop_length=hop, length=x.shape[1], mask=masks.pop(name))
        return stems


# --------------------------------------------------------------------------- choosing a separator


def separator_for(name: str = "auto", model_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> Separator:
    """The separator called ``name``.

    Parameters
    ----------
    name : str
        ``"demucs"`` (HTDemucs; BadInput naming the folder to put weights
        in when there are none, or when the ``stems`` extra is missing),
        ``"builtin"``, or ``"auto"``: demucs when it is installed and its
        weights are found, else the built-in separator with a ``note``
        saying why.
    model_dir : str | os.PathLike | None
        demucs weights (a folder or a model file); default
        ``$EDITORBOT_DEMUCS_DIR``, else ``~/.cache/editorbot/demucs``.
    quiet : bool
        no progress bars.
    """
    if name not in SEPARATOR_NAMES:
        raise BadInput(None, f"--separator: unknown separator {name!r} (known: {', '.join(SEPARATOR_NAMES)})")
    if name == "builtin":
        return BuiltinSeparator(quiet=quiet)
    weights = demucs_separator.resolve_model_dir(model_dir)
    if name == "demucs":
        return demucs_separator.DemucsSeparator(weights, quiet=quiet)
    if not demucs_separator.demucs_available():
        why = "demucs is not installed (the stems extra)"
    elif not demucs_separator.has_weights(weights):
        why = f"no demucs weights in {weights}"
    else:
        return demucs_separator.DemucsSeparator(weights, quiet=quiet)
    return BuiltinSeparator(quiet=quiet, note=f"{why}; using the built-in separator")


# --------------------------------------------------------------------------- cache


def default_stem_cache_dir() -> str:
    """``stems/`` inside the feature cache directory (``$EDITORBOT_CACHE`` or ``~/.cache/editorbot/features``)."""
    return os.path.join(default_cache_dir(), "stems")


class StemCache:
    """Separated stems on disk, one ``.npz`` per (audio sha256, separator ``cache_id``).

    Entries are written atomically and checked on read (``engine.cache.FeatureCache``);
    one with the wrong stems, shapes or rate is discarded and recomputed.
    Float32 stems take 4 x the decoded mix's size (about 340 MB for 4 minutes
    of 44.1 kHz stereo).
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.store = FeatureCache(directory if directory is not None else default_stem_cache_dir())

    @property
    def directory(self) -> str:
        return self.store.directory

    @staticmethod
    def key(audio_sha256: str, separator: Separator) -> str:
        digest = hashlib.sha256(separator.cache_id.encode("utf-8")).hexdigest()[:16]
        return FeatureCache.key(audio_sha256, digest)

    def get(self, audio_sha256: str, separator: Separator, shape: tuple[int, int], sample_rate: int):
        key = self.key(audio_sha256, separator)
        entry = self.store.get(key)
        if entry is None:
            return None
        ok = int(entry.get("sample_rate", -1)) == int(sample_rate) and all(
            name in entry and entry[name].shape == tuple(shape) and entry[name].dtype == np.float32
            for name in separator.stems
        )
        if not ok:
            self.store.discard(key, "stems missing or of another shape or rate")
            return None
        return {name: entry[name] for name in separator.stems}

    def put(self, audio_sha256: str, separator: Separator, stems: dict[str, np.ndarray], sample_rate: int) -> str:
        arrays = {name: np.asarray(stems[name], dtype=np.float32) for name in separator.stems}
        arrays["sample_rate"] = np.asarray(sample_rate, dtype=np.int64)
        return self.store.put(self.key(audio_sha256, separator), arrays)


def separate_cached(
    samples: np.ndarray,
    sample_rate: int,
    separator: Separator,
    *,
    audio_sha256: str | None = None,
    cache: StemCache | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """Stems of a mix, from ``cache`` when it holds them for this file and separator.

    Returns
    -------
    tuple[dict[str, np.ndarray], bool]
        ``(stems, from_cache)``; ``stems`` holds ``separator.stems``.
    """
    x = check_mix(samples)
    if cache is not None and audio_sha256:
        hit = cache.get(audio_sha256, separator, x.shape, sample_rate)
        if hit is not None:
            log.debug("stems from cache %s", cache.directory)
            return hit, True
    stems = separator.separate(x, sample_rate)
    missing = [name for name in separator.stems if name not in stems]
    if missing:
        raise RuntimeError(f"{separator.name} returned no {', '.join(missing)} stem")
    stems = {name: np.asarray(stems[name], dtype=np.float32) for name in separator.stems}
    if cache is not None and audio_sha256:
        try:
            cache.put(audio_sha256, separator, stems, sample_rate)
        except OSError as err:  # a full or read-only cache must not fail the separation
            log.warning("could not write stem cache %s: %s", cache.directory, err)
    return stems, False


# --------------------------------------------------------------------------- stem features


def stem_columns(stems: dict[str, np.ndarray], sample_rate: int, grid) -> np.ndarray:
    """Per-beat rms, centroid (Hz) and onset strength of each stem given.

    Each stem is mixed to mono at 22,050 Hz (``engine.audio.analysis_mono``)
    and transformed as the song is (``engine.spectrum.compute_spectrum``);
    the three frame features are those of the ``rms``, ``centroid`` and
    ``onset_strength`` columns, pooled per beat by ``engine.features.pool_frames``.

    Parameters
    ----------
    stems : dict[str, np.ndarray]
        ``{stem: (n_channels, n_samples)}`` for some of ``STEM_NAMES``
        (a separator's ``stems``); columns follow ``STEM_NAMES`` order.
    sample_rate : int
        of the stems (Hz).
    grid : engine.grid.Grid
        the song's beat grid (``beat_times`` in seconds).

    Returns
    -------
    np.ndarray
        ``(n_beats, 3 * n_stems)`` float64, per stem its ``STEM_FEATURES``
        (the order of ``engine.features.stem_column_names``).
    """
    beat_times = np.asarray(grid.beat_times, dtype=np.float64)
    period_s = 60.0 / grid.tempo_bpm if grid.tempo_bpm and grid.tempo_bpm > 0 else 0.5
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_SR).astype(np.float32)
    blocks = []
    for name in (s for s in STEM_NAMES if s in stems):
        y = analysis_mono(Audio(np.asarray(stems[name], dtype=np.float32), int(sample_rate)))
        spec = compute_spectrum(y, sr=ANALYSIS_SR)
        magnitude = spec.magnitude
        total = magnitude.sum(axis=0, dtype=np.float64)
        weighted = (freqs @ magnitude).astype(np.float64)
        centroid = np.zeros_like(total)
        np.divide(weighted, total, out=centroid, where=total > np.finfo(np.float32).tiny)
        rms = descriptors.frame_rms_exact(y, spec.n_frames, N_FFT, HOP_LENGTH)
        frames = np.stack([rms, centroid, onset_strength(spec).astype(np.float64)])
        starts, stops = features.beat_frame_spans(
            beat_times, n_frames=spec.n_frames, sr=ANALYSIS_SR, hop_length=HOP_LENGTH, single_beat_period_s=period_s
        )
        blocks.append(features.pool_frames(frames, starts, stops))
    out = np.concatenate(blocks, axis=1)
    assert out.shape[1] == len(STEM_FEATURES) * len(blocks)
    return out


# --------------------------------------------------------------------------- file -> stem files


@dataclass
class StemFiles:
    """What ``split_file`` wrote: ``paths`` maps each stem and ``"mix"`` to its file."""

    paths: dict[str, str]
    separator: Separator
    from_cache: bool
    separate_s: float
    duration_s: float


def split_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    chain=None,
    separator: Separator | str = "auto",
    model_dir: str | os.PathLike | None = None,
    cache: StemCache | bool | None = True,
    fmt: str = "wav",
    protect: tuple[str | os.PathLike, ...] = (),
    quiet: bool = True,
) -> StemFiles:
    """Separate an audio file, run the stems through ``chain``, write stems and mix.

    Parameters
    ----------
    path : str | os.PathLike
        the song (anything ``engine.audio.load_audio`` reads).
    out_dir : str | os.PathLike
        folder for the separator's stems (``drums``, ``bass``, ``vocals``,
        ``other``: those it offers) and ``mix`` (created; its parent must exist).
    chain : StemChain | str | os.PathLike | None
        an ``engine.chains.StemChain``, a chain file path, or None (no processing).
    separator : Separator | str
        a ``Separator`` or a name for ``separator_for``.
    cache : StemCache | bool | None
        True for ``StemCache()``, a ``StemCache``, or False/None.
    fmt : str
        ``wav`` (float), ``flac`` or ``aiff`` (24-bit).
    protect : tuple[str | os.PathLike, ...]
        more paths never to write over (the song always is).

    Raises
    ------
    BadInput
        bad song, chain, separator, weights or output folder.

    Examples
    --------
    >>> from engine.stems import split_file
    >>> files = split_file("song.wav", "song_stems", separator="builtin", fmt="flac")  # doctest: +SKIP
    >>> sorted(files.paths)  # doctest: +SKIP
    ['drums', 'mix', 'other']
    """
    path, out_dir = os.fspath(path), os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BadInput(out_dir, "must be a folder; a file of that name exists")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise BadInput(out_dir, f"parent folder {parent} does not exist")
    if chain is None:
        chain = StemChain()
    elif not isinstance(chain, StemChain):
        protect = (*protect, chain)
        chain = load_chain(chain)
    if isinstance(separator, str):
        separator = separator_for(separator, model_dir, quiet=quiet)
    unoffered = [name for name in (*chain.boards, *chain.gains_db) if name not in separator.stems]
    if unoffered:
        raise BadInput(
            chain.source,
            f"stems.{unoffered[0]}: the {separator.name} separator does not produce a {unoffered[0]} stem "
            f"(it offers {', '.join(separator.stems)})",
        )
    audio = load_audio(path)
    store = StemCache() if cache is True else (cache or None)
    t0 = time.perf_counter()
    stems, from_cache = separate_cached(
        audio.samples, audio.sample_rate, separator, audio_sha256=sha256_file(path), cache=store
    )
    separate_s = time.perf_counter() - t0
    processed, mix = chain(stems, audio.sample_rate)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name in (*separator.stems, "mix"):
        target = os.path.join(out_dir, f"{name}.{fmt}")
        write_audio(target, mix if name == "mix" else processed[name], audio.sample_rate, protect=[path, *protect])
        paths[name] = target
    return StemFiles(paths, separator, from_cache, separate_s, audio.duration_s)
