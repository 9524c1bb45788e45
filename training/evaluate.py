"""Evaluation of a policy's walk against an editor style's ground-truth labels.

The question asked of a trained policy is: walking a held-out song the way
``editorbot edit`` does (greedy, masks applied, no target length unless
asked for), which action covers each beat, and how often is that the action
the style's editor chose for that beat? Scores are beat-level, over every
labelled beat of every song pooled together:

- **type F1, micro**: pooled over beats. In a single-label problem every
  beat adds one prediction and one truth, so micro precision = micro recall
  = micro F1 = the share of beats whose type is right.
- **type F1, macro**: the unweighted mean of the per-type F1 over the types
  that occur in the truth or in the prediction (scikit-learn's default
  label set: a type the policy invents and the editor never uses counts
  with F1 0). Rare types weigh as much as KEEP, so a walk that only gets the
  common type right scores low.
- a per-type table: precision, recall, F1, support (true beats) and
  predicted beats of each type.
- ``action_accuracy``: share of beats whose (type, size, amount) all match;
  ``type_amount_accuracy``: type and amount match (the size of the step that
  covered a beat is a walk detail more than an edit decision).

Baselines walk the same songs: ``"keep"`` is the always-KEEP edit (the
unedited song, one KEEP per beat). ``evaluate_structure_majority`` is a
reference point rather than a baseline: it is told each song's true
sections and predicts the type its training pairs chose most often at that
place in a song (what a walker can get from structure and position alone).

Shapes: per-song labels are ``(n_beats, 3)`` int64 ``(type, size, amount)``
with -1 where unknown (``training.dataset.Episode.labels``); unknown beats
are left out of every score.

Command line::

    python -m editorbot.training.evaluate --data-dir DIR [--checkpoint C ...] [--baseline keep]
                                [--structure-from TRAIN_DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from editorbot.engine.actions import N_TYPES, TYPES, ActionType, Amount, Size

if TYPE_CHECKING:
    from editorbot.training.dataset import Episode
    from editorbot.training.models.agent import EditAgent

logger = logging.getLogger(__name__)

#: Baseline walks ``walk_labels`` can give instead of a policy's.
BASELINES: tuple[str, ...] = ("keep",)


# ---------------------------------------------------------------------------- scores


@dataclass
class TypeScore:
    """One type's row of the per-type table (beats pooled over songs)."""

    type: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass
class F1Report:
    """Beat-level type scores of predicted against true labels.

    Attributes
    ----------
    micro_f1:
        Pooled F1 (= beat accuracy of the type for single-label beats).
    macro_f1:
        Mean per-type F1 over ``macro_types``.
    macro_types:
        Types in the truth or the prediction (the ones macro averages).
    per_type:
        ``TypeScore`` of every type in ``macro_types``, in ``TYPES`` order.
    n_beats:
        Labelled beats scored.
    type_amount_accuracy, action_accuracy:
        Share of beats whose (type, amount), and whose (type, size, amount),
        match; NaN when only types were given.
    """

    micro_f1: float
    macro_f1: float
    macro_types: list[str]
    per_type: list[TypeScore]
    n_beats: int
    type_amount_accuracy: float = float("nan")
    action_accuracy: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _as_label_array(x: np.ndarray) -> np.ndarray:
    """``(n,)`` types or ``(n, 3)`` actions -> ``(n, 3)`` int64 (size and amount -1 when absent)."""
    a = np.asarray(x, dtype=np.int64)
    if a.ndim == 1:
        out = np.full((a.shape[0], 3), -1, dtype=np.int64)
        out[:, 0] = a
        return out
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"labels must be (n,) types or (n, 3) actions, got shape {a.shape}")
    return a


