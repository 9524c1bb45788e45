"""torch -> ONNX export of trained models, with a JSON sidecar (DESIGN section 7).

``export_checkpoint(checkpoint, out)`` reads a training checkpoint
(``read_checkpoint``), picks the exporter for the kind of model in it
(``EXPORTERS``: the edit policy and the supervised edit-sound model) and
writes ``MODEL.onnx`` plus ``MODEL.json``.

The policy graph (``PolicyGraph``, ``EditAgent.song_outputs``) encodes one
(padded) song once and returns the policy logits, the separate value
network's estimate and the auxiliary heads at a batch of cursors. It is
traced with the dynamo exporter on the pure-torch attention backend, with
the cursor-batch axis dynamic and the song length any multiple of
``QUERY_BLOCK`` (the sidecar's ``length_multiple``). The sidecar holds the
action vocabulary, the feature names and ``engine.features.config_hash()``,
the model config, the observation layout, the graph's inputs and outputs,
the format version and the .onnx file's sha256; ``export.runtime`` checks
all of it on load.

The supervised graph (``SupervisedGraph``, ``EditSoundModel.forward``) maps
log-mels and frame labels to a gain in dB, batch and frame axes dynamic;
its sidecar records the spectral front end's ``spec_hash`` instead of the
beat features (``export.learned`` runs it).

``load_checkpoint`` / ``TorchPolicy`` run a policy checkpoint eagerly
behind the runtime's ``PolicyModel`` interface (``editorbot edit
--checkpoint``).

Checkpoints are the trainers' (``training.ppo``: format ``editorbot.ppo/1``,
the model config under ``"agent_config"``, the state dict under
``"agent"``; ``training.supervised``: format ``editorbot.supervised/1``
(``training.supervised_checkpoint``), ``"config"``, ``"sample_rate"`` and ``"model"``); the optimiser and rng
states in them are ignored here.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from editorbot.engine.actions import AMOUNT_MASK, AMOUNTS, SIZE_BEATS, SIZES, TYPES
from editorbot.engine.atomic import atomic_path, write_json_atomic
from editorbot.engine.context import CONTEXT_NAMES, context_feature_names
from editorbot.engine.errors import BadInput
from editorbot.engine.features import config_hash, feature_names
from editorbot.engine.observation import DONE_LAYOUT, POSITION_LAYOUT
from editorbot.export.learned import SUPERVISED_INPUTS, SUPERVISED_OUTPUTS, SUPERVISED_VERSIONS
from editorbot.export.runtime import (
    INPUT_NAMES,
    MODEL_SCHEMA,
    MODEL_VERSIONS,
    OUTPUT_NAMES,
    ModelSpec,
    PolicyInputs,
    open_session,
    read_sidecar,
    sha256_of,
    sidecar_path,
)
from editorbot.training.config import AgentConfig, SupervisedConfig
from editorbot.training.models.agent import EditAgent
from editorbot.training.models.encoder import QUERY_BLOCK
from editorbot.training.models.supervised import EditSoundModel
from editorbot.training.run_state import UnsafeCheckpoint, load_weights_only, save_checkpoint

log = logging.getLogger(__name__)

#: Format version written into sidecars (``export.runtime.MODEL_VERSIONS`` reads it).
FORMAT_VERSION = 2
#: Loggers of the exporter's graph passes, quietened while exporting.
EXPORT_LOGGERS: tuple[str, ...] = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._dynamo")
#: Shape the graph is traced at (cursors >= 2 so the batch axis stays symbolic).
TRACE_BATCH = 2
#: Beats of the song the graph is traced with (before padding).
TRACE_BEATS = 24
#: Frames the supervised graph is traced with.
TRACE_FRAMES = 24
#: Numeric checkpoint entries of a policy recorded in its sidecar's ``source``.
POLICY_META: tuple[str, ...] = ("update", "global_step", "best_reward")


class PolicyGraph(nn.Module):
    """The exported policy: ``EditAgent.song_outputs`` as a module.

    ``forward(features (1, L, F), position (1, L, P), padding_mask (1, L)
    bool, summary (1, F), cursors (B,) int64, done (B, K, 26),
    output_ratio (B,))`` returns ``logits (B, 30)`` (unmasked, type | size
    | amount), ``value (B,)``, ``tempo (1,)`` (normalised), ``energy (B,
    n_energy_classes)`` logits at the cursors and ``phrase_boundary (1, L)``
    logits; all float32.
    """

    def __init__(self, agent: EditAgent) -> None:
        super().__init__()
        self.agent = agent

    def forward(
        self,
        features: Tensor,
        position: Tensor,
        padding_mask: Tensor,
        summary: Tensor,
        cursors: Tensor,
        done: Tensor,
        output_ratio: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.agent.song_outputs(features, position, padding_mask, summary, cursors, done, output_ratio)


# ----------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    kind:
        ``"policy"`` (a supervised checkpoint becomes an ``EditSoundModel``
        instead: ``training.supervised_checkpoint.model_from_checkpoint``).
    agent:
        The model in eval mode on the CPU.
    path:
        The checkpoint file.
    meta:
        Other entries worth recording (``step``, ``epoch``, ``name``), plain JSON.
    """

    kind: str
    agent: EditAgent
    path: str
    meta: dict[str, Any]


