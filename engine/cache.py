"""On-disk cache of analysis results (DESIGN section 3).

One ``.npz`` per (audio sha256, feature-config hash) in ``$EDITORBOT_CACHE``
(default ``~/.cache/editorbot/features``). Entries are written atomically and
checked on read: an entry that cannot be loaded in full, or that was written
for another key, is logged, deleted and reported as a miss, never trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from editorbot.engine.atomic import atomic_path

log = logging.getLogger(__name__)

ENV_VAR = "EDITORBOT_CACHE"
# Stored inside every entry so a file renamed or copied under another key is
# recognised as not belonging to it.
_KEY_FIELD = "__cache_key__"
_SAFE = re.compile(r"[^0-9A-Za-z_.-]")


def default_cache_dir() -> str:
    """``$EDITORBOT_CACHE`` if set, else ``~/.cache/editorbot/features``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "editorbot", "features")


class FeatureCache:
    """``.npz`` entries of named arrays, keyed by audio sha256 + config hash.

    Parameters
    ----------
    directory : str | os.PathLike | None
        where entries live; default ``default_cache_dir()``. It is
        created on the first ``put``.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = os.fspath(directory) if directory is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"FeatureCache({self.directory!r})"

    @staticmethod
    def key(audio_sha256: str, config_hash: str) -> str:
        """File-name-safe key for one audio file under one feature config."""
        if not audio_sha256 or not config_hash:
            raise ValueError("both audio_sha256 and config_hash are needed for a cache key")
        return f"{_SAFE.sub('_', audio_sha256)}-{_SAFE.sub('_', config_hash)}"

    def path(self, key: str) -> str:
        """Where the entry for ``key`` lives."""
        return os.path.join(self.directory, f"{_SAFE.sub('_', key)}.npz")

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss or a corrupt entry."""
        path = self.path(key)
        if not os.path.exists(path):
            return None
        try:
            # Every member is read here (and its zip CRC checked), so a
            # truncated or bit-flipped entry fails now rather than later.
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            stored_key = str(arrays.pop(_KEY_FIELD))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            self.discard(key, f"unreadable ({type(err).__name__}: {err})")
            return None
        if stored_key != key:
            self.discard(key, f"written for key {stored_key!r}")
            return None
        log.debug("cache hit %s", path)
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> str:
        """Store ``arrays`` under ``key`` atomically; returns the entry's path."""
        if _KEY_FIELD in arrays:
            raise ValueError(f"{_KEY_FIELD} is reserved")
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(key)
        payload: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items()}
        payload[_KEY_FIELD] = np.asarray(key)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **payload)
        log.debug("cache put %s", path)
        return path

    def discard(self, key: str, why: str) -> None:
        """Log and delete the entry for ``key`` (a reader found it unusable)."""
        path = self.path(key)
        log.warning("discarding corrupt cache entry %s: %s", path, why)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
