"""Train policies of the relational personas from label-inferred pairs and score them on real songs.

For each persona of ``--personas`` (``loud_loop@1``, ``repeat_cut@1``,
``quiet_filter@1``):

1. corpus excerpts (``--excerpt`` s from each track's start): every dev-half
   track, split into training tracks and validation tracks (every
   ``VAL_EVERY``-th in ``bench.quality_real.excerpts`` order, one package at a
   time), and ``--n-test`` test-half tracks; a training track also gives its
   next whole windows of the same length, up to ``--windows`` in all;
   persona pairs of each (``editorbot data pair``'s library call);
2. ``--n-synth`` synthetic persona pairs of ``--synth-s`` seconds (``editorbot
   data synth --seed 1000``);
3. three policies, each the bundled model's shape (``--hidden`` wide) with the whole-song context
   columns (``--context``), behavioural cloning only, on demonstrations
   walked with ``--bc-keep`` KEEP steps (``beat``: one beat, so the policy
   decides at every beat; ``label``: the labelled run's size) and loss
   weights balanced by ``--bc-balance``, the learning rate annealed to 0
   from ``--bc-lr`` over the passes unless ``--no-bc-anneal`` (the fine-tune
   keeps a constant 1e-3: its 20 pairs give few steps to move the bundled
   model), and the per-beat label head's loss weighted by
   ``--aux-label-weight W`` (``train rl --aux-label-weight``; default 0.3,
   chosen on the validation songs in ``docs/policy_quality.md``).
   ``--bc-epochs`` passes (default 5: with 240 synthetic pairs 10 overfit,
   ``docs/policy_quality.md`` "Recipes on the learned grid"); ``--policies`` picks which of the two trainings from scratch run. Their
   checkpoint folders are named by the flags that differ from the first
   work folders' recipe (``variant_tag``: ``ckpt_*_label0.3``,
   ``..._h256``, ``..._e20``, ``..._lr0.0005``, ``..._s2``), so one work
   folder holds a baseline and its variants:

   - **synthetic, true labels**: the synthetic pairs' own labels
     (``train rl --bc-from-labels``), the recipe of ``docs/policy_quality.md``
     with more songs;
   - **real + synthetic, inferred**: ``editorbot data labels --context`` over
     the real training pairs and the synthetic ones together (label
     inference from the audio; the truth is read only to score it), then
     ``train rl --bc-mixed``;
   - **fine-tuned default** (with ``--finetune N``): ``train rl --init
     models/default`` on the first ``N`` real training pairs, labels inferred
     (``data labels``, ``--context`` when the bundled model reads the context
     columns): what a user with ``N`` edits of their own does;

4. on the validation pairs, the test pairs and, with ``--synth-test N``, N
   held-out synthetic songs (seeds from ``bench.quality_real.SYNTH_SEED``,
   ``--synth-s`` long), every walker of ``bench.quality_real.score_test``
   (always-KEEP, the bundled model, the hand-written rule, label inference,
   each trained policy): event F1.

Choices are made on the validation rows; the test rows are the report.
Each step is skipped when its output is already in ``--work`` (a training
run resumes from its ``last.pt``), so a killed run is started again with
the same command.

    python -m bench.relational_training [--personas A,B] [--n-test 20] [--n-synth 60] [--synth-s 45]
        [--excerpt 60] [--windows 1] [--hidden 128] [--bc-epochs 5] [--bc-lr 1e-3] [--bc-keep beat] [--bc-balance 0]
        [--no-bc-anneal] [--aux-label-weight 0.3] [--seed 1] [--policies synthetic,mixed] [--finetune 20]
        [--synth-test 0] [--work DIR] [--json F]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.quality_real import (
    PERSONAS,
    SYNTH_SEED,
    check_personas,
    excerpts,
    finite,
    make_pairs,
    score_test,
    table,
)

logger = logging.getLogger("bench.relational_training")

#: Every VAL_EVERY-th dev excerpt is a validation song, the others train.
VAL_EVERY = 6
#: The trained policies' shape: the bundled model's (models/default/MODEL_CARD.md) but its width (``--hidden``).
#: BC passes of the fine-tune, whatever ``--bc-epochs`` says: the recipe its figures were measured with.
FINETUNE_EPOCHS = 10
MODEL_FLAGS = ("--heads", "4", "--layers", "2", "--kernel", "17", "--value-hidden", "32", "--value-heads", "4")


def editorbot(args: list[str], log_path: Path) -> float:
    """Run ``editorbot ARGS`` (this checkout's code), output to ``log_path``; wall seconds. Raises on failure."""
    t = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ editorbot {' '.join(args)}\n")
        log.flush()
        proc = subprocess.run([sys.executable, "-m", "editorbot.bridge", *args], stdout=log, stderr=subprocess.STDOUT,
                              check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"editorbot {' '.join(args[:2])} failed (exit {proc.returncode}); see {log_path}")
    return time.perf_counter() - t


def link_pairs(sources: list[Path], dest: Path, names: set[str] | None = None) -> int:
    """Symlink the pairs of ``sources`` (every one, or those in ``names``) into one pair folder ``dest``."""
    n = 0
    for sub in ("input", "desired_output", "labels", "reference"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for src in sources:
        for label in sorted((src / "labels").glob("*.json")):
            name = label.stem
            if names is not None and name not in names:
                continue
            for sub, suffix in (("input", "_raw.wav"), ("desired_output", "_edit.wav"), ("labels", ".json")):
                link = dest / sub / f"{name}{suffix}"
                if not link.exists():
                    link.symlink_to((src / sub / f"{name}{suffix}").resolve())
            n += 1
    return n


def variant_tag(args: argparse.Namespace) -> tuple[str, str]:
    """Checkpoint folder suffix and walker-name suffix of the trainings from scratch.

    Each flag that differs from the recipe the first work folders were trained with (no label head, width 128,
    10 passes at BC rate 1e-3, seed 1) adds a part, so variants trained in one work folder never resume or skip
    each other's runs, and a folder's name keeps meaning the same training when the bench's defaults change.
    """
    parts: list[tuple[str, str]] = []
    if args.aux_label_weight:
        parts.append((f"_label{args.aux_label_weight:g}", f", label head {args.aux_label_weight:g}"))
    if args.hidden != 128:
        parts.append((f"_h{args.hidden}", f", width {args.hidden}"))
    if args.bc_epochs != 10:
        parts.append((f"_e{args.bc_epochs}", f", {args.bc_epochs} passes"))
    if args.bc_lr != 1e-3:
        parts.append((f"_lr{args.bc_lr:g}", f", BC rate {args.bc_lr:g}"))
    if args.seed != 1:
        parts.append((f"_s{args.seed}", f", seed {args.seed}"))
    return "".join(p[0] for p in parts), "".join(p[1] for p in parts)


def train(save_dir: Path, flags: list[str], log_path: Path, args: argparse.Namespace,
          from_scratch: bool = True) -> tuple[Path, float]:
    """``train rl --bc-only`` into ``save_dir`` (resumed when there); its ``last.pt`` and wall seconds.

    ``from_scratch`` False (the fine-tune) trains ``FINETUNE_EPOCHS`` passes at a constant BC rate 1e-3 whatever
    ``--bc-epochs``, ``--bc-lr`` and ``--bc-anneal`` say
    and leaves the label head out whatever ``--aux-label-weight`` says.
    """
    done = save_dir / ".done"
    if done.exists():
        return save_dir / "last.pt", float(done.read_text() or 0)
    seconds = editorbot(["train", "rl", "--save-dir", str(save_dir), "--resume", "--bc-only", "--bc-epochs",
                         str(args.bc_epochs if from_scratch else FINETUNE_EPOCHS), "--bc-balance", f"{args.bc_balance:g}", "--bc-lr",
                         f"{args.bc_lr if from_scratch else 1e-3:g}",
                         "--bc-anneal" if args.bc_anneal and from_scratch else "--no-bc-anneal", "--no-target",
                         "--aux-label-weight", f"{args.aux_label_weight if from_scratch else 0.0:g}",
                         "--seed", str(args.seed), "--quiet", *flags], log_path)
    done.write_text(f"{seconds:.1f}")
    return save_dir / "last.pt", seconds


def run_persona(style: str, args: argparse.Namespace, work: Path, train_songs: list[Path], val_songs: list[Path],
                test: list[Path]) -> dict[str, Any]:
    """Pairs, the three trainings and the validation and test scores of one persona (module docstring)."""
    from editorbot.export.runtime import DEFAULT_MODEL, load_policy

    root = work / style.replace("@", "_")
    log_path = root / "commands.log"
    root.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    real_train = make_pairs(style, train_songs, root / "real_train")
    real_val = make_pairs(style, val_songs, root / "real_val")
    real_test = make_pairs(style, test, root / "real_test")
    seconds["real pairs"] = time.perf_counter() - t
    synth = root / "synth"
    if not (synth / ".done").exists():
        seconds["synth pairs"] = editorbot(["data", "synth", "--n", str(args.n_synth), "--out", str(synth), "--styles",
                                            style, "--seed", "1000", "--duration", f"{args.synth_s:g}", "--jobs", "1",
                                            "--quiet"], log_path)
        (synth / ".done").touch()
    mixed = root / "train"
    link_pairs([root / "real_train", synth], mixed)
    bc = root / "train_bc.npz"
    if not bc.exists():
        seconds["labels"] = editorbot(["data", "labels", "--data-dir", str(mixed), "--out", str(bc), "--eval",
                                       "--context", "--bc-keep", args.bc_keep, "--quiet"], log_path)
    checkpoints: dict[str, Path] = {}
    tag, name = variant_tag(args)
    seed_tag = f"_s{args.seed}" if args.seed != 1 else ""
    if "synthetic" in args.policies:
        checkpoints[f"synthetic, true labels{name}"], seconds["train synthetic"] = train(
            root / f"ckpt_synth{tag}", ["--data-dir", str(synth), "--bc-from-labels", "--bc-keep", args.bc_keep,
                                        "--context", "--hidden", str(args.hidden), *MODEL_FLAGS], log_path, args)
    if "mixed" in args.policies:
        checkpoints[f"real+synth, inferred{name}"], seconds["train real+synth"] = train(
            root / f"ckpt_mixed{tag}", ["--data-dir", str(mixed), "--bc-mixed", str(bc), "--context", "--hidden",
                                        str(args.hidden), *MODEL_FLAGS], log_path, args)
    if args.finetune:
        bundled = load_policy(None)
        ft = root / f"finetune_{args.finetune}"
        link_pairs([root / "real_train"], ft, {r.name for r in real_train[: args.finetune]})
        ft_bc = root / f"finetune_{args.finetune}_bc.npz"
        if not ft_bc.exists():
            seconds["labels finetune"] = editorbot(["data", "labels", "--data-dir", str(ft), "--out", str(ft_bc), "--quiet",
                                                    "--bc-keep", args.bc_keep,
                                                    *(["--context"] if bundled.spec.reads_context else [])], log_path)
        checkpoints[f"default fine-tuned ({args.finetune})"], seconds["train finetune"] = train(
            root / f"ckpt_finetune{seed_tag}", ["--init", str(DEFAULT_MODEL.parent), "--data-dir", str(ft), "--bc-mixed", str(ft_bc)],
            log_path, args, from_scratch=False)
    out: dict[str, Any] = {"persona": style, "n_train_real": len(real_train), "n_synth": args.n_synth,
                           "checkpoints": {k: str(v) for k, v in checkpoints.items()}}
    policy = load_policy(None)
    halves = [("validation", real_val, root / "real_val"), ("test", real_test, root / "real_test")]
    if args.synth_test:
        from editorbot.training.data.pairs import make_synth_pair

        held_out = root / "synth_test"
        halves.append(("synthetic held-out", [make_synth_pair(SYNTH_SEED + k, style, held_out, args.synth_s)
                                              for k in range(args.synth_test)], held_out))
    for label, records, folder in halves:
        t = time.perf_counter()
        scores = score_test(style, records, policy, [str(c) for c in checkpoints.values()], folder)
        # score_test names several checkpoints by their folders: give them this benchmark's names
        renamed = {f"policy {c.parent.name}": k for k, c in checkpoints.items()}
        scores = {renamed.get(k, k): v for k, v in scores.items()}
        seconds[f"score {label}"] = time.perf_counter() - t
        print(table(f"{style} {label}", scores), flush=True)
        out[label] = {"pairs": [r.name for r in records], "scores": scores}
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    print(f"{style}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + "\n", flush=True)
    return out



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", default=",".join(PERSONAS), metavar="A,B", help="relational personas")
    ap.add_argument("--n-test", type=int, default=20, help="test-half excerpts (default 20)")
    ap.add_argument("--n-synth", type=int, default=60, help="synthetic training pairs per persona (default 60)")
    ap.add_argument("--synth-s", type=float, default=45.0, help="their length in seconds (default 45)")
    ap.add_argument("--excerpt", type=float, default=60.0, metavar="S", help="seconds from each track's start")
    ap.add_argument("--windows", type=int, default=1, metavar="K",
                    help="whole excerpt-long windows per training track, the first included (default 1)")
    ap.add_argument("--hidden", type=int, default=128,
                    help="policy width of the two trained policies (default 128; the bundled model's is 64)")
    ap.add_argument("--bc-epochs", type=int, default=5,
                    help="behavioural-cloning passes of the trainings from scratch (default 5, chosen on the validation "
                         "songs in docs/policy_quality.md; the fine-tune keeps FINETUNE_EPOCHS)")
    ap.add_argument("--bc-lr", type=float, default=1e-3, metavar="LR",
                    help="train rl --bc-lr of the trainings from scratch, the rate the annealing starts from "
                         "(default 1e-3; the fine-tune keeps 1e-3)")
    ap.add_argument("--policies", default="synthetic,mixed", metavar="A,B",
                    help="which policies to train from scratch: synthetic (true labels), mixed (real + synthetic, "
                         "inferred) or both (default)")
    ap.add_argument("--bc-keep", choices=("beat", "label"), default="beat",
                    help="KEEP steps of the demonstration walks (data labels --bc-keep; default beat)")
    ap.add_argument("--bc-balance", type=float, default=0.0, metavar="P", help="train rl --bc-balance (default 0)")
    ap.add_argument("--bc-anneal", action=argparse.BooleanOptionalAction, default=True,
                    help="train rl --bc-anneal for the trainings from scratch: the BC rate falls linearly to 0 "
                         "(default on; the fine-tune keeps a constant rate)")
    ap.add_argument("--aux-label-weight", type=float, default=0.3, metavar="W",
                    help="train rl --aux-label-weight for the trainings from scratch: the per-beat label head's "
                         "loss weight (default 0.3; 0: no head)")
    ap.add_argument("--seed", type=int, default=1,
                    help="train rl --seed of the trainings (default 1; others train into ckpt_*_sS, the fine-tune too)")
    ap.add_argument("--finetune", type=int, default=20, metavar="N",
                    help="also fine-tune the bundled model on N real training pairs (0: no)")
    ap.add_argument("--synth-test", type=int, default=0, metavar="N",
                    help="also score N held-out synthetic songs of --synth-s seconds (default 0)")
    ap.add_argument("--corpus", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    ap.add_argument("--work", required=True, help="work folder (steps already done there are skipped)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.policies = args.policies.split(",")
    if not set(args.policies) <= {"synthetic", "mixed"}:
        print(f"--policies: {','.join(args.policies)}: choose among synthetic, mixed", file=sys.stderr)
        return 2
    try:
        personas = check_personas(args.personas)
    except ValueError as e:
        print(f"--personas: {e}", file=sys.stderr)
        return 2
    root = corpus.corpus_dir(args.corpus)
    work = Path(args.work)
    t0 = time.perf_counter()
    try:
        n_dev = len(corpus.load_tracks(root, split="dev"))
        test = excerpts("test", args.n_test, args.excerpt, root, work / "excerpts" / "test")
        windows = excerpts("dev", n_dev, args.excerpt, root, work / "excerpts" / "dev", windows=args.windows)
    except FileNotFoundError as e:
        print(str(e), file=sys.stderr)
        return 2
    dev = [s for s in windows if "@" not in s.stem]  # each track's first window (excerpts names the others NAME@K)
    val_songs = dev[::VAL_EVERY]
    val_stems = {s.stem for s in val_songs}
    train_songs = [s for s in windows if s.stem.split("@")[0] not in val_stems]
    print(f"{len(dev)} dev tracks ({len(val_songs)} for validation; {len(train_songs)} training excerpts), "
          f"{len(test)} test excerpts of {args.excerpt:g} s in {work}\n", flush=True)
    results = []
    for p in personas:
        results.append(run_persona(p, args, work, train_songs, val_songs, test))
        if args.json:  # after every persona, so a long run leaves what it has
            from editorbot.engine.atomic import write_json_atomic

            write_json_atomic(args.json, finite({"args": vars(args), "results": results,
                                                 "seconds": round(time.perf_counter() - t0, 1)}))
    print(f"total {time.perf_counter() - t0:.1f} s on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
