"""``editorbot export-model CHECKPOINT -o MODEL.onnx``: ONNX model + JSON sidecar."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot export-model``."""
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="training checkpoint (best.pt / last.pt) of train rl (a policy) or train supervised")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", help="model file to write; MODEL.json goes beside it")
    p.add_argument("--name", help="model name recorded in the sidecar and in plans (default: the file's stem)")


def run(args: argparse.Namespace) -> int:
    """Export; print the two files written; 0 on success."""
    from editorbot.export.onnx import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.output, name=args.name)
    print(f"wrote {result.onnx_path} (sha256 {result.sha256})")
    print(f"wrote {result.sidecar_path}")
    return 0
