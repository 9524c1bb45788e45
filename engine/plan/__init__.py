"""EditPlan: the one contract between deciding and doing (DESIGN section 5).

Times are seconds. Source times are positions in the source file; output
("dst") times are positions in the rendered edit.

Modules: ``model`` (the dataclasses), ``schema`` (the JSON form and its
validation: ``plan_to_dict``, ``plan_from_dict``, ``validate_plan``),
``io`` (plan files: ``load_plan``, ``save_plan`` atomically,
``resolve_source``, ``check_source``) and ``build`` (``plan_from_actions``
turns an action walk over a song's beat grid into a plan; ``beat_spans``).
``load_plan`` validates everything and turns the first problem into one
``engine.errors.BadInput`` line naming the field, e.g.
``plan.json: segments[3].src_end_s: must be > src_start_s``.
"""

from __future__ import annotations

from editorbot.engine.plan.build import (
    FADE_POINTS,
    HIGHPASS_OPEN_HZ,
    LOW_CONFIDENCE,
    LOWPASS_OPEN_HZ,
    MAX_CUTOFF_FRACTION,
    VOLUME_FLOOR_DB,
    add_output_gain,
    beat_spans,
    marker_confidence,
    marker_name,
    plan_from_actions,
)
from editorbot.engine.plan.io import check_source, load_plan, resolve_source, save_plan
from editorbot.engine.plan.model import (
    SCHEMA,
    Action,
    Automation,
    EditPlan,
    Effect,
    Grid,
    Marker,
    ModelInfo,
    Segment,
    Source,
)
from editorbot.engine.plan.schema import TIME_TOLERANCE_S, plan_from_dict, plan_to_dict, validate_plan

__all__ = [
    "FADE_POINTS",
    "HIGHPASS_OPEN_HZ",
    "LOWPASS_OPEN_HZ",
    "LOW_CONFIDENCE",
    "MAX_CUTOFF_FRACTION",
    "SCHEMA",
    "TIME_TOLERANCE_S",
    "VOLUME_FLOOR_DB",
    "Action",
    "Automation",
    "EditPlan",
    "Effect",
    "Grid",
    "Marker",
    "ModelInfo",
    "Segment",
    "Source",
    "add_output_gain",
    "beat_spans",
    "check_source",
    "load_plan",
    "marker_confidence",
    "marker_name",
    "plan_from_actions",
    "plan_from_dict",
    "plan_to_dict",
    "resolve_source",
    "save_plan",
    "validate_plan",
]