def type_f1(
    true: np.ndarray | Sequence[np.ndarray], pred: np.ndarray | Sequence[np.ndarray]
) -> F1Report:
    """Beat-level type F1 of ``pred`` against ``true``.

    Parameters
    ----------
    true, pred:
        One song's labels, ``(n,)`` type indices or ``(n, 3)`` (type, size,
        amount), or a list of songs (each pair of the same length). Beats
        whose true type is negative (unknown) are left out.

    Returns
    -------
    ``F1Report`` (micro and macro F1, per-type table, accuracies).

    Raises
    ------
    ValueError
        Mismatched lengths, or no labelled beat at all.
    """
    trues = [true] if isinstance(true, np.ndarray) else list(true)
    preds = [pred] if isinstance(pred, np.ndarray) else list(pred)
    if len(trues) != len(preds):
        raise ValueError(f"{len(trues)} true songs but {len(preds)} predicted")
    t_all, p_all = [], []
    for k, (t, p) in enumerate(zip(trues, preds, strict=True)):
        t, p = _as_label_array(t), _as_label_array(p)
        if t.shape[0] != p.shape[0]:
            raise ValueError(f"song {k}: {t.shape[0]} true beats but {p.shape[0]} predicted")
        known = t[:, 0] >= 0
        t_all.append(t[known])
        p_all.append(p[known])
    t = np.concatenate(t_all) if t_all else np.zeros((0, 3), np.int64)
    p = np.concatenate(p_all) if p_all else np.zeros((0, 3), np.int64)
    n = t.shape[0]
    if n == 0:
        raise ValueError("no labelled beats to score")
    if p[:, 0].min() < 0 or p[:, 0].max() >= N_TYPES or t[:, 0].max() >= N_TYPES:
        raise ValueError(f"type index outside 0..{N_TYPES - 1}")

    tt, pt = t[:, 0], p[:, 0]
    support = np.bincount(tt, minlength=N_TYPES)
    predicted = np.bincount(pt, minlength=N_TYPES)
    hits = np.bincount(tt[tt == pt], minlength=N_TYPES)
    present = np.flatnonzero((support > 0) | (predicted > 0))
    rows = []
    for k in present.tolist():
        precision = hits[k] / predicted[k] if predicted[k] else 0.0
        recall = hits[k] / support[k] if support[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        rows.append(TypeScore(TYPES[k], float(precision), float(recall), float(f1), int(support[k]), int(predicted[k])))
    micro = float(hits.sum() / n)
    macro = float(np.mean([r.f1 for r in rows]))
    have_amount = (t[:, 2] >= 0).all() and (p[:, 2] >= 0).all()
    have_size = (t[:, 1] >= 0).all() and (p[:, 1] >= 0).all()
    type_amount = float(np.mean((tt == pt) & (t[:, 2] == p[:, 2]))) if have_amount else float("nan")
    action = float(np.mean((t == p).all(axis=1))) if have_amount and have_size else float("nan")
    return F1Report(micro, macro, [r.type for r in rows], rows, n, type_amount, action)


# ---------------------------------------------------------------------------- walks


def keep_walk(n_beats: int) -> np.ndarray:
    """``(n_beats, 3)``: the always-KEEP walk (one KEEP BEAT NEUTRAL per beat)."""
    out = np.empty((n_beats, 3), dtype=np.int64)
    out[:] = (int(ActionType.KEEP), int(Size.BEAT), int(Amount.NEUTRAL))
    return out


def policy_walks(
    agent: EditAgent,
    episodes: Sequence[Episode],
    *,
    use_target: bool = False,
    deterministic: bool = True,
    batch_songs: int = 64,
    seed: int = 0,
) -> list[np.ndarray]:
    """Walk every song with the policy; the action covering each beat.

    Songs are walked side by side in ``training.env.EditEnv`` (one forward
    pass per step for all songs still walking), masks applied before the
    choice, exactly the observations training and ``export.runtime`` build.

    Parameters
    ----------
    agent:
        The policy (its ``config`` shapes the observations).
    episodes:
        Songs (features ``(n_beats, in_dim)``).
    use_target:
        Give the walk each song's labelled output length (the
        ``output_ratio`` column); False is ``editorbot edit`` without
        ``--target-duration``.
    deterministic:
        Most likely choice per factor (True) or sampled from ``seed``.
    batch_songs:
        Songs walked at once.

    Returns
    -------
    One ``(n_beats, 3)`` int64 array per song: (type, size, amount) of the
    step that covered each beat.
    """
    import torch

    from editorbot.training.env import EditEnv
    from editorbot.training.models.agent import OBS_FIELDS, ActionMasks, Observation

    cfg = agent.config
    was_training = agent.training
    agent.eval()
    gen = torch.Generator().manual_seed(seed)
    out: list[np.ndarray] = [np.zeros((e.n_beats, 3), dtype=np.int64) for e in episodes]
    try:
        for first in range(0, len(episodes), batch_songs):
            chunk = list(range(first, min(first + batch_songs, len(episodes))))
            envs = {i: EditEnv([episodes[i]], cfg, use_target=use_target) for i in chunk}
            state = {i: envs[i].reset(options={"song": 0}) for i in chunk}
            while state:
                ids = list(state)
                o = Observation.from_numpy({k: np.stack([state[i][0][k] for i in ids]) for k in OBS_FIELDS})
                masks = [state[i][1]["action_masks"] for i in ids]
                m = ActionMasks(
                    torch.from_numpy(np.stack([x["type"] for x in masks])),
                    torch.from_numpy(np.stack([x["size"] for x in masks])),
                    torch.from_numpy(np.stack([x["amount"] for x in masks])),
                )
                with torch.no_grad():
                    if deterministic:
                        action, _, _, _ = agent.get_action_and_value(o, m, deterministic=True)
                    else:
                        torch_state = torch.get_rng_state()
                        torch.set_rng_state(gen.get_state())
                        action, _, _, _ = agent.get_action_and_value(o, m)
                        gen.set_state(torch.get_rng_state())
                        torch.set_rng_state(torch_state)
                for row, i in enumerate(ids):
                    env = envs[i]
                    start = env.cursor
                    obs_i, _, terminated, _, info = env.step(action[row].numpy())
                    t, s, a = (int(v) for v in info["applied_action"])
                    out[i][start : env.cursor] = (t, s, a)
                    if terminated:
                        del state[i]
                    else:
                        state[i] = (obs_i, info)
    finally:
        agent.train(was_training)
    return out


# ---------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """Scores of one walker on a set of songs."""

    walker: str
    report: F1Report
    n_songs: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"walker": self.walker, "n_songs": self.n_songs, "seconds": self.seconds, **self.extra, **self.report.to_dict()}