def _agent_config(raw: dict[str, Any]) -> AgentConfig:
    names = {f.name for f in fields(AgentConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        log.warning("checkpoint config has fields this editorbot does not know (ignored): %s", ", ".join(unknown))
    return AgentConfig(**{k: v for k, v in raw.items() if k in names})


def model_feature_names(cfg: AgentConfig) -> list[str]:
    """The ``cfg.in_dim`` column names a policy reads: the audio columns (with stems when wider than
    the builtin set), then the context columns when ``cfg.context``."""
    audio = cfg.in_dim - (len(CONTEXT_NAMES) if cfg.context else 0)
    names = feature_names(stems=audio > len(feature_names()))
    return context_feature_names(names) if cfg.context else names


def read_checkpoint(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(kind, contents)`` of a trainer checkpoint: kind ``"policy"`` (``training.ppo``) or
    ``"supervised"`` (``training.supervised``); BadInput naming the file on any problem."""
    from editorbot.training.ppo import CHECKPOINT_FORMAT as POLICY_FORMAT
    from editorbot.training.supervised_checkpoint import CHECKPOINT_FORMAT as SUPERVISED_FORMAT

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise BadInput(p, "no such checkpoint file")
    try:
        # weights-only: a checkpoint named by a request must never run code (training.run_state)
        doc = load_weights_only(p)
    except UnsafeCheckpoint:
        raise
    except Exception as err:  # noqa: BLE001 - torch and pickle raise many types for a corrupt or foreign file
        raise BadInput(p, f"not a readable editorbot checkpoint ({str(err).splitlines()[0][:200]})") from None
    kinds = {POLICY_FORMAT: "policy", SUPERVISED_FORMAT: "supervised"}
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt not in kinds:
        raise BadInput(p, f"not a readable editorbot checkpoint (format {fmt!r}, expected one of {', '.join(kinds)})")
    return kinds[fmt], doc


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a policy checkpoint (``training.ppo``); BadInput naming the file on any problem."""
    p = os.fspath(path)
    kind, doc = read_checkpoint(p)
    if kind != "policy":
        raise BadInput(p, f"a {kind} checkpoint, not an edit policy")
    return _policy_checkpoint(p, doc)


def _policy_checkpoint(p: str, doc: dict[str, Any]) -> Checkpoint:
    raw_cfg, state = doc.get("agent_config"), doc.get("agent")
    if not isinstance(raw_cfg, dict) or not isinstance(state, dict):
        raise BadInput(p, "no agent_config or agent weights in it")
    try:
        cfg = _agent_config(raw_cfg)
        agent = EditAgent(cfg)
        agent.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BadInput(p, f"weights do not fit the model config: {str(err).splitlines()[0][:200]}") from None
    agent.eval()
    return Checkpoint("policy", agent, p, _numbers(doc, POLICY_META))


def _spec_for(agent: EditAgent, name: str, sha256: str, version: str) -> ModelSpec:
    cfg = agent.config
    return ModelSpec(
        name=name,
        version=version,
        sha256=sha256,
        config=cfg.to_dict(),
        feature_names=model_feature_names(cfg),
        feature_hash=config_hash(),
        position_layout=list(POSITION_LAYOUT[: cfg.n_pos_feats]),
    )


class TorchPolicy:
    """A checkpoint run eagerly by torch, behind ``export.runtime.PolicyModel``.

    Parameters
    ----------
    checkpoint:
        A ``.pt`` file or a loaded ``Checkpoint``.
    device:
        ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, checkpoint: str | os.PathLike | Checkpoint, *, device: str = "cpu") -> None:
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.device = torch.device(device)
        self.graph = PolicyGraph(ckpt.agent).to(self.device).eval()
        name = Path(ckpt.path).stem
        self.spec = _spec_for(ckpt.agent, name, sha256_of(ckpt.path), f"checkpoint{FORMAT_VERSION}")
        self.spec.check_compatible(ckpt.path)
        log.info("policy %s runs eagerly with torch on %s", ckpt.path, self.device)

    @torch.inference_mode()
    def run(self, inputs: PolicyInputs) -> dict[str, np.ndarray]:
        """Outputs by ``export.runtime.OUTPUT_NAMES`` as float32 numpy arrays."""
        args = [torch.from_numpy(np.ascontiguousarray(getattr(inputs, n))).to(self.device) for n in INPUT_NAMES]
        out = self.graph(*args)
        return {k: v.float().cpu().numpy() for k, v in zip(OUTPUT_NAMES, out)}


# ----------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    """Files written by an export."""

    onnx_path: str
    sidecar_path: str
    sha256: str


def example_inputs(cfg: AgentConfig, batch: int) -> tuple[Tensor, ...]:
    """A padded song of ``TRACE_BEATS`` beats and ``batch`` cursors in it."""
    gen = torch.Generator().manual_seed(0)
    pad = cfg.window // 2
    # whole blocks, at least two (a traced size of 1 would be specialised)
    length = max(2, -(-(TRACE_BEATS + 2 * pad) // QUERY_BLOCK)) * QUERY_BLOCK
    padding = torch.ones(1, length, dtype=torch.bool)
    padding[0, pad : pad + TRACE_BEATS] = False
    return (
        torch.randn(1, length, cfg.in_dim, generator=gen),
        torch.rand(1, length, cfg.n_pos_feats, generator=gen),
        padding,
        torch.randn(1, cfg.in_dim, generator=gen),
        torch.arange(batch, dtype=torch.int64) + pad,
        torch.rand(batch, cfg.history, cfg.n_done_feats, generator=gen),
        torch.rand(batch, generator=gen),
    )


def _tensor_info(name: str, dims: Sequence[str | int], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": dims, "dtype": dtype}


def _sidecar_head(kind: str, version: int, *, name: str, sha256: str, onnx_file: str, source: dict[str, Any]) -> dict[str, Any]:
    """The fields every sidecar starts with: schema, kind, version, file, provenance and the action vocabulary."""
    return {
        "schema": MODEL_SCHEMA,
        "version": version,
        "kind": kind,
        "name": name,
        "file": onnx_file,
        "sha256": sha256,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "exporter": {"torch": torch.__version__, "dynamo": True},
        "source": source,
        "vocabulary": {
            "types": list(TYPES),
            "sizes": list(SIZES),
            "size_beats": list(SIZE_BEATS),
            "amounts": list(AMOUNTS),
            "amount_mask": AMOUNT_MASK.astype(int).tolist(),
        },
    }


def policy_sidecar(agent: EditAgent, *, name: str, sha256: str, onnx_file: str, source: dict[str, Any]) -> dict[str, Any]:
    """The sidecar JSON of an exported policy (what ``export.runtime.load_model_spec`` reads)."""
    cfg = agent.config
    names = model_feature_names(cfg)
    return {
        **_sidecar_head("policy", FORMAT_VERSION, name=name, sha256=sha256, onnx_file=onnx_file, source=source),
        "features": {"names": names, "spec_hash": config_hash()},
        "config": cfg.to_dict(),
        "observation": {
            "window": cfg.window,
            "song_padding": cfg.window // 2,
            "length_multiple": QUERY_BLOCK,
            "history": cfg.history,
            "done": list(DONE_LAYOUT),
            "position": list(POSITION_LAYOUT[: cfg.n_pos_feats]),
        },
        "inputs": [
            _tensor_info("features", [1, "length", cfg.in_dim], "float32"),
            _tensor_info("position", [1, "length", cfg.n_pos_feats], "float32"),
            _tensor_info("padding_mask", [1, "length"], "bool"),
            _tensor_info("summary", [1, cfg.in_dim], "float32"),
            _tensor_info("cursors", ["batch"], "int64"),
            _tensor_info("done", ["batch", cfg.history, cfg.n_done_feats], "float32"),
            _tensor_info("output_ratio", ["batch"], "float32"),
        ],
        "outputs": [
            _tensor_info("logits", ["batch", len(TYPES) + len(SIZES) + len(AMOUNTS)], "float32"),
            _tensor_info("value", ["batch"], "float32"),
            _tensor_info("tempo", [1], "float32"),
            _tensor_info("energy", ["batch", cfg.n_energy_classes], "float32"),
            _tensor_info("phrase_boundary", [1, "length"], "float32"),
        ],
    }


def export_policy(
    agent: EditAgent,
    out_path: str | os.PathLike,
    *,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    trace_batch: int = TRACE_BATCH,
) -> ExportResult:
    """Export ``agent`` to ``out_path`` (.onnx) and its sidecar (.json), atomically.

    Traced on the pure-torch attention backend's blocked path (restored
    afterwards) with ``trace_batch >= 2`` cursors; the cursor axis is dynamic
    and the song-length axis takes any multiple of ``QUERY_BLOCK`` (the
    runtime pads songs to one; the sidecar's ``length_multiple``).
    """
    if trace_batch < 2:
        raise ValueError("trace with a batch of at least 2 so the batch axis stays dynamic")
    out = _check_output(out_path)
    cfg = agent.config
    backends = (agent.policy_encoder.backend, agent.value_encoder.backend)
    for encoder in (agent.policy_encoder, agent.value_encoder):
        encoder.set_backend("torch")
        encoder.set_blocked(True)  # songs are long: O(L * (block + kernel)) attention
    was_training = agent.training
    agent.eval()
    batch = torch.export.Dim("batch", min=1)
    length = QUERY_BLOCK * torch.export.Dim("blocks", min=max(2, -(-cfg.window // QUERY_BLOCK)))
    dynamic = {
        "features": {1: length}, "position": {1: length}, "padding_mask": {1: length}, "summary": None,
        "cursors": {0: batch}, "done": {0: batch}, "output_ratio": {0: batch},
    }
    try:
        digest = _trace(PolicyGraph(agent).eval(), example_inputs(cfg, trace_batch), INPUT_NAMES, OUTPUT_NAMES, dynamic, out)
    finally:
        for encoder, backend in zip((agent.policy_encoder, agent.value_encoder), backends):
            encoder.set_backend(backend)
            encoder.set_blocked(None)
        agent.train(was_training)
    doc = policy_sidecar(agent, name=name or out.stem, sha256=digest, onnx_file=out.name, source=source or {})
    return _write_sidecar(out, doc, digest)


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _write_sidecar(out: Path, doc: dict[str, Any], digest: str) -> ExportResult:
    """Write the sidecar of the model just exported to ``out``, atomically, and say so."""
    side = sidecar_path(out)
    write_json_atomic(side, doc)
    log.info("exported %s (%s, sha256 %s) and %s", out, _size(out), digest[:12], side.name)
    return ExportResult(str(out), str(side), digest)


def _check_output(out_path: str | os.PathLike) -> Path:
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise BadInput(out, "the model file name must end in .onnx (the sidecar goes beside it as .json)")
    if not out.parent.is_dir():
        raise BadInput(out, "its folder does not exist")
    return out


def _trace(
    graph: nn.Module,
    example: tuple[Tensor, ...],
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic: dict[str, Any],
    out: Path,
) -> str:
    """Trace ``graph`` with the dynamo exporter into ``out`` atomically; the file's sha256.

    The exporter's own loggers and warnings are quietened while it runs.
    """
    levels = {logger_name: logging.getLogger(logger_name).level for logger_name in EXPORT_LOGGERS}
    try:
        for logger_name in levels:
            logging.getLogger(logger_name).setLevel(logging.ERROR)
        with atomic_path(out) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    graph,
                    example,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_shapes=dynamic,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            if program is None:  # only the legacy exporter (dynamo=False) returns none
                raise RuntimeError("torch.onnx.export returned no program")
            program.save(tmp, external_data=False)
            return sha256_of(tmp)
    finally:
        for logger_name, level in levels.items():
            logging.getLogger(logger_name).setLevel(level)


# ----------------------------------------------------------------------------- supervised model


class SupervisedGraph(nn.Module):
    """The exported supervised model: ``EditSoundModel.forward`` with the graph's input names."""

    def __init__(self, model: EditSoundModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, base_log_mel: Tensor, raw_log_mel: Tensor, types: Tensor, sizes: Tensor, amounts: Tensor, position: Tensor
    ) -> Tensor:
        return self.model(base_log_mel, raw_log_mel, types, sizes, amounts, position)


def _supervised_example(cfg: SupervisedConfig, batch: int = TRACE_BATCH, frames: int = TRACE_FRAMES) -> tuple[Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    log_mels = [torch.randn(batch, frames, cfg.n_mels, generator=gen) - 5.0 for _ in range(2)]
    labels = [torch.randint(0, len(v), (batch, frames), generator=gen) for v in (TYPES, SIZES, AMOUNTS)]
    return (*log_mels, *labels, torch.rand(batch, frames, generator=gen))


def supervised_sidecar(model: EditSoundModel, *, name: str, sha256: str, onnx_file: str, source: dict[str, Any]) -> dict[str, Any]:
    """The sidecar JSON of an exported supervised model (what ``export.learned.OnnxEditSound`` reads)."""
    cfg, fe = model.cfg, model.frontend
    frames = ["batch", "frames"]
    return {
        **_sidecar_head("supervised", SUPERVISED_VERSIONS[-1], name=name, sha256=sha256, onnx_file=onnx_file, source=source),
        "features": {
            "spec_hash": fe.spec_hash(),
            "sample_rate": fe.sample_rate, "n_fft": fe.n_fft, "hop": fe.hop, "n_mels": cfg.n_mels,
            "log_mel": "natural log of the mel magnitude, frames first",
        },
        "sample_rate": model.sample_rate,
        "config": cfg.to_dict(),
        "timing": model.timing.to_dict(),
        "inputs": [
            _tensor_info("base_log_mel", [*frames, cfg.n_mels], "float32"),
            _tensor_info("raw_log_mel", [*frames, cfg.n_mels], "float32"),
            _tensor_info("types", frames, "int64"),
            _tensor_info("sizes", frames, "int64"),
            _tensor_info("amounts", frames, "int64"),
            _tensor_info("position", frames, "float32"),
        ],
        "outputs": [_tensor_info("gain_db", [*frames, cfg.n_mels], "float32")],
    }


def export_supervised(
    model: EditSoundModel, out_path: str | os.PathLike, *, name: str | None = None, source: dict[str, Any] | None = None
) -> ExportResult:
    """Export the network of ``model`` to ``out_path`` (.onnx) and its sidecar (.json), atomically.

    The batch and frame axes are dynamic (traced at ``TRACE_BATCH`` x
    ``TRACE_FRAMES``); the front end stays outside (``export.learned``).
    """
    out = _check_output(out_path)
    was_training = model.training
    model.eval()
    batch, frames = torch.export.Dim("batch", min=1), torch.export.Dim("frames", min=2)
    dynamic = {n: {0: batch, 1: frames} for n in SUPERVISED_INPUTS}
    try:
        digest = _trace(SupervisedGraph(model).eval(), _supervised_example(model.cfg), SUPERVISED_INPUTS,
                        SUPERVISED_OUTPUTS, dynamic, out)
    finally:
        model.train(was_training)
    doc = supervised_sidecar(model, name=name or out.stem, sha256=digest, onnx_file=out.name, source=source or {})
    return _write_sidecar(out, doc, digest)


# ----------------------------------------------------------------------------- checkpoint files


def _numbers(doc: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The numeric entries ``keys`` of a checkpoint, for a sidecar."""
    return {k: doc[k] for k in keys if isinstance(doc.get(k), (int, float))}


def _source(path: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The sidecar's ``source``: the checkpoint's name and sha256, and ``meta`` (a non-finite number as
    null: a BC-only run's best reward is -inf, and the sidecar is strict JSON)."""
    plain = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in meta.items()}
    return {"checkpoint": os.path.basename(path), "checkpoint_sha256": sha256_of(path), **plain}


def _export_policy_checkpoint(path: str, doc: dict[str, Any], out_path: str | os.PathLike, name: str | None) -> ExportResult:
    ckpt = _policy_checkpoint(path, doc)
    return export_policy(ckpt.agent, out_path, name=name, source=_source(path, ckpt.meta))


def _export_supervised_checkpoint(path: str, doc: dict[str, Any], out_path: str | os.PathLike, name: str | None) -> ExportResult:
    from editorbot.training.supervised_checkpoint import model_from_checkpoint

    try:
        model = model_from_checkpoint(doc)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BadInput(path, f"weights do not fit the model config: {str(err).splitlines()[0][:200]}") from None
    return export_supervised(model, out_path, name=name, source=_source(path, _numbers(doc, ("step", "epoch", "best_epoch"))))


#: Exporter per checkpoint kind (``read_checkpoint``).
EXPORTERS: dict[str, Callable[[str, dict[str, Any], str | os.PathLike, str | None], ExportResult]] = {
    "policy": _export_policy_checkpoint,
    "supervised": _export_supervised_checkpoint,
}


def export_checkpoint(checkpoint: str | os.PathLike, out_path: str | os.PathLike, *, name: str | None = None) -> ExportResult:
    """Checkpoint file (a policy or a supervised model) -> ``MODEL.onnx`` + ``MODEL.json`` (never over the checkpoint)."""
    path = os.fspath(checkpoint)
    kind, doc = read_checkpoint(path)
    for target in (Path(out_path), sidecar_path(out_path)):
        if target.exists() and os.path.samefile(target, path):
            raise BadInput(target, "is the checkpoint itself; choose another output name")
    return EXPORTERS[kind](path, doc, out_path, name)

# ----------------------------------------------------------------------------- back from ONNX
#
# ``editorbot export-model`` writes a policy as ONNX plus its sidecar; the torch
# checkpoint it came from is not shipped (the bundled model has only
# ``models/default/policy.onnx``). Its weights are all in the graph: the exporter
# keeps most parameters as initializers under their module names
# (``agent.<parameter>``), but folds the transpose of a linear layer's weight into
# an anonymous initializer and keeps one copy of equal tensors (a fresh model's
# LayerNorm weights are all ones). The graph runs the modules in the order torch
# ran them, so the k-th linear or LayerNorm call of a forward pass (recorded with
# hooks) is the k-th MatMul/Gemm with a weight initializer or LayerNormalization
# node; its inputs give that module's weights. ``agent_from_onnx`` proves the
# result: the rebuilt agent run by torch and the file run by onnxruntime must give
# the same outputs on the tracing inputs.

#: Largest difference allowed between torch's and onnxruntime's outputs of the rebuilt agent.
MAX_OUTPUT_DIFF = 1e-3


def model_file(path: str | os.PathLike) -> Path:
    """An exported policy: ``path`` itself, or ``path/policy.onnx`` for a model folder (``models/default``)."""
    p = Path(path)
    return p / "policy.onnx" if p.is_dir() else p


def _module_calls(agent: EditAgent) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every linear and LayerNorm call of one forward pass, in call order."""
    names = {m: n for n, m in agent.named_modules()}
    calls: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: calls.append(mod))
             for m in agent.modules() if isinstance(m, (nn.Linear, nn.LayerNorm))]
    try:
        with torch.inference_mode():
            PolicyGraph(agent)(*example_inputs(agent.config, 3))
    finally:
        for h in hooks:
            h.remove()
    return [(names[m], m) for m in calls]


def _graph_weights(graph: Any, agent: EditAgent, where: str) -> dict[str, np.ndarray]:
    """The agent's parameters as the graph holds them (see the section comment)."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    found = {name[len("agent."):]: value for name, value in inits.items() if name.startswith("agent.")}
    nodes = [n for n in graph.graph.node
             if n.op_type == "LayerNormalization" or (n.op_type in ("MatMul", "Gemm") and any(x in inits for x in n.input[1:2]))]
    calls = _module_calls(agent)
    k = 0
    unmatched: list[tuple[str, nn.Module]] = []
    for name, module in calls:
        node = nodes[k] if k < len(nodes) else None
        w = _node_weight(node, inits, module) if node is not None else None
        if w is None:  # the exporter merged this call with an equal one (same weights, same input)
            unmatched.append((name, module))
            continue
        k += 1
        found.setdefault(f"{name}.weight", w)
        if node is not None and len(node.input) > 2 and node.input[2] in inits:
            found.setdefault(f"{name}.bias", inits[node.input[2]])
    if k != len(nodes):
        raise BadInput(where, f"{len(nodes) - k} linear/LayerNorm nodes of the graph match no call of the model")
    for name, module in unmatched:  # equal to a matched module of the same kind: any gives the same output
        twin = next((n for n, m in reversed(calls) if f"{n}.weight" in found and type(m) is type(module)
                     and found[f"{n}.weight"].shape == _weight_shape(module)), None)
        if twin is not None:
            for part in ("weight", "bias"):
                if f"{twin}.{part}" in found:
                    found.setdefault(f"{name}.{part}", found[f"{twin}.{part}"])
    return found


def _node_weight(node: Any, inits: dict[str, np.ndarray], module: nn.Module) -> np.ndarray | None:
    """``module``'s weight as ``node`` holds it (``(out, in)`` for a linear layer), or None if ``node`` is not its kind or shape."""
    from onnx import helper

    is_norm = isinstance(module, nn.LayerNorm)
    if is_norm != (node.op_type == "LayerNormalization") or node.input[1] not in inits:
        return None
    w = inits[node.input[1]]
    if node.op_type == "MatMul":
        w = w.T
    elif node.op_type == "Gemm":
        trans_b = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "transB"), 0)
        w = w if trans_b else w.T
    return w if tuple(w.shape) == _weight_shape(module) else None


def _weight_shape(module: nn.Module) -> tuple[int, ...]:
    """Shape of a linear or LayerNorm module's weight."""
    weight = module.weight
    assert isinstance(weight, Tensor)
    return tuple(weight.shape)


def agent_from_onnx(path: str | os.PathLike) -> EditAgent:
    """The ``EditAgent`` whose export ``path`` is (eval mode, CPU), proven equal to it.

    Raises
    ------
    BadInput
        Not an exported policy, weights that do not fit its config, or a
        rebuilt agent whose outputs differ from the file's by more than
        ``MAX_OUTPUT_DIFF``.
    """
    import onnx

    p = model_file(path)
    doc = read_sidecar(p, "policy", MODEL_VERSIONS)
    try:
        agent = EditAgent(_agent_config(doc["config"])).eval()
        graph = onnx.load(str(p))
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise BadInput(str(p), f"cannot rebuild the policy: {str(err).splitlines()[0][:200]}") from None
    found = _graph_weights(graph, agent, str(p))
    state = agent.state_dict()
    missing = [k for k in state if k not in found]
    if missing:
        raise BadInput(str(p), f"{len(missing)} weights are not in the graph ({', '.join(missing[:3])}, ...)")
    for key in state:
        if tuple(found[key].shape) != tuple(state[key].shape):
            raise BadInput(str(p), f"weight {key}: {tuple(found[key].shape)} in the file, {tuple(state[key].shape)} in the model")
    agent.load_state_dict({k: torch.from_numpy(np.array(found[k])) for k in state})
    diff = _output_diff(agent, p)
    if not diff <= MAX_OUTPUT_DIFF:
        raise BadInput(str(p), f"the rebuilt policy differs from the file by {diff:.3g} (more than {MAX_OUTPUT_DIFF:g})")
    log.info("rebuilt %s: %d weights, outputs equal to %.2g", p, len(state), diff)
    return agent


def _output_diff(agent: EditAgent, model_path: Path) -> float:
    """Largest |torch - onnxruntime| over every output, on the tracing inputs."""
    inputs = example_inputs(agent.config, 3)
    with torch.inference_mode():
        expected = [t.float().numpy() for t in PolicyGraph(agent)(*inputs)]
    session, _ = open_session(str(model_path), device="cpu", threads=1)
    got = session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    return max(float(np.max(np.abs(np.asarray(g, dtype=np.float32) - e))) for g, e in zip(got, expected))


def write_init_checkpoint(agent: EditAgent, out: str | os.PathLike) -> Path:
    """Save ``agent`` as a trainer checkpoint holding weights and config only (``train rl --init``)."""
    from editorbot.training.ppo import CHECKPOINT_FORMAT

    out = Path(out)
    save_checkpoint(out, {"format": CHECKPOINT_FORMAT, "agent": agent.state_dict(), "agent_config": agent.config.to_dict()})
    return out
