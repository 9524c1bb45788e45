"""Trainer entry point: ``python -m editorbot.training.train rl ...`` (``editorbot train rl``).

Sub-commands live under one parser so that ``train supervised`` can join
``rl``. Every ``AgentConfig`` and ``PPOConfig`` field is a flag
(``--hidden``, ``--num-envs``, ``--bc-weight``, ...) whose default is the
dataclass default; ``--bc-mixed`` names the demonstrations (``bc_path``).
Heavy imports (torch, the trainer) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from editorbot.engine.errors import BadInput
from editorbot.training.cli_flags import add_config_flags, config_from_args, run_trainer_command
from editorbot.training.config import AgentConfig, PPOConfig
from editorbot.training.infer_labels import add_bc_keep_argument, bc_keep_size
from editorbot.training.supervised_trainer import add_parser as add_supervised_parser

logger = logging.getLogger(__name__)

def add_rl_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``train rl``."""
    p.add_argument("--data-dir", required=True, metavar="DIR", help="folder with input/, labels/ (and reference/)")
    p.add_argument("--save-dir", required=True, metavar="D", help="checkpoints, TensorBoard events, progress log")
    p.add_argument("--subprocess", action="store_true", help="one process per environment (AsyncVectorEnv)")
    p.add_argument("--resume", action="store_true", help="continue from SAVE_DIR/last.pt")
    p.add_argument("--init", metavar="MODEL",
                   help="fine-tune: start from this policy's weights and config (a checkpoint .pt; with `editorbot "
                   "train rl` also an exported .onnx or a model folder such as models/default); policy flags are ignored")
    p.add_argument("--reference-dir", metavar="DIR", help="finished tracks for the reference reward (default DATA_DIR/reference)")
    p.add_argument("--bc-from-labels", action="store_true",
                   help="build the demonstrations from DATA_DIR/labels/*.json when --bc-mixed is not given")
    add_bc_keep_argument(p)
    p.add_argument("--no-target", dest="use_target", action="store_false",
                   help="walk without the songs' labelled output lengths (output_ratio column 0, no duration "
                   "reward), as `editorbot edit` does without --target-duration")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="(default cpu)")
    p.add_argument("--reward", action="append", default=[], metavar="TERM=W",
                   help="reward weight, e.g. --reward label=1 --reward density=0.2 (repeatable)")
    add_config_flags(p, AgentConfig, "policy (AgentConfig)")
    add_config_flags(p, PPOConfig, "PPO + behavioural cloning (PPOConfig)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-commands of the trainer: ``rl`` and ``supervised`` (``training.supervised_trainer``)."""
    sub = p.add_subparsers(dest="trainer", metavar="TRAINER", required=True)
    rl = sub.add_parser("rl", help="PPO + behavioural cloning policy", description="Train the edit policy.")
    # also accepted after the trainer's name; SUPPRESS keeps a value given before it
    rl.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only")
    rl.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    add_rl_arguments(rl)
    rl.set_defaults(_train=run_rl)
    add_supervised_parser(sub)


def _reward_weights(items: list[str]) -> Any:
    from editorbot.training.reward import RewardWeights  # numpy: not on the path of `editorbot --help`

    values: dict[str, Any] = {}
    names = {f.name: f.type for f in dataclasses.fields(RewardWeights)}
    for item in items:
        key, _, value = item.partition("=")
        if key not in names or not value:
            raise BadInput("--reward", f"expected TERM=WEIGHT with TERM one of {', '.join(names)}, got {item!r}")
        try:
            values[key] = int(value) if names[key] == "int" else float(value)
        except ValueError:
            raise BadInput("--reward", f"not a number: {item!r}") from None
    try:
        return RewardWeights(**values)
    except ValueError as err:
        raise BadInput("--reward", str(err)) from None


def _init_config(path: str) -> AgentConfig:
    """The agent config of the policy checkpoint ``--init`` names; BadInput on anything else."""
    from editorbot.training.ppo import load_checkpoint

    if Path(path).is_dir() or path.endswith(".onnx"):
        raise BadInput(path, "an exported model: `editorbot train rl --init` reads it; this trainer takes a checkpoint (.pt)")
    if not Path(path).is_file():
        raise BadInput(path, "no such checkpoint file")
    try:
        return AgentConfig(**load_checkpoint(path)["agent_config"])
    except (ValueError, KeyError, TypeError) as err:
        raise BadInput(path, f"not a policy checkpoint ({str(err).splitlines()[0][:200]})") from None


def run_rl(args: argparse.Namespace) -> int:
    """Load the data, build the configs, train; 0 on success."""
    # torch and the trainer load here, not at import: `editorbot --help` builds this parser
    from editorbot.training.bc import BCData, bc_examples
    from editorbot.training.dataset import load_episodes, load_reference_features, with_context_columns
    from editorbot.training.ppo import train
    from editorbot.training.reward import ReferenceStats

    try:
        agent_config = config_from_args(AgentConfig, args)
        ppo_config = config_from_args(PPOConfig, args)
    except ValueError as err:
        raise BadInput("flags", str(err)) from None
    if args.init:
        agent_config = _init_config(args.init)
    weights = _reward_weights(args.reward)
    quiet = bool(getattr(args, "quiet", False))
    last = Path(args.save_dir) / "last.pt"
    resuming = bool(args.resume) and last.is_file()
    if resuming:
        from editorbot.training.ppo import CHECKPOINT_FORMAT
        from editorbot.training.run_state import read_checkpoint

        # the resumed model keeps its columns: whether it reads the context ones is the checkpoint's choice
        try:
            resumed = AgentConfig(**read_checkpoint(last, CHECKPOINT_FORMAT)["agent_config"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BadInput(last, f"cannot read the checkpoint to resume: {err}") from None
        agent_config = dataclasses.replace(agent_config, context=resumed.context, in_dim=resumed.in_dim)
    episodes = load_episodes(args.data_dir, quiet=quiet)
    if agent_config.context:
        episodes = with_context_columns(episodes)
        if args.in_dim is None and not resuming:  # --context alone: the audio columns plus the context ones
            agent_config = dataclasses.replace(agent_config, in_dim=int(episodes[0].features.shape[1]))
    if episodes[0].features.shape[1] != agent_config.in_dim:
        raise BadInput(args.data_dir, f"features have {episodes[0].features.shape[1]} columns, --in-dim is {agent_config.in_dim}")

    reference = None
    ref_dir = Path(args.reference_dir) if args.reference_dir else Path(args.data_dir) / "reference"
    tracks = load_reference_features(ref_dir, quiet=quiet)
    if tracks:
        reference = ReferenceStats.from_features(tracks)
        logger.info("reference reward from %d tracks in %s", len(tracks), ref_dir)

    bc_data = None
    if ppo_config.bc_path:
        if args.bc_keep != "label":
            raise BadInput("--bc-keep", "the --bc-mixed file's walks are made: make it with `editorbot data labels "
                           "--bc-keep`")
        bc_data = BCData.load(ppo_config.bc_path)
    elif args.bc_from_labels or ppo_config.bc_only or ppo_config.bc_epochs:
        if any(e.labels is not None for e in episodes):
            bc_data = bc_examples(episodes, agent_config, quiet=quiet, use_target=args.use_target,
                                  keep_size=bc_keep_size(args.bc_keep))
        else:
            raise BadInput(args.data_dir, "behavioural cloning needs labels/*.json and there are none")

    result = train(
        episodes,
        args.save_dir,
        agent_config=agent_config,
        ppo_config=ppo_config,
        weights=weights,
        reference=reference,
        bc_data=bc_data,
        resume=args.resume,
        init=args.init,
        subprocess=args.subprocess,
        use_target=args.use_target,
        device=args.device,
        quiet=quiet,
    )
    logger.info("trained: %d updates, %d env steps, %d BC epochs; checkpoints in %s",
                result["updates"], result["global_step"], result["bc_epochs"], args.save_dir)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen trainer."""
    return int(args._train(args))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m editorbot.training.train``: same flags and exit codes as ``editorbot train``."""
    return run_trainer_command("editorbot.training.train", add_arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
