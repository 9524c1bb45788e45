"""Plan files: read and validate, write atomically, find and check the source audio.

A plan is stored as JSON (``plan_to_dict``), UTF-8. Reading validates
everything (``plan_from_dict``); writing refuses to overwrite the plan's
source audio and goes through a temporary file in the same folder
(``engine.atomic``), so a reader never sees half a plan.
"""

from __future__ import annotations

import json
import logging
import os

from editorbot.engine.atomic import check_destination, write_json_atomic
from editorbot.engine.audio import sha256_file
from editorbot.engine.errors import BadInput
from editorbot.engine.plan.model import EditPlan
from editorbot.engine.plan.schema import plan_from_dict, plan_to_dict, validate_plan

log = logging.getLogger(__name__)


def load_plan(path: str | os.PathLike) -> EditPlan:
    """Read and validate a plan file.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON plan file.

    Returns
    -------
    EditPlan

    Raises
    ------
    BadInput
        One line naming the file and the problem (missing file, not JSON,
        wrong schema, or the first bad field).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise BadInput(p, "no such file")
    if os.path.isdir(p):
        raise BadInput(p, "is a directory, not a plan file")
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise BadInput(p, f"cannot read: {err.strerror or err}") from None
    if not raw.strip():
        raise BadInput(p, "empty file, not a plan")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(p, "not JSON (not UTF-8 text)") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(p, f"not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    plan = plan_from_dict(d, path=p)
    log.debug("loaded plan %s: %d segments", p, len(plan.segments))
    return plan


def save_plan(plan: EditPlan, path: str | os.PathLike) -> None:
    """Write ``plan`` as JSON, atomically (temp file in the same folder + rename).

    Raises
    ------
    BadInput
        ``path`` is the plan's source audio (never overwritten) or its
        folder does not exist.
    ValueError
        The plan is invalid (it would not load back).
    """
    p = check_destination(path, [plan.source.path])
    validate_plan(plan)
    write_json_atomic(p, plan_to_dict(plan))
    log.debug("saved plan %s: %d segments", p, len(plan.segments))


def resolve_source(plan: EditPlan, plan_path: str | os.PathLike) -> None:
    """Make a relative ``plan.source.path`` absolute, in place.

    A relative path that exists from the current directory is kept; else,
    when the file is beside the plan file at ``plan_path``, that one is
    taken; else it stays relative to the current directory. An empty or
    absolute path is left as it is.
    """
    src = plan.source.path
    if not src or os.path.isabs(src):
        return
    beside_plan = os.path.join(os.path.dirname(os.path.abspath(os.fspath(plan_path))), src)
    plan.source.path = os.path.abspath(src if os.path.exists(src) or not os.path.exists(beside_plan) else beside_plan)


def check_source(plan: EditPlan, path: str | os.PathLike | None = None) -> str:
    """Check that the plan's source audio is there and unchanged.

    Parameters
    ----------
    plan : EditPlan
        Its ``source.sha256`` is compared with the file's.
    path : str or os.PathLike or None
        Where the source is now; default ``plan.source.path``.

    Returns
    -------
    str
        The checked path.

    Raises
    ------
    BadInput
        ``"source missing"``, unreadable, or ``"source changed since the
        plan was made"``.
    """
    p = os.fspath(path) if path is not None else plan.source.path
    if not p or not os.path.isfile(p):
        raise BadInput(p or None, "source missing")
    try:
        digest = sha256_file(p)
    except OSError as err:
        raise BadInput(p, f"source unreadable: {err.strerror or err}") from None
    if digest.lower() != plan.source.sha256.lower():
        raise BadInput(p, "source changed since the plan was made (sha256 differs)")
    return p
