"""Inferred labels (BC labels): recover the edit, beat by beat, from a (raw, edited) audio pair.

Given only a raw song and an edit of it, ``infer_pair`` finds what was done
to each beat of the raw song as factored ``(type, size, amount)`` actions
(``engine.actions``), the walk those actions form, and an ``EditPlan`` that
renders to (nearly) the edit. ``build_dataset`` does it for a pair
directory and writes the behavioural-cloning file of these inferred labels
(BC labels). Truth labels (``labels/NAME.json`` of synthetic pairs) are
read only to score inferred labels, never to infer them.

One module per step of ``infer_pair`` (``infer``, the orchestrator):

1. ``frames``: frame features of both files (gain/EQ-robust log-mel shapes,
   silence flags), and 2. their similarity ``S[t, r]``, the best over the raw
   song's pitch-warped and distorted variants.
3. ``align``: the structural DP (numba kernels, cached on disk) over the
   extended raw beat grid and the edit's frames: forward beats, CUT,
   SILENCE, REVERSE, LOOP, STUTTER and SPEED moves; the walk then checked
   on the samples (``move_checks``). ``stripes`` makes ``S`` and the sums the DP reads a
   stripe of raw frames at a time: no frame-by-frame matrix of the whole
   pair is held (the DP's tables are per beat and edit frame).
4. ``splices``: the grid's phase and every splice measured on the sample.
5. ``effects``: the effect on each beat played forwards (``effect_tails``:
   what an earlier reverb or delay run still sounds over it; ``width``: its
   stereo width); ``effect_runs``:
   runs of them labelled together; the amounts; ``pitch_checks``: PITCH
   runs that are a speed change by resampling.
6. ``infer``: walk and plan; the labels on the analysis grid, their
   confidence calibrated per type (``calibration``).

Beside them: ``dataset`` (the BC file, ``bc_rich.npz``), ``evaluate``
(inferred labels against truth labels, and the calibration of their
confidence), ``explain`` (one pair's inferred plan, plot and DAW exports:
``editorbot data explain``) and ``render_check`` (the inferred plan's
render against the edit).

Every inferred label carries a confidence (0-1): the alignment's match of
its move, times, for an effect, how clearly it won and how much of the
beat's change it explains. Where no candidate explains a beat's change
(an effect outside the vocabulary, a codec, a splice off the grid) the
label is KEEP: inference says "I don't know" rather than invent an effect.

Examples
--------
>>> from training.labels import infer_pair
>>> res = infer_pair("input/song_raw.wav", "desired_output/song_edit.wav")  # doctest: +SKIP
>>> res.alignable, res.labels.shape  # doctest: +SKIP
(True, (96, 3))
"""

from editorbot.training.labels.align import AlignConfig
from editorbot.training.labels.dataset import BC_SCHEMA, DatasetReport, build_dataset, write_npz
from editorbot.training.labels.evaluate import STRUCTURAL_TYPES, Evaluation, Evaluator, read_label_plan, truth_on_beats
from editorbot.training.labels.infer import PairLabels, infer_pair
from editorbot.training.labels.render_check import msstft_distance, render_check

__all__ = [
    "BC_SCHEMA",
    "STRUCTURAL_TYPES",
    "AlignConfig",
    "DatasetReport",
    "Evaluation",
    "Evaluator",
    "PairLabels",
    "build_dataset",
    "infer_pair",
    "msstft_distance",
    "read_label_plan",
    "render_check",
    "truth_on_beats",
    "write_npz",
]