def _labelled(episodes: Sequence[Episode]) -> list[Episode]:
    out = [e for e in episodes if e.labels is not None and (np.asarray(e.labels)[:, 0] >= 0).any()]
    if not out:
        raise ValueError("no labelled songs to evaluate on")
    return out


def evaluate_baseline(episodes: Sequence[Episode], baseline: str = "keep") -> Evaluation:
    """Score a baseline walk (``BASELINES``) on the labelled songs of ``episodes``."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r} (one of {', '.join(BASELINES)})")
    t0 = time.perf_counter()
    songs = _labelled(episodes)
    pred = [keep_walk(e.n_beats) for e in songs]
    report = type_f1([cast(np.ndarray, e.labels) for e in songs], pred)  # _labelled: never None
    return Evaluation(f"always-{baseline.upper()}", report, len(songs), time.perf_counter() - t0)


def evaluate_policy(
    agent: EditAgent, episodes: Sequence[Episode], *, name: str = "policy", use_target: bool = False
) -> Evaluation:
    """Walk the labelled songs of ``episodes`` greedily with ``agent`` and score the walks."""
    t0 = time.perf_counter()
    songs = _labelled(episodes)
    pred = policy_walks(agent, songs, use_target=use_target)
    report = type_f1([cast(np.ndarray, e.labels) for e in songs], pred)  # _labelled: never None
    return Evaluation(name, report, len(songs), time.perf_counter() - t0, {"use_target": use_target})


def _structure_keys(doc: dict[str, Any]) -> tuple[list[tuple[Any, ...]], np.ndarray]:
    """Per true-grid beat of a label file: its place in the song's sections, and its true type.

    A place is (section name, its ordinal among sections of that name, how
    many there are, whether it is the last section, the section's length in
    beats, the next section's name, the beat's offset in its section).
    """
    types = np.asarray(doc["beat_labels"]["type"], dtype=np.int64)
    sections = doc.get("sections") or []
    names = [s["name"] for s in sections]
    keys: list[tuple[Any, ...]] = [("none", 0, 0, False, 0, None, b) for b in range(types.shape[0])]
    for k, sec in enumerate(sections):
        ordinal, count, last = names[:k].count(sec["name"]), names.count(sec["name"]), k == len(sections) - 1
        nxt = names[k + 1] if k + 1 < len(sections) else None
        for b in range(sec["start_beat"], min(sec["start_beat"] + sec["n_beats"], types.shape[0])):
            keys[b] = (sec["name"], ordinal, count, last, sec["n_beats"], nxt, b - sec["start_beat"])
    return keys, types


def structure_majority(
    train_docs: Sequence[dict[str, Any]], test_docs: Sequence[dict[str, Any]], *, name: str = "structure-majority"
) -> Evaluation:
    """``evaluate_structure_majority`` on label documents already read (``training.data.pairs`` label JSON).

    Each document needs ``beat_labels`` (``type`` at least) and ``sections``
    (``name``, ``start_beat``, ``n_beats``).
    """
    if not train_docs or not test_docs:
        raise ValueError("structure majority: no training or no held-out label documents")
    t0 = time.perf_counter()
    counts: dict[tuple[Any, ...], np.ndarray] = {}
    overall = np.zeros(N_TYPES, dtype=np.int64)
    for doc in train_docs:
        keys, types = _structure_keys(doc)
        for key, t in zip(keys, types, strict=True):
            counts.setdefault(key, np.zeros(N_TYPES, dtype=np.int64))[t] += 1
        overall += np.bincount(types, minlength=N_TYPES)
    fallback = int(np.argmax(overall))
    trues, preds = [], []
    unseen = 0
    for doc in test_docs:
        keys, types = _structure_keys(doc)
        trues.append(types)
        preds.append(np.array([int(np.argmax(counts[k])) if k in counts else fallback for k in keys], dtype=np.int64))
        unseen += sum(k not in counts for k in keys)
    report = type_f1(trues, preds)
    return Evaluation(name, report, len(test_docs), time.perf_counter() - t0,
                      {"grid": "true", "n_train_songs": len(train_docs), "unseen_place_beats": unseen})


def keep_on_true_grid(docs: Sequence[dict[str, Any]]) -> Evaluation:
    """Always-KEEP scored on the label documents' true-grid labels (what ``structure_majority`` scores on).

    ``evaluate_baseline`` scores on the episodes' labels, which live on the
    analysed grid; this one needs no analysis of the audio.
    """
    if not docs:
        raise ValueError("always-KEEP: no label documents")
    t0 = time.perf_counter()
    trues = [np.stack([np.asarray(d["beat_labels"][k], dtype=np.int64) for k in ("type", "size", "amount")], axis=1)
             for d in docs]
    report = type_f1(trues, [keep_walk(t.shape[0]) for t in trues])
    return Evaluation("always-KEEP", report, len(docs), time.perf_counter() - t0, {"grid": "true"})


def read_label_docs(folder: str | Path) -> list[dict[str, Any]]:
    """Every ``labels/*.json`` of a pair folder, in name order; ValueError if there is none."""
    from editorbot.training.data.pairs import read_label_doc

    files = sorted(Path(folder, "labels").glob("*.json"))
    if not files:
        raise ValueError(f"no label files in {folder}/labels")
    return [read_label_doc(f) for f in files]


def evaluate_structure_majority(train_dir: str | Path, test_dir: str | Path) -> Evaluation:
    """A walker that knows each song's true sections: the majority type of each place in a song.

    A beat's place is (section name, its ordinal among sections of that name,
    how many there are, whether it is the last section, the section's length,
    the next section's name, the beat's offset in its section). The majority
    type of every place is counted over the training pairs' label files; each
    held-out beat (on the true grid) gets the majority of its place, or the
    overall majority for a place never seen. The editor styles draw some
    choices per song at random (which verse a radio edit drops, which
    treatments mastering gives a section, ...): nothing in the audio tells
    them, and this walker shows how much of a style is predictable from
    structure and position alone. Persona styles (``radio_edit@1``, ...)
    choose by rules on these places (and on section energy, which sets only
    amounts and, in ``dj_edit`` personas, tail lengths that follow the
    section's role on synthesized songs), so for them it is close to 1.
    """
    return structure_majority(read_label_docs(train_dir), read_label_docs(test_dir))


def format_table(evaluations: Sequence[Evaluation]) -> str:
    """Markdown: one summary row per walker."""
    lines = [
        "| walker | songs | beats | type F1 micro | type F1 macro | type+amount acc. | action acc. |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ev in evaluations:
        r = ev.report
        lines.append(
            f"| {ev.walker} | {ev.n_songs} | {r.n_beats} | {r.micro_f1:.3f} | {r.macro_f1:.3f} | "
            f"{r.type_amount_accuracy:.3f} | {r.action_accuracy:.3f} |"
        )
    return "\n".join(lines)


def format_per_type(evaluation: Evaluation) -> str:
    """Markdown: the per-type table of one walker."""
    lines = [
        f"{evaluation.walker}:",
        "",
        "| type | precision | recall | F1 | true beats | predicted beats |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in evaluation.report.per_type:
        lines.append(
            f"| {row.type} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | {row.support} | {row.predicted} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m editorbot.training.evaluate``: score checkpoints and baselines on a labelled data folder."""
    from editorbot.engine.errors import BadInput

    p = argparse.ArgumentParser(
        prog="python -m editorbot.training.evaluate",
        description="Beat-level type F1 of policies' walks (and baselines) against a data folder's labels.",
    )
    p.add_argument("--data-dir", required=True, metavar="DIR", help="pairs with input/ and labels/ (held-out songs)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="C", help="training checkpoint (repeatable)")
    p.add_argument("--name", action="append", default=[], metavar="NAME", help="row name of each --checkpoint")
    p.add_argument("--baseline", action="append", default=[], choices=BASELINES, help="baseline walk (repeatable)")
    p.add_argument("--structure-from", metavar="TRAIN_DIR",
                   help="also score the structure-majority walker counted over TRAIN_DIR's label files")
    p.add_argument("--use-target", action="store_true", help="give the walk each song's labelled output length")
    p.add_argument("--per-type", action="store_true", help="print the per-type table of each walker")
    p.add_argument("--json", metavar="F", help="write every score as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.name and len(args.name) != len(args.checkpoint):
        print("editorbot.training.evaluate: --name: give one per --checkpoint", file=sys.stderr)
        return 2
    if not args.checkpoint and not args.baseline and not args.structure_from:
        print("editorbot.training.evaluate: nothing to evaluate (give --checkpoint or --baseline)", file=sys.stderr)
        return 2
    try:
        from editorbot.training.dataset import load_episodes, with_context_columns
        from editorbot.training.ppo import load_agent

        episodes = load_episodes(args.data_dir, require_labels=True, quiet=args.quiet)
        evaluations = [evaluate_baseline(episodes, b) for b in args.baseline]
        if args.structure_from:
            evaluations.append(evaluate_structure_majority(args.structure_from, args.data_dir))
        for k, path in enumerate(args.checkpoint):
            try:
                agent = load_agent(path)
            except (OSError, ValueError, KeyError) as err:
                raise BadInput(path, f"cannot load the checkpoint: {err}") from None
            songs = with_context_columns(episodes) if agent.config.context else episodes
            if agent.config.in_dim != songs[0].features.shape[1]:
                raise BadInput(path, f"model reads {agent.config.in_dim} feature columns, the songs have {songs[0].features.shape[1]}")
            name = args.name[k] if args.name else path
            evaluations.append(evaluate_policy(agent, songs, name=name, use_target=args.use_target))
    except (BadInput, ValueError) as err:
        print(f"training.evaluate: {err}", file=sys.stderr)
        return 2
    print(format_table(evaluations))
    if args.per_type:
        for ev in evaluations:
            print()
            print(format_per_type(ev))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([ev.to_dict() for ev in evaluations], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
