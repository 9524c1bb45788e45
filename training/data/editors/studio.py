"""Studio styles: the ``mixed`` walk, then a fixed studio chain no plan effect expresses.

``studio`` and ``studio_edits`` (``STUDIO_STYLES``, kept apart from
``STYLES``) walk as ``mixed`` does; the editor then runs ``studio_chain``
(ladder low-pass, chorus, saturation) over the whole edit or over the
edited spans only (``apply_studio``). The plan is the label; the chain is
the editor's sound. ``training.data.pairs`` runs the chain over the plan's
render when it makes their pairs (``editorbot data synth --styles studio``,
``data pair --style studio_edits``).
"""

from __future__ import annotations

import numpy as np
import pedalboard

from editorbot.engine.plan import EditPlan
from editorbot.training.data.editors.style import EditorStyle
from editorbot.training.data.editors.styles import mixed

#: Where a studio style's chain runs: over the whole edited output ("all"), or
#: only over audio an action other than KEEP placed ("edits").
STUDIO_SCOPES: tuple[str, ...] = ("all", "edits")
#: Seconds over which the "edits" scope fades the chain in and out at segment edges.
STUDIO_RAMP_S = 0.010

#: Studio styles, kept apart from ``STYLES``.
STUDIO_STYLES: dict[str, EditorStyle] = {
    "studio": EditorStyle("studio", "the mixed walk, then a fixed studio chain over the whole edit",
                          mixed.draw_params, mixed.section),
    "studio_edits": EditorStyle("studio_edits", "the mixed walk, then a fixed studio chain over edited spans only",
                                mixed.draw_params, mixed.section),
}
#: Where each studio style's chain runs.
STUDIO_SCOPE_OF: dict[str, str] = {"studio": "all", "studio_edits": "edits"}


def studio_chain() -> pedalboard.Pedalboard:
    """The fixed studio chain: a ``pedalboard.Pedalboard`` no EditPlan effect can express.

    A 12 dB/octave ladder low-pass at 2.5 kHz with some resonance, a slow
    light chorus and a little saturation, then -3 dB. Built fresh (no state)
    on every call.

    Returns
    -------
    pedalboard.Pedalboard
        Callable as ``board(samples, sample_rate, reset=True)``.
    """
    return pedalboard.Pedalboard([
        pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF12, cutoff_hz=2500.0, resonance=0.3, drive=1.0),
        pedalboard.Chorus(rate_hz=0.8, depth=0.25, centre_delay_ms=7.0, feedback=0.0, mix=0.3),
        pedalboard.Distortion(drive_db=6.0),
        pedalboard.Gain(gain_db=-3.0),
    ])


def apply_studio(samples: np.ndarray, sample_rate: int, plan: EditPlan, scope: str = "all") -> np.ndarray:
    """Run ``studio_chain`` over a rendered edit.

    Parameters
    ----------
    samples : np.ndarray
        The plan's render, ``(n_channels, n_samples)`` float32.
    sample_rate : int
        Hz.
    plan : EditPlan
        The plan rendered (its segments place the edited spans).
    scope : str
        ``"all"``: the whole output; ``"edits"``: only output spans of
        segments whose action is not KEEP, faded over ``STUDIO_RAMP_S`` at
        their edges (KEEP spans stay bit-identical away from edges).

    Returns
    -------
    np.ndarray
        ``(n_channels, n_samples)`` float32, the same length.

    Raises
    ------
    ValueError
        ``scope`` is not one of ``STUDIO_SCOPES``.
    """
    if scope not in STUDIO_SCOPES:
        raise ValueError(f"unknown studio scope {scope!r} (one of {', '.join(STUDIO_SCOPES)})")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    wet = np.asarray(studio_chain()(x, sample_rate, reset=True), dtype=np.float32)[:, : x.shape[1]]
    if scope == "all":
        return wet
    weight = np.zeros(x.shape[1], dtype=np.float32)
    for seg in plan.segments:
        if seg.action != "KEEP":
            a = max(0, round(seg.dst_start_s * sample_rate))
            weight[a : round((seg.dst_start_s + seg.length_s) * sample_rate)] = 1.0
    n_ramp = max(1, round(STUDIO_RAMP_S * sample_rate))
    weight = np.convolve(weight, np.full(n_ramp, 1.0 / n_ramp, dtype=np.float32), mode="same")
    return (x + weight * (wet - x)).astype(np.float32)
