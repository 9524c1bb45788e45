"""The ``Separator`` interface every stem separator implements, and the mix check they share.

``engine.stems.BuiltinSeparator`` and ``engine.demucs_separator.DemucsSeparator``
implement it; ``engine.stems.separator_for`` picks one. It lives apart from
both so that neither separator module imports the other's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Separator(ABC):
    """Splits a mix into stems named as in ``STEM_NAMES``.

    A separator produces only the stems it separates well enough to be worth
    having (``stems``); what it does not separate stays in ``other``, so the
    stems always add up to the mix.

    Attributes
    ----------
    name : str
        shown to the user (e.g. ``"builtin"``, ``"demucs htdemucs"``).
    kind : str
        short name used in feature column names (``"builtin"``, ``"demucs"``).
    stems : tuple[str, ...]
        the stems ``separate`` returns, in ``STEM_NAMES`` order; always
        includes ``"other"``.
    cache_id : str
        everything that changes the stems (model, weights, settings);
        cached stems are keyed on it.
    note : str | None
        why this separator was chosen, when it was not asked for by name.
    """

    name: str = "separator"
    kind: str = "separator"
    stems: tuple[str, ...] = ("drums", "bass", "vocals", "other")
    note: str | None = None

    @property
    def cache_id(self) -> str:
        return self.name

    @abstractmethod
    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Stems of a mix.

        Parameters
        ----------
        samples : np.ndarray
            ``(n_channels, n_samples)`` float mix.
        sample_rate : int
            Hz.

        Returns
        -------
        dict[str, np.ndarray]
            ``{stem: (n_channels, n_samples) float32}`` for each of ``self.stems``.
        """

    def __call__(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        return self.separate(samples, sample_rate)


def check_mix(samples: np.ndarray) -> np.ndarray:
    """``samples`` as float32 ``(n_channels, n_samples)``; ValueError otherwise."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[0] > x.shape[1]:
        raise ValueError(f"samples must be (n_channels, n_samples), got {np.shape(samples)}")
    return x
