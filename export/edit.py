"""The ``edit`` pipeline: audio file -> plan -> audio, exports and plot.

``edit_file(request, out, policy, ...)`` analyses the file, lets the policy
decide (``export.walk.plan_analysis``: a policy walk, or with a target
duration the length-constrained search), writes the plan, renders the edit
from the already decoded audio, writes the requested exports and the
before/after plot, and returns an ``EditReport``. ``load_model`` gives the
policy: an exported ONNX model, a torch checkpoint run eagerly, or the
bundled default (BadInput when none has been made yet). Every output is
checked before the slow part and never written over the input. The
request (``export.request.EditRequest``) is validated by whoever built it;
the stages report through ``on_stage``, which the server and the spool use
for progress and cancellation.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from editorbot.engine.errors import BadRequest
from editorbot.engine.plan import EditPlan
from editorbot.export.request import EditRequest
from editorbot.export.runtime import PolicyModel, load_policy

log = logging.getLogger(__name__)

#: ``on_stage(stage, fraction)``: a stage starts, ``fraction`` of the edit done; may raise to stop the edit.
StageCallback = Callable[[str, float], None]


def load_model(model: str | None = None, checkpoint: str | None = None, *, device: str = "auto") -> PolicyModel:
    """The policy to edit with: ``checkpoint`` (torch, eager), ``model`` (ONNX) or the default model."""
    if model and checkpoint:
        raise BadRequest("checkpoint", "give either model or checkpoint, not both")
    if checkpoint:
        from editorbot.export.onnx import TorchPolicy

        return TorchPolicy(checkpoint, device="cuda" if device == "cuda" else "cpu")
    return load_policy(model, device=device)


@dataclass
class EditReport:
    """What ``edit_file`` did.

    Attributes
    ----------
    plan:
        The ``EditPlan``.
    written:
        ``{what: path}`` of every file written (audio, plan, each export, plot).
    duration_in_s, duration_out_s:
        Source and edit lengths.
    actions:
        Count of actions per type.
    timings_s:
        Seconds per stage (analysis, policy, search, render, write, exports, plot).
    splice_cost, baseline_splice_cost:
        Splice continuity cost of the edit and (with a target) of the pure DP
        retimer for the same target.
    target_duration_s:
        The target, if any.
    rounds:
        Batched policy evaluation rounds.
    grid_confidence:
        The source's ``Grid.confidence`` (0..1); under
        ``engine.grid.UNSURE_CONFIDENCE`` the grid the edit was cut on is a
        guess, and the report says so.
    """

    plan: EditPlan
    written: dict[str, str] = field(default_factory=dict)
    duration_in_s: float = 0.0
    duration_out_s: float = 0.0
    actions: Counter = field(default_factory=Counter)
    timings_s: dict[str, float] = field(default_factory=dict)
    splice_cost: float = 0.0
    baseline_splice_cost: float | None = None
    target_duration_s: float | None = None
    rounds: int = 1
    grid_confidence: float = 1.0

    @property
    def total_s(self) -> float:
        """Seconds for the whole edit (model loading excluded)."""
        return sum(self.timings_s.values())


def output_paths(out: str | os.PathLike, *, plan: str | None, exports: Sequence[str]) -> dict[str, str]:
    """Where each output goes: the plan beside ``out`` as ``STEM.plan.json`` unless given,
    each export as ``STEM`` + the format's usual extension."""
    from editorbot.engine.exporters import EXTENSIONS

    o = Path(out)
    paths = {"audio": str(o), "plan": plan or str(o.with_name(o.stem + ".plan.json"))}
    for fmt in exports:
        paths[fmt] = str(o.with_name(o.stem + EXTENSIONS[fmt]))
    return paths


