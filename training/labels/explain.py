"""What was done to a song: the inferred EditPlan of one (raw, edit) pair, with its plot and DAW exports.

``explain_pair`` is ``editorbot data explain RAW EDIT --plan OUT.json
[--plot PNG] [--export rpp,...]``: label inference (``infer.infer_pair``)
on one pair, then the same writers ``editorbot edit`` uses (``save_plan``,
``engine.exporters.export_plan``, ``engine.plot.plot_plan``), so the plan
opens in a DAW like an edit of editorbot's own. Every action of the plan
carries its confidence.

Bad pairs are refused before anything is written, with one line naming the
file (``BadInput``): a silent or unreadable file (``engine.audio``), two
files whose lengths differ by more than ``MAX_LENGTH_RATIO``, and an edit
that does not come from the raw song (unalignable). An output that already
exists is never overwritten.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from editorbot.engine.atomic import check_destinations
from editorbot.engine.audio import load_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, save_plan
from editorbot.training.labels.infer import PairLabels, infer_pair

log = logging.getLogger(__name__)

#: Longest / shortest file of a pair beyond which the two are not one song and its edit.
MAX_LENGTH_RATIO = 4.0


@dataclass
class Explanation:
    """What ``explain_pair`` found and wrote.

    Attributes
    ----------
    result : PairLabels
        the inferred labels of the pair (``result.plan`` is the plan written).
    written : dict[str, str]
        ``{what: path}`` of every file written (``plan``, ``plot``, each export format).
    """

    result: PairLabels
    written: dict[str, str] = field(default_factory=dict)

    @property
    def plan(self) -> EditPlan:
        """The inferred EditPlan."""
        return self.result.aligned()[0]

    def lines(self) -> list[str]:
        """A short report: the pair's match, each non-KEEP action with its confidence, the files written."""
        plan = self.plan
        counts = Counter(a.type for a in plan.actions if a.type != "KEEP")
        out = [
            f"{self.result.edit_path}: edit of {self.result.raw_path} (match {self.result.match:.2f}); "
            f"{sum(counts.values())} edits: " + (", ".join(f"{t} {n}" for t, n in counts.most_common()) or "none"),
        ]
        if self.result.file_gain_db:
            out.append(f"  the edit file is {self.result.file_gain_db:+.1f} dB overall (an export level, not an edit)")
        for a in plan.actions:
            if a.type == "KEEP":
                continue
            conf = "" if a.confidence is None else f"  confidence {a.confidence:.2f}"
            out.append(f"  {a.start_s:8.2f}-{a.end_s:8.2f} s  {a.type:<10} {a.size:<7} {a.amount:<9}{conf}")
        out += [f"wrote {what}: {path}" for what, path in self.written.items()]
        return out


def explain_pair(
    raw_path: str | os.PathLike,
    edit_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    *,
    plot_png: str | os.PathLike | None = None,
    exports: Sequence[str] = (),
    export_dir: str | os.PathLike | None = None,
    cache: Any = True,
) -> Explanation:
    """Infer the EditPlan that turned ``raw_path`` into ``edit_path`` and write it, its plot and its exports.

    Parameters
    ----------
    raw_path, edit_path : str | os.PathLike
        the song and its edit (any format ``engine.audio`` reads).
    plan_path : str | os.PathLike
        the EditPlan JSON to write.
    plot_png : str | os.PathLike | None
        also draw the before/after picture here (``engine.plot.plot_plan``).
    exports : Sequence[str]
        DAW formats (``engine.formats.EXPORT_FORMATS``), each written
        beside the plan as its stem + the format's extension.
    export_dir : str | os.PathLike | None
        where the exports go instead (default: the plan's folder).
    cache : engine.cache.FeatureCache | bool | None
        the raw song's feature cache (``engine.analysis.analyze``).

    Returns
    -------
    Explanation
        the inferred labels and the files written.

    Raises
    ------
    BadInput
        an unreadable or silent file, lengths that differ more than
        ``MAX_LENGTH_RATIO`` times, an edit that is not of the raw song, an
        unknown export format, or an output that exists already or would
        overwrite an input or another output. Nothing is written then.
    """
    raw_path, edit_path = os.fspath(raw_path), os.fspath(edit_path)
    paths = _output_paths(plan_path, plot_png, exports, export_dir, protect=[raw_path, edit_path])
    _check_lengths(raw_path, edit_path)
    result = infer_pair(raw_path, edit_path, cache=cache)
    if not result.alignable:
        raise BadInput(edit_path, f"not an edit of {raw_path}: {result.reason}")
    plan, _ = result.aligned()
    out = Explanation(result)
    save_plan(plan, paths["plan"])
    out.written["plan"] = paths["plan"]
    if exports:
        from editorbot.engine.exporters import export_plan

        for fmt in exports:
            out.written[fmt] = export_plan(plan, fmt, paths[fmt])
    if plot_png is not None:
        out.written["plot"] = _plot(result, paths["plot"])
    return out


def _output_paths(
    plan_path: str | os.PathLike,
    plot_png: str | os.PathLike | None,
    exports: Sequence[str],
    export_dir: str | os.PathLike | None,
    *,
    protect: list[str],
) -> dict[str, str]:
    """``{what: path}`` of every output, checked: none exists, none is an input, no two are one file."""
    from editorbot.engine.exporters import EXTENSIONS

    plan_path = os.fspath(plan_path)
    stem = os.path.basename(plan_path)
    for suffix in (".plan.json", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    folder = os.fspath(export_dir) if export_dir is not None else os.path.dirname(plan_path)
    paths = {"plan": plan_path}
    for fmt in exports:
        if fmt not in EXTENSIONS:
            raise BadInput("--export", f"unknown format {fmt!r} (choose from {', '.join(EXTENSIONS)})")
        paths[fmt] = os.path.join(folder, stem + EXTENSIONS[fmt])
    if plot_png is not None:
        paths["plot"] = os.fspath(plot_png)
    check_destinations(paths, protect)
    for what, p in paths.items():
        if os.path.lexists(p):
            raise BadInput(p, f"already exists: the {what} is never written over an earlier file")
    return paths


def _check_lengths(raw_path: str, edit_path: str) -> None:
    """BadInput when either file is unreadable or silent, or their lengths differ more than ``MAX_LENGTH_RATIO`` times."""
    raw_s = load_audio(raw_path).duration_s
    edit_s = load_audio(edit_path).duration_s
    if max(raw_s, edit_s) > MAX_LENGTH_RATIO * max(min(raw_s, edit_s), 1e-9):
        raise BadInput(
            edit_path, f"{edit_s:.1f} s against {raw_s:.1f} s of {raw_path}: too different in length to be an edit of it"
        )


def _plot(result: PairLabels, png: str) -> str:
    """The before/after picture of the inferred plan, with the edit file itself as the after (when at the raw rate)."""
    from editorbot.engine.plot import plot_plan

    plan, _ = result.aligned()
    raw = load_audio(result.raw_path)
    edit = load_audio(result.edit_path)
    edited = edit.samples if edit.sample_rate == raw.sample_rate else None
    return plot_plan(plan, raw.samples, raw.sample_rate, edited, png)
