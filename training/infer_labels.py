"""``editorbot data labels`` / ``data explain`` / ``data augment`` and ``python -m editorbot.training.infer_labels``.

``labels --data-dir DIR --out bc_rich.npz [--eval] [--jobs N] [--window W] [--history K] [--context]``
    Infer beat-by-beat labels for every (raw, edit) pair of DIR from the
    audio alone (``training.labels``), write the behavioural-cloning file
    and each pair's inferred plan (``<out stem>_plans/``). Pairs whose edit
    does not come from their raw song are reported, one line each, and left
    out, as is a pair that cannot be read; the run goes on. ``--eval``
    compares with ``labels/*.json`` where present and prints per-type
    precision/recall, beat accuracy, amount accuracy, boundary error and
    the calibration of the confidence (beat accuracy per confidence
    decile). ``--jobs N`` infers the pairs in N worker processes. The
    examples' window and history are the default policy's unless given
    (``train rl`` crops wider ones to its model's); ``--context`` adds the
    whole-song context columns a model trained with ``--context`` reads.

``explain RAW EDIT --plan OUT.json [--plot PNG] [--export rpp,...]``
    The inferred EditPlan of one pair, for seeing what was done to a song
    and bringing it into a DAW (``training.labels.explain``); each action
    with its confidence. Two files that are not one song and its edit (or
    a silent one, or lengths far apart) get one line and exit code 2; no
    output is written over an existing file.

``augment --in bc_rich.npz --out bc_aug.npz [--min-share 0.02] [--pairs-out DIR]``
    Add exactly-labelled examples of rare action types, rendered onto the
    raw songs the npz names (``training.augment``); prints the class shares
    before and after.

This module keeps its imports light: the command line builds its parser
without loading numpy-heavy code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from editorbot.training.config import AgentConfig

log = logging.getLogger(__name__)


def add_labels_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``data labels``."""
    p.add_argument("--data-dir", required=True, metavar="DIR", help="pair directory (input/, desired_output/, labels/)")
    p.add_argument("--out", required=True, metavar="NPZ", help="behavioural-cloning file to write (.npz)")
    p.add_argument("--eval", action="store_true", help="score against labels/*.json where present")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="pairs inferred in N worker processes (default 1)")
    p.add_argument("--window", type=int, default=None, metavar="W",
                   help="beats per example window (default: the default policy's; narrower models crop it)")
    p.add_argument("--history", type=int, default=None, metavar="K",
                   help="beats of walk history per example (default: the default policy's)")
    p.add_argument("--context", action="store_true",
                   help="add the whole-song context columns to the examples, for a model that reads them "
                        "(train rl --context, or --init from such a model)")
    add_bc_keep_argument(p)


def add_bc_keep_argument(p: argparse.ArgumentParser) -> None:
    """``--bc-keep``: the size of the KEEP steps of the demonstration walks (``training.bc.bc_examples``)."""
    p.add_argument("--bc-keep", choices=("label", "beat"), default="label",
                   help="KEEP steps of the demonstrations: the labelled run's size (label, the default) or one "
                        "beat, so the policy decides again at every beat (beat: better for edits that depend on "
                        "bars beyond the policy's window)")


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``data explain``."""
    from editorbot.engine.formats import EXPORT_FORMATS

    p.add_argument("raw", metavar="RAW", help="the song before the edit")
    p.add_argument("edit", metavar="EDIT", help="the edited song")
    p.add_argument("--plan", required=True, metavar="OUT.json", help="the inferred EditPlan to write (never over an existing file)")
    p.add_argument("--plot", default=None, metavar="PNG", help="also write a before/after picture")
    p.add_argument("--export", action="append", default=[], metavar="FORMATS",
                   help=f"comma-separated DAW formats written beside the plan: {', '.join(EXPORT_FORMATS)}")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def run_explain(args: argparse.Namespace) -> int:
    """``data explain``: exit code 0 (a bad pair raises ``BadInput``: one line, exit 2)."""
    from editorbot.training.labels.explain import explain_pair

    exports = [f.strip() for value in args.export for f in value.split(",") if f.strip()]
    report = explain_pair(
        args.raw, args.edit, args.plan, plot_png=args.plot, exports=exports, cache=not args.no_cache
    )
    for line in report.lines():
        print(line)
    return 0


def add_augment_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``data augment``."""
    p.add_argument("--in", dest="in_path", required=True, metavar="NPZ", help="file written by `data labels`")
    p.add_argument("--out", required=True, metavar="NPZ", help="augmented file to write (.npz)")
    p.add_argument("--min-share", type=float, default=0.02, metavar="F", help="lift every action type to this share of examples (default 0.02)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the augmentation (default 0)")
    p.add_argument("--pairs-out", default=None, metavar="DIR", help="also write the rendered pairs (input/, desired_output/, labels/)")