def edit_file(
    request: EditRequest,
    out_path: str | os.PathLike,
    policy: PolicyModel,
    *,
    plan_path: str | None = None,
    plot_png: str | None = None,
    quiet: bool = False,
    on_stage: StageCallback | None = None,
) -> EditReport:
    """Analyse, decide, write the plan, render, export and plot.

    Without a target the edit keeps at least ``request.min_keep`` of the
    source (``export.walk.WalkRules``). The render is turned down to peak
    at most ``engine.render.PEAK_CEILING_DB`` before the plan is written (the
    plan records it: ``engine.render.stage_gain``). The audio keeps the
    source's sample format unless ``request.subtype`` names one
    (``engine.audio.output_subtype``).

    Parameters
    ----------
    request:
        What to edit and how (audio, target, keep ranges, seed, exports,
        the least share kept, the sample format).
    out_path:
        The edited audio to write; the plan and exports go beside it.
    policy:
        The model that decides (``load_model``).
    plan_path, plot_png:
        Where the plan goes (default beside ``out_path``) and an optional
        before/after picture.
    quiet:
        No progress bar (one names the stage running otherwise, on a terminal).
    on_stage:
        Called as ``on_stage(stage, fraction_done)`` when each stage starts
        (analysing, deciding or searching, rendering, writing, exporting,
        plotting); an exception it raises stops the edit there.

    Returns
    -------
    EditReport
        What was written and how long each stage took. BadInput (one line
        naming the file or field) for bad audio, an output that would
        overwrite the input or another output, a missing output folder, or a
        target out of range.

    Examples
    --------
    >>> report = edit_file(EditRequest("song.wav", target_duration_s=90.0), "song.edit.wav", load_model())  # doctest: +SKIP
    >>> report.written["plan"]  # doctest: +SKIP
    'song.edit.plan.json'
    """
    from editorbot.engine.analysis import analyze
    from editorbot.engine.atomic import check_destinations
    from editorbot.engine.audio import output_subtype, source_subtype, write_audio
    from editorbot.engine.exporters import export_plan
    from editorbot.engine.grid import UNSURE_GRID
    from editorbot.engine.plan import save_plan
    from editorbot.engine.progress import stage_bar
    from editorbot.engine.render import render_plan, stage_gain
    from editorbot.export.walk import plan_analysis

    src = os.path.abspath(os.fspath(request.audio))
    exports = request.exports
    paths = output_paths(out_path, plan=plan_path, exports=exports)
    if plot_png:
        paths["plot"] = plot_png
    check_destinations(paths, [src])

    deciding = "searching" if request.target_duration_s is not None else "deciding"
    stages = ["analysing", deciding, "rendering", "writing", *(["exporting"] if exports else []), *(["plotting"] if plot_png else [])]
    timings: dict[str, float] = {}
    with stage_bar(stages, desc=os.path.basename(src), quiet=quiet) as bar:

        def stage(name: str) -> float:
            bar(name)
            if on_stage is not None:
                on_stage(name, stages.index(name) / len(stages))
            return time.perf_counter()

        t = stage("analysing")
        analysis = analyze(src)
        timings["analysis"] = time.perf_counter() - t
        if analysis.grid.unsure:
            # the walk still runs (a free-tempo song can be edited), but its cuts and loops
            # fall on a guessed grid: the user should listen to the joins
            log.warning("%s: grid confidence %.2f (%s): cuts and loops may not land on beats", src, analysis.grid.confidence, UNSURE_GRID)
        stage(deciding)
        decision = plan_analysis(
            analysis, policy, seed=request.seed, target_duration_s=request.target_duration_s, keep=request.keep,
            min_keep=request.min_keep,
        )
        timings["policy"], timings["search"] = decision.policy_s, decision.search_s
        plan = decision.plan
        report = EditReport(
            plan=plan,
            duration_in_s=float(analysis.audio.duration_s),
            duration_out_s=float(plan.duration_s),
            actions=Counter(a.type for a in plan.actions),
            splice_cost=decision.splice_cost,
            baseline_splice_cost=decision.baseline_splice_cost,
            target_duration_s=request.target_duration_s,
            rounds=decision.rounds,
            grid_confidence=float(analysis.grid.confidence),
        )
        t = stage("rendering")
        audio = analysis.audio
        edited, _ = stage_gain(plan, render_plan(plan, audio.samples, audio.sample_rate))  # the plan records the gain
        save_plan(plan, paths["plan"])
        report.written["plan"] = paths["plan"]
        timings["render"] = time.perf_counter() - t
        t = stage("writing")
        subtype = request.subtype or output_subtype(paths["audio"], source_subtype(src))
        report.written["audio"] = write_audio(paths["audio"], edited, audio.sample_rate, protect=(src,), subtype=subtype)
        timings["write"] = time.perf_counter() - t
        t = stage("exporting") if exports else time.perf_counter()
        for fmt in exports:
            report.written[fmt] = export_plan(plan, fmt, paths[fmt])
        timings["exports"] = time.perf_counter() - t
        if plot_png:
            from editorbot.engine.plot import plot_plan

            t = stage("plotting")
            report.written["plot"] = plot_plan(plan, audio.samples, audio.sample_rate, edited, plot_png)
            timings["plot"] = time.perf_counter() - t
    report.timings_s = timings
    log.info("edited %s -> %s in %.2f s", src, report.written["audio"], report.total_s)
    return report


def format_report(report: EditReport) -> str:
    """A short table: actions by type, durations in/out, an unsure grid, splice costs, timings, files written."""
    from editorbot.engine.grid import UNSURE_CONFIDENCE, UNSURE_GRID

    lines = [f"{'duration in':<16}{report.duration_in_s:9.2f} s", f"{'duration out':<16}{report.duration_out_s:9.2f} s"]
    if report.target_duration_s is not None:
        lines.append(f"{'target':<16}{report.target_duration_s:9.2f} s")
    if report.grid_confidence < UNSURE_CONFIDENCE:
        lines.append(f"{'grid confidence':<16}{report.grid_confidence:9.2f} ({UNSURE_GRID})")
    lines.append(f"{'splice cost':<16}{report.splice_cost:9.3f}")
    if report.baseline_splice_cost is not None:
        lines.append(f"{'  pure DP':<16}{report.baseline_splice_cost:9.3f}")
    lines.append("")
    lines.append(f"{'action':<16}{'count':>9}")
    for name, count in sorted(report.actions.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"{name:<16}{count:9d}")
    lines.append("")
    lines.append(
        "time  " + "  ".join(f"{k} {v:.2f}s" for k, v in report.timings_s.items()) + f"  total {report.total_s:.2f}s"
    )
    lines.append("")
    for what, path in report.written.items():
        lines.append(f"{'wrote ' + what:<16}{path}")
    return "\n".join(lines)
