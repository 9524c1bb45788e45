"""File -> beat grid + per-beat features, cached (DESIGN section 3).

``analyze(path)`` is the one call: decode (original rate kept for rendering),
mix to a 22,050 Hz mono copy, one shared STFT, beat grid, per-beat features.
The grid and the feature matrix are cached by the audio file's sha256 and a
hash of everything that shapes them; the audio itself is always decoded
because rendering needs it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from editorbot.engine import features as feature_mod
from editorbot.engine import grid as grid_mod
from editorbot.engine.atomic import atomic_path, check_destination
from editorbot.engine.audio import (
    ANALYSIS_SR,
    DEFAULT_MAX_DURATION_S,
    SILENCE_DBFS,
    Audio,
    analysis_mono,
    load_audio,
    sha256_file,
)
from editorbot.engine.cache import FeatureCache
from editorbot.engine.errors import ActivationUnavailable, BadInput
from editorbot.engine.grid import Grid
from editorbot.engine.spectrum import compute_spectrum

log = logging.getLogger(__name__)

ANALYSIS_SCHEMA = "editorbot.analysis/1"
# Bump when the layout of cache entries changes (2: the grid's confidence).
CACHE_FORMAT = 2
# Columns shown by ``summary()`` and the CLI: a quick look at level, timbre and
# rhythm without printing 109 numbers.
SUMMARY_FEATURES = ("onset_strength", "rms", "centroid", "zcr", "flatness", "beat_strength")


class GriddedSong(Protocol):
    """What plan building and the synthetic editors read of an analysis.

    ``Analysis`` has it, and so do the lighter stand-ins that label inference
    (an extended grid over the raw song) and pair making (a pair's raw file
    with its true grid) build without computing features.

    Attributes
    ----------
    audio : Audio
        The song: ``samples (n_channels, n_samples)`` float32, ``sample_rate``
        Hz, ``path``, ``duration_s``.
    grid : Grid
        Its beat grid (``beat_times`` seconds, ``downbeats`` indices).
    sha256 : str
        Hex digest of the audio file's bytes.
    """

    @property
    def audio(self) -> Audio: ...

    @property
    def grid(self) -> Grid: ...

    @property
    def sha256(self) -> str: ...


@dataclass
class Analysis:
    """Everything later stages need from one song.

    Attributes
    ----------
    audio : Audio
        the decoded file, ``samples (n_channels, n_samples)`` float32 at
        its own rate.
    y : np.ndarray
        ``(n,)`` float32 mono analysis copy at ``sr``.
    sr : int
        analysis sample rate (22,050 Hz).
    grid : Grid
        tempo, beat times (s), downbeat and phrase-start beat indices.
    features : np.ndarray
        ``(n_beats, n_features)`` float32, 109 columns (3 more per stem with stems: 115 builtin, 121 demucs).
    feature_names : list[str]
        ``n_features`` column names.
    sha256 : str
        hex digest of the audio file's bytes.
    """

    audio: Audio
    y: np.ndarray
    sr: int
    grid: Grid
    features: np.ndarray
    feature_names: list[str]
    sha256: str
    separator: str | None = None  # the stem separator behind the stem columns, if any
    tracker: str = "learned"  # the beat tracker asked for (engine.grid.TRACKERS)

    @property
    def n_beats(self) -> int:
        return int(self.grid.beat_times.shape[0])

    def summary(self) -> dict[str, Any]:
        """Plain-JSON overview: source, tempo, counts, and mean/std of ``SUMMARY_FEATURES``."""
        columns = {}
        for name in SUMMARY_FEATURES:
            if name in self.feature_names and self.n_beats:
                col = self.features[:, self.feature_names.index(name)].astype(np.float64)
                columns[name] = {"mean": float(col.mean()), "std": float(col.std())}
        return {
            "path": self.audio.path,
            "sha256": self.sha256,
            "duration_s": float(self.audio.duration_s),
            "sample_rate": int(self.audio.sample_rate),
            "n_channels": int(self.audio.n_channels),
            "tempo_bpm": float(self.grid.tempo_bpm),
            "grid_confidence": float(self.grid.confidence),
            "tracker": self.tracker,
            "beats_per_bar": int(self.grid.beats_per_bar),
            "n_beats": self.n_beats,
            "n_bars": int(len(self.grid.downbeats)),
            "n_phrases": int(len(self.grid.phrase_starts)),
            "features": columns,
            **({"separator": self.separator} if self.separator else {}),
        }

    def save_json(self, path: str | os.PathLike) -> str:
        """Write source, grid, feature names and the feature matrix as JSON, atomically.

        Never over the analysed audio file (BadInput).
        """
        doc = {
            "schema": ANALYSIS_SCHEMA,
            "summary": self.summary(),
            "grid": {
                "tempo_bpm": float(self.grid.tempo_bpm),
                "confidence": float(self.grid.confidence),
                "beats_per_bar": int(self.grid.beats_per_bar),
                "beat_times": [float(t) for t in self.grid.beat_times],
                "downbeats": [int(i) for i in self.grid.downbeats],
                "phrase_starts": [int(i) for i in self.grid.phrase_starts],
            },
            "feature_names": list(self.feature_names),
            "features": self.features.astype(np.float64).tolist(),
        }
        # allow_nan=False: NaN is not JSON, and a NaN feature is a bug to surface.
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
        return _write_output(path, self.audio.path, lambda tmp: _write_text(tmp, text))

    def save_npz(self, path: str | os.PathLike) -> str:
        """Write the grid and features as ``.npz`` (no pickles), atomically; never over the audio."""
        arrays: dict[str, Any] = {
            "features": self.features,
            "feature_names": np.asarray(self.feature_names),
            "tempo_bpm": np.asarray(self.grid.tempo_bpm, dtype=np.float64),
            "grid_confidence": np.asarray(self.grid.confidence, dtype=np.float64),
            "beats_per_bar": np.asarray(self.grid.beats_per_bar, dtype=np.int64),
            "beat_times": np.asarray(self.grid.beat_times, dtype=np.float64),
            "downbeats": np.asarray(self.grid.downbeats, dtype=np.int64),
            "phrase_starts": np.asarray(self.grid.phrase_starts, dtype=np.int64),
            "sha256": np.asarray(self.sha256),
            "sample_rate": np.asarray(self.audio.sample_rate, dtype=np.int64),
            "duration_s": np.asarray(self.audio.duration_s, dtype=np.float64),
        }

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        return _write_output(path, self.audio.path, write)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _write_output(path: str | os.PathLike, source: str | None, write) -> str:
    """Atomic write of an analysis output that refuses to replace the source audio."""
    path = check_destination(path, [source])
    with atomic_path(path) as tmp:
        write(tmp)
    return path


#: Modules whose code computes the cached grid and features (their source is
#: part of the cache key). Read as files, not imported: the learned tracker's
#: modules pull in numba, which a cache hit should not pay for.
CACHED_CODE: tuple[str, ...] = (
    "spectrum",
    "grid",
    "metre",
    "beat_activation",
    "beat_dbn",
    "descriptors",
    "features",
)


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """sha256 of the source of the modules that compute cached arrays (``CACHED_CODE``).

    The feature config hash covers parameters; this also invalidates entries
    when the beat tracker or feature code changes, so a stale grid is never
    served after an upgrade.
    """
    digest = hashlib.sha256()
    for name in CACHED_CODE:
        spec = importlib.util.find_spec(f"{__package__}.{name}")
        try:
            digest.update(Path(spec.origin).read_bytes() if spec and spec.origin else name.encode("utf-8"))
        except OSError:  # no source shipped (a frozen build): the name alone
            digest.update(name.encode("utf-8"))
    return digest.hexdigest()


def analysis_config_hash() -> str:
    """Hash of everything that shapes the cached grid and features (hex, 16 chars)."""
    config = {
        "cache_format": CACHE_FORMAT,
        "features": feature_mod.config_hash(),
        "analysis_sr": ANALYSIS_SR,
        "code": _code_fingerprint(),
    }
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _resolve_cache(cache: FeatureCache | None | bool) -> FeatureCache | None:
    if cache is True:
        return FeatureCache()
    if cache is False or cache is None:
        return None
    return cache


def _grid_to_arrays(grid: Grid, features: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {
        "tempo_bpm": np.asarray(grid.tempo_bpm, dtype=np.float64),
        "confidence": np.asarray(grid.confidence, dtype=np.float64),
        "beat_times": np.asarray(grid.beat_times, dtype=np.float64),
        "downbeats": np.asarray(grid.downbeats, dtype=np.int64),
        "beats_per_bar": np.asarray(grid.beats_per_bar, dtype=np.int64),
        "phrase_starts": np.asarray(grid.phrase_starts, dtype=np.int64),
        "features": np.asarray(features, dtype=np.float32),
        "feature_names": np.asarray(names),
    }


def _arrays_to_grid(arrays: dict[str, np.ndarray], names: list[str]) -> tuple[Grid, np.ndarray] | None:
    """Rebuild (grid, features) from a cache entry; None if it is not a valid entry."""
    try:
        beat_times = np.asarray(arrays["beat_times"], dtype=np.float64)
        features = np.asarray(arrays["features"], dtype=np.float32)
        downbeats = np.asarray(arrays["downbeats"], dtype=np.int64)
        phrase_starts = np.asarray(arrays["phrase_starts"], dtype=np.int64)
        grid = Grid(
            tempo_bpm=float(arrays["tempo_bpm"]),
            beat_times=beat_times,
            downbeats=downbeats,
            beats_per_bar=int(arrays["beats_per_bar"]),
            phrase_starts=phrase_starts,
            confidence=float(arrays["confidence"]),
        )
        stored_names = [str(n) for n in arrays["feature_names"]]
    except (KeyError, TypeError, ValueError):
        return None
    n_beats = beat_times.shape[0]
    consistent = (
        beat_times.ndim == 1
        and features.shape == (n_beats, len(names))
        and stored_names == names
        and np.isfinite(features).all()
        and all(((idx >= 0) & (idx < n_beats)).all() for idx in (downbeats, phrase_starts))
    )
    return (grid, features) if consistent else None


def analyze(
    path: str | os.PathLike,
    *,
    cache: FeatureCache | None | bool = True,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    stems: bool = False,
    separator=None,
    tracker: str | None = None,
) -> Analysis:
    """Decode ``path`` and compute its beat grid and per-beat features.

    Parameters
    ----------
    path : str | os.PathLike
        audio file (see ``engine.audio.load_audio`` for what is accepted).
    cache : FeatureCache | None | bool
        True for the default ``FeatureCache()``, a ``FeatureCache`` to
        use that one, False/None to compute without reading or writing one.
    max_duration_s : float
        longest accepted file (seconds).
    stems : bool
        append 3 columns per stem the separator offers
        (``engine.stems.stem_columns``, named ``stem_<separator kind>_<stem>_<feature>``),
        from stems separated by ``separator`` (an ``engine.stems.Separator``;
        default ``separator_for("auto")``). Separated stems are cached in
        ``stems/`` inside the feature cache's directory.
    tracker : str | None
        beat tracker (``engine.grid.TRACKERS``); None: ``$EDITORBOT_TRACKER``,
        else ``"learned"`` (``engine.grid.default_tracker``). It keys the cache.

    Returns
    -------
    Analysis
        ``Analysis`` with ``features (n_beats, 109)`` float32 (115 with ``stems``
        from the built-in separator, 121 from demucs).

    Raises
    ------
    BadInput
        anything ``load_audio`` rejects, channels that cancel out when
        mixed to mono, an unknown tracker, or ``"learned"`` without its weight files.

    Examples
    --------
    >>> from engine.analysis import analyze
    >>> a = analyze("song.wav", cache=False)  # doctest: +SKIP
    >>> a.features.shape  # (n_beats, 109)  # doctest: +SKIP
    (40, 109)
    >>> a.sr, a.grid.beat_times.dtype  # Hz; beat times in seconds  # doctest: +SKIP
    (22050, dtype('float64'))
    """
    path = os.fspath(path)
    tracker = grid_mod.default_tracker() if tracker is None else tracker
    if tracker not in grid_mod.TRACKERS:
        raise BadInput(f"tracker {tracker}", f"unknown beat tracker (one of {', '.join(grid_mod.TRACKERS)})")
    audio = load_audio(path, max_duration_s=max_duration_s)
    sha256 = sha256_file(path)
    y = analysis_mono(audio, sr=ANALYSIS_SR)
    if float(np.abs(y).max(initial=0.0)) < 10.0 ** (SILENCE_DBFS / 20.0):
        # e.g. a stereo file whose right channel is the inverted left
        raise BadInput(path, "silent when mixed to mono (the channels cancel out)")
    names = feature_mod.feature_names()
    config = analysis_config_hash()
    config += f"-{tracker}"
    if stems:
        # engine.stems brings pedalboard and the separators (about 0.15 s of
        # start-up): only analyses with stems load it
        from editorbot.engine.stems import separator_for

        if separator is None:
            separator = separator_for("auto")
        stem_names = feature_mod.stem_column_names(separator.kind, separator.stems)
        names += stem_names
        # the column names (separator kind, stems offered) and the separator's settings key the cache
        ident = separator.cache_id + "|" + ",".join(stem_names)
        config += "-stems-" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:12]

    store = _resolve_cache(cache)
    key = FeatureCache.key(sha256, config)
    cached = None
    if store is not None:
        entry = store.get(key)
        if entry is not None:
            cached = _arrays_to_grid(entry, names)
            if cached is None:
                store.discard(key, "fields missing or inconsistent")
            else:
                log.debug("%s: grid and features from cache %s", path, store.path(key))
    if cached is not None:
        grid, features = cached
    else:
        spec = compute_spectrum(y, sr=ANALYSIS_SR)
        try:
            grid = grid_mod.beat_grid(spec, tracker=tracker)
        except ActivationUnavailable as err:
            raise BadInput(f"tracker {tracker}", str(err)) from None
        stem_matrix = _stem_matrix(audio, sha256, grid, separator, store) if stems else None
        features = np.ascontiguousarray(feature_mod.beat_features(spec, grid, y=y, stems=stem_matrix), dtype=np.float32)
        if store is not None:
            try:
                store.put(key, _grid_to_arrays(grid, features, names))
            except OSError as err:  # a read-only or full cache must not fail the analysis
                log.warning("could not write feature cache %s: %s", store.directory, err)
    return Analysis(
        audio=audio,
        y=y,
        sr=ANALYSIS_SR,
        grid=grid,
        features=features,
        feature_names=names,
        sha256=sha256,
        separator=separator.name if stems else None,
        tracker=tracker,
    )


def _stem_matrix(audio: Audio, sha256: str, grid: Grid, separator, store: FeatureCache | None) -> np.ndarray:
    """``(n_beats, 3 * n_stems)`` stem columns; the stems are cached next to the feature cache."""
    from editorbot.engine.stems import StemCache, separate_cached, stem_columns  # start-up: see analyze

    stem_cache = StemCache(os.path.join(store.directory, "stems")) if store is not None else None
    separated, _ = separate_cached(audio.samples, audio.sample_rate, separator, audio_sha256=sha256, cache=stem_cache)
    return stem_columns(separated, audio.sample_rate, grid)
