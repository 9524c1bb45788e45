"""The ONNX runtime policy: file -> plan, analysis -> plan, observations -> log-probs.

Layered like beat_this's inference API; each layer is usable alone:

- ``plan_file(path, policy)``: decode and analyse a file, decide, return
  the ``EditPlan`` (one call);
- ``plan_analysis(analysis, policy)``: the same from an ``Analysis``;
  ``target_duration_s`` and ``keep`` run the length-constrained search of
  ``export.retime`` over the policy's log-probabilities;
- ``policy_walk(policy, song)``: the action walk (greedy, or sampled
  with a seed), evaluated in whole-song batches;
- ``song_logprobs(policy, song)``: per-beat masked log-probabilities of
  types, sizes and amounts, every cursor window of the song in one or a
  few batched calls;
- ``evaluate(policy, obs, cursors, n_beats)``: observations -> log-probs.

``OnnxPolicy(model_path)`` loads an exported model and its JSON sidecar
(``export.onnx`` writes both) and refuses one made for other features or
an unknown format version. This module imports neither torch nor
``training``: numpy, onnxruntime and ``engine`` only. ``export.onnx.TorchPolicy``
runs a checkpoint eagerly behind the same interface (``PolicyModel``).

Observation layout: the one ``training.env.EditEnv`` produces (the runtime
may not import ``training``, so it builds the same arrays for whole batches
of cursors; tests/export/test_runtime.py checks them equal to the env's,
step by step). A window of ``W`` beats with the cursor at ``W // 2``;
``features (B, W, F)`` raw per-beat features (0 on padding); ``done (B,
W, 26)`` = ``DONE_LAYOUT`` (decided flag, one-hot type of the action that
covered the beat, one-hot amount; zero for beats at or after the cursor);
``position (B, W, P)`` = the first ``P = n_pos_feats`` of
``POSITION_LAYOUT`` (offset from the cursor over ``W // 2``, ``beat / N``,
``(N - beat) / N``, output beats so far over the target, 0 without one,
then the beat's place in its 16-beat phrase as sin and cos; offset and
output ratio on padding too, the rest 0); ``padding_mask (B, W)`` True
outside the song.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.actions import (
    AMOUNT_TABLE,
    N_AMOUNTS,
    N_SIZES,
    N_TYPES,
    SIZE_BEATS,
    TYPES,
    FactoredAction,
    action_masks,
)
from engine.errors import BadInput

log = logging.getLogger(__name__)

#: Sidecar schema and the format versions this runtime reads.
MODEL_SCHEMA = "editorbot.model/1"
MODEL_VERSIONS: tuple[int, ...] = (1,)
#: Graph inputs and outputs of an exported policy, in order.
INPUT_NAMES: tuple[str, ...] = ("features", "done", "position", "padding_mask")
OUTPUT_NAMES: tuple[str, ...] = ("logits", "value", "tempo", "energy", "phrase_boundary")
#: Columns of ``done`` and ``position`` (the Observation layout above).
DONE_LAYOUT: tuple[str, ...] = ("decided",) + tuple(f"type_{k}" for k in range(N_TYPES)) + tuple(
    f"amount_{k}" for k in range(N_AMOUNTS)
)
POSITION_LAYOUT: tuple[str, ...] = ("offset", "progress", "remaining", "output_ratio", "phrase_sin", "phrase_cos")
PHRASE_BEATS = 16
#: The bundled model, used when none is named.
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / "policy.onnx"
#: Windows per onnxruntime call. On the CPU, small batches keep the default
#: model's activations in cache: a 4-minute song ran fastest at 32 (bench/edit.py).
BATCH_SIZE = 32
#: Device choices: "auto" (CUDA when this onnxruntime has it), "cuda" (asked for), "cpu".
DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu")

_CUT, _LOOP, _SPEED = TYPES.index("CUT"), TYPES.index("LOOP"), TYPES.index("SPEED")
_KEEP = TYPES.index("KEEP")
_NEG = -1.0e30


# ----------------------------------------------------------------------------- model spec


@dataclass
class ModelSpec:
    """What the runtime needs to know about a model (from the sidecar or a checkpoint).

    Attributes
    ----------
    name, version, sha256:
        For ``EditPlan.model`` (``version`` is the format version as text
        plus the model's own version when it has one).
    config:
        The ``AgentConfig`` as a dict (``window``, ``in_dim``,
        ``n_done_feats``, ``n_pos_feats``, ...).
    feature_names, feature_hash:
        The per-beat feature columns the model reads and
        ``engine.features.config_hash()`` at export time.
    """

    name: str
    version: str
    sha256: str
    config: dict[str, Any]
    feature_names: list[str]
    feature_hash: str
    done_layout: list[str] = field(default_factory=lambda: list(DONE_LAYOUT))
    position_layout: list[str] = field(default_factory=lambda: list(POSITION_LAYOUT[:4]))

    @property
    def window(self) -> int:
        """Beats per observation window."""
        return int(self.config["window"])

    @property
    def n_pos_feats(self) -> int:
        """Position columns the model reads."""
        return int(self.config["n_pos_feats"])

    def check_compatible(self, where: str) -> None:
        """BadInput (naming ``where``) unless this editorbot's features and layouts match."""
        from engine.features import config_hash, feature_names

        here = config_hash()
        if self.feature_hash != here:
            raise BadInput(
                where,
                f"feature spec hash {self.feature_hash[:12]} does not match this editorbot's "
                f"{here[:12]}: the model was made for other features; re-export or retrain it",
            )
        if list(self.feature_names) != feature_names(stems=len(self.feature_names) > len(feature_names())):
            raise BadInput(where, "its feature names differ from this editorbot's; re-export or retrain it")
        n_pos = len(self.position_layout)
        if list(self.done_layout) != list(DONE_LAYOUT) or list(self.position_layout) != list(POSITION_LAYOUT[:n_pos]):
            raise BadInput(where, "its observation layout (done/position columns) is not the one this runtime builds")
        cfg = self.config
        if (cfg.get("n_done_feats"), cfg.get("n_pos_feats"), cfg.get("in_dim")) != (
            len(DONE_LAYOUT),
            n_pos,
            len(self.feature_names),
        ):
            raise BadInput(where, "its config does not match its observation layout")


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``MODEL.onnx`` -> ``MODEL.json``."""
    return Path(model_path).with_suffix(".json")


def load_model_spec(model_path: str | os.PathLike) -> ModelSpec:
    """Read and check the sidecar of ``model_path`` (and the model file's sha256).

    BadInput naming the model file for: a missing model or sidecar, a
    sidecar that is not JSON or lacks a field, an unknown schema or format
    version, a model file that is not the one the sidecar describes, or a
    feature spec / observation layout this editorbot does not produce.
    """
    path = Path(model_path)
    if not path.is_file():
        raise BadInput(path, "no such model file")
    side = sidecar_path(path)
    if not side.is_file():
        raise BadInput(path, f"its sidecar {side.name} is missing (export-model writes both)")
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(side, f"not a readable JSON sidecar ({err})") from None
    if not isinstance(doc, dict) or doc.get("schema") != MODEL_SCHEMA:
        raise BadInput(path, f"sidecar schema {doc.get('schema') if isinstance(doc, dict) else None!r}, expected {MODEL_SCHEMA!r}")
    version = doc.get("version")
    if version not in MODEL_VERSIONS:
        raise BadInput(path, f"model format version {version!r} is not one this editorbot reads ({', '.join(map(str, MODEL_VERSIONS))})")
    if doc.get("kind") != "policy":
        raise BadInput(path, f"a {doc.get('kind')!r} model, not an edit policy")
    try:
        feats, obs = doc["features"], doc["observation"]
        spec = ModelSpec(
            name=str(doc["name"]),
            version=f"{version}" + (f"+{doc['model_version']}" if doc.get("model_version") else ""),
            sha256=str(doc["sha256"]),
            config=dict(doc["config"]),
            feature_names=list(feats["names"]),
            feature_hash=str(feats["spec_hash"]),
            done_layout=list(obs["done"]),
            position_layout=list(obs["position"]),
        )
        inputs = [i["name"] for i in doc["inputs"]]
        outputs = [o["name"] for o in doc["outputs"]]
    except (KeyError, TypeError) as err:
        raise BadInput(path, f"sidecar field {err} missing or malformed") from None
    if tuple(inputs) != INPUT_NAMES or tuple(outputs) != OUTPUT_NAMES:
        raise BadInput(path, f"graph inputs {inputs} / outputs {outputs} are not {list(INPUT_NAMES)} / {list(OUTPUT_NAMES)}")
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise BadInput(path, "the model file's sha256 differs from its sidecar's (a changed or mismatched file)")
    spec.check_compatible(str(path))
    return spec


# ----------------------------------------------------------------------------- policies


@dataclass
class ObservationArrays:
    """A batch of observations as numpy arrays (shapes in the module docstring)."""

    features: np.ndarray  # (B, W, F) float32
    done: np.ndarray  # (B, W, 26) float32
    position: np.ndarray  # (B, W, P) float32
    padding_mask: np.ndarray  # (B, W) bool

    def rows(self, index: slice | np.ndarray) -> ObservationArrays:
        """Rows ``index`` of the batch."""
        return ObservationArrays(self.features[index], self.done[index], self.position[index], self.padding_mask[index])

    def feeds(self) -> dict[str, np.ndarray]:
        """Graph inputs by name."""
        return {n: getattr(self, n) for n in INPUT_NAMES}


class PolicyModel(Protocol):
    """An edit policy the runtime can run (``OnnxPolicy``, ``export.onnx.TorchPolicy``)."""

    spec: ModelSpec

    def run(self, obs: ObservationArrays) -> dict[str, np.ndarray]:
        """Outputs by ``OUTPUT_NAMES``: ``logits (B, 30)``, ``value (B,)``, ``tempo (B,)``,
        ``energy (B, n_energy_classes)``, ``phrase_boundary (B, W)``; float32."""
        ...


def _cuda_providers(ort: Any) -> list[Any]:
    return [("CUDAExecutionProvider", {}), "CPUExecutionProvider"]


class OnnxPolicy:
    """An exported policy run by onnxruntime.

    Parameters
    ----------
    model_path:
        ``MODEL.onnx`` with ``MODEL.json`` beside it.
    device:
        ``"auto"``: CUDA when this onnxruntime build has it, else CPU;
        ``"cuda"``: CUDA asked for (an error is logged and the CPU runs it
        when it is unavailable); ``"cpu"``.
    threads:
        Intra-op threads (None: onnxruntime's default).

    Attributes
    ----------
    provider:
        The execution provider that runs the model.
    """

    def __init__(self, model_path: str | os.PathLike, *, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        if device not in DEVICES:
            raise BadInput("--device", f"unknown device {device!r} (one of {', '.join(DEVICES)})")
        self.path = str(model_path)
        self.spec = load_model_spec(model_path)
        available = ort.get_available_providers()
        want_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
        if want_cuda and "CUDAExecutionProvider" not in available:
            log.error(
                "CUDA was asked for but this onnxruntime has no CUDAExecutionProvider (available: %s); "
                "running on CPUExecutionProvider. onnxruntime-gpu replaces onnxruntime: make gpu",
                ", ".join(available),
            )
            want_cuda = False
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's own warnings: errors only; ours say what ran
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = _cuda_providers(ort) if want_cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(self.path, options, providers=providers)
        except Exception as err:  # onnxruntime raises its own types for a malformed graph
            raise BadInput(self.path, f"onnxruntime cannot load it: {str(err).splitlines()[0]}") from None
        ran = self.session.get_providers()
        self.provider = ran[0] if ran else "CPUExecutionProvider"
        if want_cuda and self.provider != "CUDAExecutionProvider":
            log.error(
                "CUDAExecutionProvider could not start (CUDA/cuDNN libraries missing?); running on %s",
                self.provider,
            )
        log.info("policy %s (%s) runs on %s", self.spec.name, Path(self.path).name, self.provider)

    def run(self, obs: ObservationArrays) -> dict[str, np.ndarray]:
        """Outputs by name (see ``PolicyModel.run``)."""
        out = self.session.run(list(OUTPUT_NAMES), obs.feeds())
        return dict(zip(OUTPUT_NAMES, out))


def load_policy(model: str | os.PathLike | None = None, *, device: str = "auto") -> OnnxPolicy:
    """``OnnxPolicy`` for ``model``, or the bundled default (BadInput when it is absent)."""
    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise BadInput(
                DEFAULT_MODEL,
                "no model found: the default model has not been trained yet; train one "
                "(editorbot train rl ...) and export it (editorbot export-model best.pt -o MODEL.onnx), "
                "then pass --model MODEL.onnx or --checkpoint best.pt",
            )
        model = DEFAULT_MODEL
    return OnnxPolicy(model, device=device)


# ----------------------------------------------------------------------------- observations


@dataclass
class WalkHistory:
    """Per-beat record of a walk, what the ``done`` and ``position`` columns read.

    Attributes
    ----------
    done:
        ``(N, 26)`` float32 rows (``DONE_LAYOUT``); zero for beats no step covered.
    out_before:
        ``(N + 1,)`` float64: output beats of all beats before each beat.
    """

    done: np.ndarray
    out_before: np.ndarray

    @staticmethod
    def empty(n_beats: int) -> WalkHistory:
        """Nothing decided."""
        return WalkHistory(np.zeros((n_beats, len(DONE_LAYOUT)), np.float32), np.zeros(n_beats + 1))

    @staticmethod
    def of(steps: Sequence[tuple[int, FactoredAction]], n_beats: int) -> WalkHistory:
        """History of ``steps`` (``(cursor, action)`` pairs covering beats in order)."""
        done = np.zeros((n_beats, len(DONE_LAYOUT)), np.float32)
        per_beat = np.ones(n_beats)  # output beats each beat contributes
        for cursor, a in steps:
            b1 = min(cursor + a.beats, n_beats)
            done[cursor:b1, 0] = 1.0
            done[cursor:b1, 1 + a.type_idx] = 1.0
            done[cursor:b1, 1 + N_TYPES + a.amount_idx] = 1.0
            per_beat[cursor:b1] = output_multiplier(a)
        return WalkHistory(done, np.concatenate([[0.0], np.cumsum(per_beat)]))

    @staticmethod
    def keep_all(n_beats: int) -> WalkHistory:
        """The history every cursor sees if everything before it was kept beat by beat."""
        return WalkHistory.of([(b, FactoredAction(_KEEP, 0, 2)) for b in range(n_beats)], n_beats)


def output_multiplier(a: FactoredAction) -> float:
    """Output beats per source beat of an action (CUT 0, LOOP 1 + repeats, SPEED 1 / rate)."""
    if a.type_idx == _CUT:
        return 0.0
    if a.type_idx == _LOOP:
        return 1.0 + AMOUNT_TABLE["LOOP"][a.amount_idx]
    if a.type_idx == _SPEED:
        return 1.0 / AMOUNT_TABLE["SPEED"][a.amount_idx]
    return 1.0


@dataclass
class SongInputs:
    """What the policy reads of a song besides the walk.

    Attributes
    ----------
    features:
        ``(N, F)`` float32 per-beat features.
    phrase_starts:
        Beat indices of phrase starts (the phrase position columns).
    """

    features: np.ndarray
    phrase_starts: np.ndarray

    @staticmethod
    def of(analysis: Any) -> SongInputs:
        """From an ``engine.analysis.Analysis``."""
        return SongInputs(
            np.asarray(analysis.features, dtype=np.float32), np.asarray(analysis.grid.phrase_starts, dtype=np.int64)
        )

    @property
    def n_beats(self) -> int:
        """``N``."""
        return int(self.features.shape[0])

    def static_position(self) -> np.ndarray:
        """``(N, 6)`` float32: the ``POSITION_LAYOUT`` columns that do not depend on the walk."""
        n = self.n_beats
        beats = np.arange(n, dtype=np.float64)
        out = np.zeros((n, len(POSITION_LAYOUT)), np.float32)
        out[:, 1] = beats / n
        out[:, 2] = (n - beats) / n
        starts = np.asarray(self.phrase_starts, dtype=np.int64)
        starts = starts[(starts >= 0) & (starts < n)]
        first = int(starts[0]) if len(starts) else 0
        since = np.where(
            beats >= first,
            beats - np.concatenate([[first], starts])[np.searchsorted(starts, beats, side="right")],
            (beats - first) % PHRASE_BEATS,
        )
        angle = 2 * np.pi * since / PHRASE_BEATS
        out[:, 4] = np.sin(angle)
        out[:, 5] = np.cos(angle)
        return out


def build_observations(
    song: SongInputs,
    cursors: np.ndarray,
    history: WalkHistory,
    *,
    window: int,
    n_pos_feats: int,
    target_beats: float | None = None,
) -> ObservationArrays:
    """Observation windows at ``cursors`` of a song whose walk so far is ``history``.

    Parameters
    ----------
    song:
        Features and phrase starts.
    cursors:
        ``(B,)`` int beat indices.
    history:
        The walk's record; at cursor ``c`` only beats ``< c`` show as done.
    window, n_pos_feats:
        ``W`` and ``P`` of the model's config.
    target_beats:
        Target output length in beats (None: no target, ratio column 0).

    Returns
    -------
    ``ObservationArrays`` with ``B`` rows, equal to what ``training.env``
    shows at those cursors after that history.
    """
    features = song.features
    n = song.n_beats
    cursors = np.asarray(cursors, dtype=np.int64)
    half = window // 2
    offsets = np.arange(window) - half
    idx = cursors[:, None] + offsets[None, :]  # (B, W)
    pad = (idx < 0) | (idx >= n)
    safe = np.clip(idx, 0, n - 1)
    valid = ~pad
    feats = np.where(valid[..., None], features[safe], 0.0).astype(np.float32)
    seen = valid & (idx < cursors[:, None])
    done = np.where(seen[..., None], history.done[safe], 0.0).astype(np.float32)
    static = song.static_position()
    position = np.where(valid[..., None], static[safe], 0.0).astype(np.float32)
    position[..., 0] = offsets / max(half, 1)
    if target_beats:
        position[..., 3] = (history.out_before[np.clip(cursors, 0, n)] / target_beats)[:, None]
    return ObservationArrays(feats, done, np.ascontiguousarray(position[..., :n_pos_feats]), pad)


# ----------------------------------------------------------------------------- log-probs


@dataclass
class SongLogProbs:
    """Masked log-probabilities at cursors of a song.

    Attributes
    ----------
    cursors:
        ``(B,)`` beat indices.
    type, size:
        ``(B, N_TYPES)``, ``(B, N_SIZES)``; ``-inf`` where masked.
    amount:
        ``(B, N_TYPES, N_AMOUNTS)``: amount log-probabilities given each type.
    value:
        ``(B,)`` value estimates.
    """

    cursors: np.ndarray
    type: np.ndarray
    size: np.ndarray
    amount: np.ndarray
    value: np.ndarray


def _log_softmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.where(mask, x.astype(np.float64), _NEG)
    x = x - x.max(axis=-1, keepdims=True)
    out = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return np.where(mask, out, -np.inf)


def cursor_masks(cursors: np.ndarray, n_beats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``engine.actions.action_masks`` at each cursor: ``(B, 20)``, ``(B, 5)``, ``(B, 20, 5)`` bool."""
    masks = [action_masks(int(c), n_beats) for c in cursors]
    return tuple(np.stack([m[k] for m in masks]) for k in range(3))  # type: ignore[return-value]


def evaluate(
    policy: PolicyModel,
    obs: ObservationArrays,
    cursors: np.ndarray,
    n_beats: int,
    *,
    batch_size: int = BATCH_SIZE,
) -> SongLogProbs:
    """Observations -> masked log-probabilities, ``batch_size`` windows per call.

    Masks are ``engine.actions.action_masks`` at each cursor.
    """
    b = len(cursors)
    logits = np.empty((b, N_TYPES + N_SIZES + N_AMOUNTS), np.float32)
    value = np.empty(b, np.float32)
    for start in range(0, b, batch_size):
        out = policy.run(obs.rows(slice(start, start + batch_size)))
        logits[start : start + batch_size] = out["logits"]
        value[start : start + batch_size] = out["value"]
    type_m, size_m, amount_m = cursor_masks(cursors, n_beats)
    lt, ls, la = np.split(logits, [N_TYPES, N_TYPES + N_SIZES], axis=-1)
    return SongLogProbs(
        cursors=np.asarray(cursors),
        type=_log_softmax(lt, type_m),
        size=_log_softmax(ls, size_m),
        amount=_log_softmax(np.broadcast_to(la[:, None, :], (b, N_TYPES, N_AMOUNTS)), amount_m),
        value=value,
    )


def _check_song(policy: PolicyModel, song: SongInputs) -> None:
    want = len(policy.spec.feature_names)
    if song.features.ndim != 2 or song.features.shape[1] != want:
        raise ValueError(f"features must be (n_beats, {want}), got {song.features.shape}")
    if song.n_beats < 1:
        raise ValueError("the song has no beats")


def song_logprobs(
    policy: PolicyModel,
    song: SongInputs,
    *,
    target_beats: float | None = None,
    batch_size: int = BATCH_SIZE,
) -> SongLogProbs:
    """Log-probabilities at every beat of a song, in batched calls.

    Each cursor sees the history "every beat before it kept", the context
    the length-constrained search scores moves in.

    Returns ``SongLogProbs`` with ``B = N`` rows, row ``b`` at cursor ``b``.
    """
    _check_song(policy, song)
    n = song.n_beats
    cursors = np.arange(n)
    spec = policy.spec
    history = WalkHistory.keep_all(n)
    obs = build_observations(song, cursors, history, window=spec.window, n_pos_feats=spec.n_pos_feats, target_beats=target_beats)
    return evaluate(policy, obs, cursors, n, batch_size=batch_size)


# ----------------------------------------------------------------------------- walks


def _choose(logp: np.ndarray, u: float | None) -> int:
    """Argmax (``u`` None) or inverse-CDF sample with uniform ``u`` of a masked log-prob row."""
    if u is None:
        return int(np.argmax(logp))
    p = np.exp(logp - logp.max())
    cdf = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(cdf, u, side="right"), np.flatnonzero(p > 0)[-1]))


def decide(
    lp_type: np.ndarray,
    lp_size: np.ndarray,
    lp_amount: np.ndarray,
    cursor: int,
    n_beats: int,
    *,
    protected: np.ndarray | None = None,
    u: np.ndarray | None = None,
) -> FactoredAction:
    """One step: type, then size, then amount given the type.

    ``lp_*`` are one cursor's masked log-probs (``(20,)``, ``(5,)``,
    ``(20, 5)``). Protected beats allow only KEEP at the cursor and keep any
    other type's span off them (the size is renormalised over what is left;
    BEAT always remains). ``u (3,)`` uniforms sample; None takes the argmax.
    """
    lp_type = lp_type.copy()
    lp_size = lp_size.copy()
    if protected is not None and protected[cursor]:
        keep_only = np.full(N_TYPES, -np.inf)
        keep_only[_KEEP] = 0.0
        lp_type = lp_type + keep_only
    t = _choose(lp_type, None if u is None else float(u[0]))
    if protected is not None and t != _KEEP:
        for s, k in enumerate(SIZE_BEATS):
            if protected[cursor : min(cursor + k, n_beats)].any():
                lp_size[s] = -np.inf
    s = _choose(lp_size, None if u is None else float(u[1]))
    a = _choose(lp_amount[t], None if u is None else float(u[2]))
    return FactoredAction(t, s, a)


@dataclass
class WalkResult:
    """A policy walk and what it cost.

    Attributes
    ----------
    walk:
        Factored actions from beat 0.
    cursors:
        The beat each step starts at.
    rounds:
        Batched evaluation rounds until every step's observation was its own
        history's.
    windows:
        Observation windows evaluated in all.
    """

    walk: list[FactoredAction]
    cursors: list[int]
    rounds: int
    windows: int


def policy_walk(
    policy: PolicyModel,
    song: SongInputs,
    *,
    seed: int | None = None,
    greedy: bool | None = None,
    protected: np.ndarray | None = None,
    batch_size: int = BATCH_SIZE,
    max_round_windows: int = 512,
    initial: SongLogProbs | None = None,
) -> WalkResult:
    """Walk the song with the policy: greedy, or sampled reproducibly from ``seed``.

    The decision at a cursor depends on what was done before it (the
    ``done`` and ``position`` columns), which a batch cannot know in
    advance. The walk is found by fixed-point iteration over batched calls:
    round 0 evaluates every beat with the "all kept" history; each round
    walks the song with the latest log-probs, finds the steps whose window
    was evaluated under a different history than the walk's own, and
    evaluates those (up to ``max_round_windows``) with the walk's history.
    The first such step is exact after its round, so the loop ends, and
    its result is the walk a step-by-step evaluation would take. Sampling
    draws one uniform per (beat, factor) from ``seed``, so a cursor's
    choice depends only on its log-probs.

    Parameters
    ----------
    seed:
        Sample with this seed; None is greedy (the most likely type, then
        size, then amount).
    greedy:
        Force greedy (True) or sampling (False, needs ``seed``).
    protected:
        ``(N,)`` bool beats only KEEP may cover (``--keep``).
    initial:
        Round 0's log-probs when already computed (``song_logprobs``).
    """
    _check_song(policy, song)
    n = song.n_beats
    window, n_pos = policy.spec.window, policy.spec.n_pos_feats
    greedy = seed is None if greedy is None else greedy
    if not greedy and seed is None:
        raise ValueError("sampling needs a seed")
    uniforms = None if greedy else np.random.default_rng(seed).random((n, 3))
    lp0 = initial if initial is not None else song_logprobs(policy, song, batch_size=batch_size)
    # Per cursor: the latest log-probs and the history (done, position) they saw.
    cache_lp = (lp0.type.copy(), lp0.size.copy(), lp0.amount.copy())
    seen0 = build_observations(song, np.arange(n), WalkHistory.keep_all(n), window=window, n_pos_feats=n_pos)
    cache_done = seen0.done.copy()  # (N, W, 26)
    windows, rounds = n, 1
    while True:
        steps: list[tuple[int, FactoredAction]] = []
        stale: list[int] = []
        cursor = 0
        history = WalkHistory.empty(n)
        while cursor < n:
            own = _done_window(history, cursor, window, n)
            if not np.array_equal(own, cache_done[cursor]):
                stale.append(cursor)
            a = decide(
                cache_lp[0][cursor],
                cache_lp[1][cursor],
                cache_lp[2][cursor],
                cursor,
                n,
                protected=protected,
                u=None if uniforms is None else uniforms[cursor],
            )
            steps.append((cursor, a))
            b1 = min(cursor + a.beats, n)
            history.done[cursor:b1, 0] = 1.0
            history.done[cursor:b1, 1 + a.type_idx] = 1.0
            history.done[cursor:b1, 1 + N_TYPES + a.amount_idx] = 1.0
            cursor = b1
        # Every step whose log-probs came from another history is stale. The
        # first one's history is made of exact steps, so evaluating it with
        # the walk's own history makes it exact for good: each round progresses.
        if not stale:
            break
        todo = stale[:max_round_windows]
        hist = WalkHistory.of(steps, n)
        cur = np.asarray(todo)
        obs = build_observations(song, cur, hist, window=window, n_pos_feats=n_pos)
        lp = evaluate(policy, obs, cur, n, batch_size=batch_size)
        cache_lp[0][cur], cache_lp[1][cur], cache_lp[2][cur] = lp.type, lp.size, lp.amount
        cache_done[cur] = obs.done
        windows += len(cur)
        rounds += 1
    log.debug("policy walk: %d steps, %d rounds, %d windows", len(steps), rounds, windows)
    return WalkResult([a for _, a in steps], [c for c, _ in steps], rounds, windows)


def _done_window(history: WalkHistory, cursor: int, window: int, n: int) -> np.ndarray:
    """``(W, 26)``: the ``done`` rows the window at ``cursor`` shows for ``history``."""
    idx = cursor + np.arange(window) - window // 2
    seen = (idx >= 0) & (idx < cursor)
    return np.where(seen[:, None], history.done[np.clip(idx, 0, n - 1)], 0.0).astype(np.float32)


# ----------------------------------------------------------------------------- plans


@dataclass
class Decision:
    """What ``plan_analysis`` decided and how long it took.

    Attributes
    ----------
    plan:
        The ``EditPlan`` (``plan.model`` names the policy).
    walk:
        Its factored actions.
    policy_s:
        Seconds spent running the policy.
    search_s:
        Seconds spent walking/searching over its outputs.
    splice_cost:
        Total ``export.retime.SpliceCost`` of the walk.
    baseline_splice_cost:
        With a target duration: the pure DP retimer's cost for the same
        target (None otherwise).
    rounds:
        Batched evaluation rounds (policy walk), 1 for the search.
    """

    plan: Any
    walk: list[FactoredAction]
    policy_s: float
    search_s: float
    splice_cost: float
    baseline_splice_cost: float | None = None
    rounds: int = 1


def plan_analysis(
    analysis: Any,
    policy: PolicyModel,
    *,
    seed: int | None = None,
    target_duration_s: float | None = None,
    keep: Sequence[tuple[float, float]] = (),
    splice_weight: float = 1.0,
    baseline: bool = True,
    batch_size: int = BATCH_SIZE,
) -> Decision:
    """Analysis -> plan.

    Without a target: the policy walk (greedy, or sampled from ``seed``),
    protected ranges kept. With ``target_duration_s``: the length-constrained
    search over the policy's log-probabilities (``export.retime``), and
    (``baseline``) the pure DP retimer's splice cost for comparison.
    """
    from engine.plan import ModelInfo, beat_spans, plan_from_actions
    from export import retime as rt

    n = analysis.n_beats
    if n < 1:
        raise BadInput(analysis.audio.path, "no beats found: nothing to decide on")
    starts, ends = beat_spans(analysis.grid.beat_times, float(analysis.audio.duration_s), tempo_bpm=float(analysis.grid.tempo_bpm))
    song = SongInputs.of(analysis)
    song.features = song.features[: len(starts)]
    features = song.features
    protected = rt.protected_beats(starts, ends, keep) if keep else None
    splice = rt.SpliceCost(features, analysis.feature_names)
    t0 = time.perf_counter()
    base_cost = None
    if target_duration_s is None:
        lp = song_logprobs(policy, song, batch_size=batch_size)
        t1 = time.perf_counter()
        result = policy_walk(policy, song, seed=seed, protected=protected, batch_size=batch_size, initial=lp)
        t2 = time.perf_counter()
        # rounds after the first are policy time too; split by windows evaluated
        extra = (t2 - t1) * (result.windows - len(starts)) / max(result.windows, 1)
        policy_s, search_s = (t1 - t0) + extra, (t2 - t1) - extra
        walk, rounds = result.walk, result.rounds
        cost = rt.walk_splice_cost(walk, splice)
    else:
        src = float(analysis.audio.duration_s)
        grid_s = float(ends[-1] - starts[0])
        target_beats = rt.target_beats_for(target_duration_s, src - grid_s, grid_s / len(starts))
        lp = song_logprobs(policy, song, target_beats=target_beats, batch_size=batch_size)
        t1 = time.perf_counter()
        res = rt.retime(analysis, target_duration_s, logprobs=lp, keep=keep, splice_weight=splice_weight)
        t2 = time.perf_counter()
        policy_s, search_s = t1 - t0, t2 - t1
        walk, rounds, cost = res.walk, 1, res.splice_cost
        if baseline:
            base_cost = rt.retime(analysis, target_duration_s, keep=keep).splice_cost
    plan = plan_from_actions(analysis, walk)
    spec = policy.spec
    plan.model = ModelInfo(name=spec.name, version=spec.version, sha256=spec.sha256)
    return Decision(plan, walk, policy_s, search_s, cost, base_cost, rounds)


def plan_file(path: str | os.PathLike, policy: PolicyModel, **options: Any) -> Decision:
    """File -> plan: ``engine.analysis.analyze`` then ``plan_analysis`` (same options)."""
    from engine.analysis import analyze

    return plan_analysis(analyze(path), policy, **options)
