"""The render check of inferred labels: how close the inferred plan's render comes to the edit.

``render_check`` renders a pair's inferred EditPlan onto its raw song and
measures the multi-scale STFT distance (``msstft_distance``) to the edit,
beside the raw song's own distance to it; ``bench/labels.py`` reports their
ratio (0: the render is the edit; 1: no closer than the raw song).
"""

from __future__ import annotations

import numpy as np

from editorbot.engine.audio import Audio, analysis_mono, load_audio
from editorbot.engine.render import render_plan
from editorbot.engine.spectrum import stft_magnitude
from editorbot.training.labels.infer import PairLabels


def msstft_distance(a: np.ndarray, b: np.ndarray, *, sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """Multi-scale STFT distance of mono signals ``a`` and ``b`` (``(n,)``, one rate).

    ``a`` is cut or zero-padded to ``b``'s length. Per FFT size (hop a
    quarter of it): spectral convergence ``|| |A| - |B| ||_F / || |B| ||_F``
    plus the mean absolute log-magnitude difference; summed over sizes.
    """
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    a = a[: b.shape[0]] if a.shape[0] >= b.shape[0] else np.pad(a, (0, b.shape[0] - a.shape[0]))
    total = 0.0
    for n_fft in sizes:
        ma = stft_magnitude(a, n_fft=n_fft, hop_length=n_fft // 4)
        mb = stft_magnitude(b, n_fft=n_fft, hop_length=n_fft // 4)
        sc = float(np.linalg.norm(ma - mb) / max(float(np.linalg.norm(mb)), 1e-9))
        lm = float(np.mean(np.abs(np.log(ma + 1e-5) - np.log(mb + 1e-5))))
        total += sc + lm
    return total


def render_check(result: PairLabels) -> tuple[float, float]:
    """``(d(render of the inferred plan, edit), d(raw, edit))`` in ``msstft_distance`` units (mono, 22,050 Hz).

    The render is played at the edit file's inferred overall gain
    (``PairLabels.file_gain_db``), as the edit was exported.
    """
    raw = load_audio(result.raw_path)
    edit = analysis_mono(load_audio(result.edit_path))
    rendered = render_plan(result.aligned()[0], raw.samples, raw.sample_rate)
    if result.file_gain_db:
        rendered = rendered * np.float32(10.0 ** (result.file_gain_db / 20.0))
    mono = analysis_mono(Audio(rendered, raw.sample_rate))
    return msstft_distance(mono, edit), msstft_distance(analysis_mono(raw), edit)
