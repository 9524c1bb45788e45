"""The spool's edit job: a claimed request's audio (an excerpt, further
channel files stacked) through the edit pipeline or the pure DP retimer,
with the result files the spool protocol names (``bridge.spool``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine.errors import BadInput
from editorbot.export.request import DP_MODEL

if TYPE_CHECKING:
    from editorbot.bridge.spool import SpoolJob
    from editorbot.engine.audio import Audio

#: A request covering all but this much of its file is edited whole (seconds).
WHOLE_FILE_SLACK_S = 1e-3


def _channels(job: SpoolJob) -> Audio:
    """The request's audio with its ``channel_files`` stacked below it as further channels."""
    from editorbot.engine.audio import Audio, load_audio

    first = load_audio(job.request.audio)
    parts = [first.samples]
    for path in job.request.channel_files:
        more = load_audio(path)
        if more.sample_rate != first.sample_rate or more.samples.shape[1] != first.samples.shape[1]:
            raise BadInput(path, f"channel file differs from {job.request.audio} in sample rate or length")
        parts.append(more.samples)
    return Audio(np.concatenate(parts, axis=0), first.sample_rate, first.path)


def _excerpt(job: SpoolJob) -> tuple[str, float]:
    """The audio to edit and its offset in the request's file: the file itself,
    or ``work/ID.excerpt.wav`` holding ``start_s..end_s`` of it (with the
    request's ``channel_files`` as further channels)."""
    from editorbot.engine.audio import write_audio

    req = job.request.edit
    if req.start_s is None and req.end_s is None and not job.request.channel_files:
        return req.audio, 0.0
    audio = _channels(job)
    start = req.start_s or 0.0
    end = audio.duration_s if req.end_s is None else min(req.end_s, audio.duration_s)
    whole = start <= WHOLE_FILE_SLACK_S and end >= audio.duration_s - WHOLE_FILE_SLACK_S
    if whole and not job.request.channel_files:
        return req.audio, 0.0
    if end - start < 1.0:
        raise BadInput(req.audio, f"the part to edit ({start:g}-{end:g} s) is shorter than a second")
    i0, i1 = (0, audio.samples.shape[1]) if whole else (int(round(start * audio.sample_rate)), int(round(end * audio.sample_rate)))
    path = job.scratch(".excerpt.wav")
    write_audio(path, audio.samples[:, i0:i1], audio.sample_rate, protect=(req.audio, *job.request.channel_files))
    return str(path), i0 / audio.sample_rate


def edit_handler(job: SpoolJob) -> dict[str, Any]:
    """Edit the request's audio: the edit pipeline, or the pure DP retimer (``model: "dp"``).

    Writes ``outbox/ID.plan.json`` and ``outbox/ID.tsv`` (and the rendered
    ``outbox/ID.wav`` on the pipeline path) and returns the result fields.
    """
    from editorbot.engine.exporters.tsv import write_tsv
    from editorbot.engine.grid import UNSURE_CONFIDENCE
    from editorbot.engine.plan import plan_to_dict, save_plan

    req = job.request.edit
    if not os.path.isfile(req.audio):
        raise BadInput(req.audio, "no such file")
    plan_path, tsv_path = job.create(".plan.json"), job.create(".tsv")
    job.progress(0.05, "reading audio")
    audio_path, offset_s = _excerpt(job)
    job.check_cancel()
    fields: dict[str, Any] = {"source_offset_s": offset_s}
    if req.model == DP_MODEL:
        from editorbot.engine.analysis import analyze
        from editorbot.engine.plan import plan_from_actions
        from editorbot.export.retime import retime

        assert req.target_duration_s is not None  # EditRequest refuses "dp" without a target
        job.progress(0.15, "analysing")
        analysis = analyze(audio_path)
        job.check_cancel()
        job.progress(0.6, "re-timing")
        result = retime(analysis, req.target_duration_s, keep=req.keep)
        grid_confidence = float(analysis.grid.confidence)
        plan = plan_from_actions(analysis, result.walk)
        job.check_cancel()
        job.progress(0.9, "writing")
        save_plan(plan, plan_path)
        write_tsv(plan, tsv_path)
    else:
        from editorbot.export.edit import edit_file, load_model

        audio_out = job.create(".wav")
        job.progress(0.1, "loading model")
        policy = load_model(req.model, req.checkpoint)
        job.check_cancel()

        def on_stage(stage: str, fraction: float) -> None:  # the edit fills 20%..95% of the job
            job.progress(0.2 + 0.75 * fraction, stage)
            job.check_cancel()

        report = edit_file(
            dataclasses.replace(req, audio=audio_path, exports=("tsv",)),
            audio_out,
            policy,
            plan_path=str(plan_path),
            quiet=True,  # the job's progress goes to the spool
            on_stage=on_stage,
        )
        plan = report.plan
        grid_confidence = report.grid_confidence
        tsv_path = Path(report.written["tsv"])
        fields["audio_path"] = report.written["audio"]
    fields.update(plan=plan_to_dict(plan), plan_path=str(plan_path), tsv_path=str(tsv_path))
    fields["message"] = (
        f"{len(plan.segments)} segments, {plan.duration_s:.2f} s"
        f" from {float(plan.source.duration_s):.2f} s"
        + (f"; the beat grid is a guess (confidence {grid_confidence:.2f}): listen to the joins" if grid_confidence < UNSURE_CONFIDENCE else "")
    )
    return fields