def run_labels(args: argparse.Namespace) -> int:
    """``data labels``: exit code 0, or 2 when no pair could be labelled."""
    from editorbot.training.labels.dataset import build_dataset

    report = build_dataset(
        args.data_dir,
        args.out,
        evaluate=bool(args.eval),
        cache=not getattr(args, "no_cache", False),
        quiet=bool(getattr(args, "quiet", False)),
        agent_config=_observation_config(args.window, args.history, bool(getattr(args, "context", False))),
        jobs=int(args.jobs),
        keep_size=bc_keep_size(args.bc_keep),
    )
    for name, reason in report.unalignable:
        print(f"unalignable: {name}: {reason}")
    speed = report.audio_seconds / max(report.seconds_per_pair * report.n_pairs, 1e-9)
    print(
        f"{report.out_path}: {report.n_examples} examples from {report.n_alignable} of {report.n_pairs} pairs "
        f"({report.seconds_per_pair:.2f} s per pair, {speed:.1f}x real time)"
    )
    if report.evaluation is not None:
        for line in report.evaluation.lines():
            print(line)
    return 0 if report.n_alignable else 2


def bc_keep_size(choice: str) -> int | None:
    """The ``bc_examples`` ``keep_size`` of a ``--bc-keep`` choice."""
    return 0 if choice == "beat" else None


def _observation_config(window: int | None, history: int | None, context: bool = False) -> AgentConfig | None:
    """The ``AgentConfig`` whose observation the examples take (None: the default policy's)."""
    if window is None and history is None and not context:
        return None
    from editorbot.engine.context import CONTEXT_NAMES
    from editorbot.engine.errors import BadInput
    from editorbot.training.config import AgentConfig

    default = AgentConfig()
    window = default.window if window is None else window
    history = default.history if history is None else history
    extra = {"context": True, "in_dim": default.in_dim + len(CONTEXT_NAMES)} if context else {}
    try:
        return AgentConfig.observation_only(window=window, history=history, **extra)
    except ValueError as err:
        raise BadInput("--window" if "window" in str(err) else "--history", str(err)) from None


def run_augment(args: argparse.Namespace) -> int:
    """``data augment``: exit code 0."""
    from editorbot.training.augment import augment_file, format_shares

    report = augment_file(args.in_path, args.out, min_share=args.min_share, seed=args.seed, pairs_out=args.pairs_out)
    print("class shares before:")
    print(format_shares(report.before))
    print("class shares after:")
    print(format_shares(report.after))
    print(f"{args.out}: {report.n_added} examples added ({report.n_before} -> {report.n_after})")
    return 0


def add_data_subcommands(
    sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None] | None = None
) -> None:
    """Register ``labels``, ``augment`` and ``explain`` under ``editorbot data``'s sub-parsers.

    They set ``_data_run`` like the other ``data`` subcommands.
    """
    labels = sub.add_parser(
        "labels",
        help="infer beat-by-beat labels of (raw, edit) pairs from the audio",
        description="Infer what was done to each beat of every (raw, edit) pair from the audio alone and "
        "write the behavioural-cloning npz (--eval: compare with labels/*.json).",
    )
    add_labels_arguments(labels)
    augment = sub.add_parser(
        "augment",
        help="add exactly-labelled examples of rare actions",
        description="Render rare actions onto the raw songs of a labels npz and add their exactly-labelled "
        "examples until every action type has --min-share of the examples.",
    )
    add_augment_arguments(augment)
    explain = sub.add_parser(
        "explain",
        help="show what was done to a song: the inferred EditPlan of one (raw, edit) pair",
        description="Infer the EditPlan that turned RAW into EDIT from the audio alone and write it "
        "(--plot: a before/after picture; --export: DAW sessions). Each action carries its confidence.",
    )
    add_explain_arguments(explain)
    for p in (labels, augment, explain):
        if common is not None:
            common(p)
    labels.set_defaults(_data_run=run_labels)
    augment.set_defaults(_data_run=run_augment)
    explain.set_defaults(_data_run=run_explain)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m editorbot.training.infer_labels {labels,augment,explain} ...``."""
    parser = argparse.ArgumentParser(prog="python -m editorbot.training.infer_labels", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    add_data_subcommands(sub)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from editorbot.engine.errors import BadInput

    try:
        return int(args._data_run(args))
    except BadInput as err:
        print(f"editorbot: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
