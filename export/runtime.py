"""The ONNX runtime policy: file -> plan, analysis -> plan, observations -> log-probs.

Layered like beat_this's inference API; each layer is usable alone:

- ``plan_file(path, policy)``: decode and analyse a file, decide, return
  the ``EditPlan`` (one call);
- ``plan_analysis(analysis, policy)``: the same from an ``Analysis``;
  ``target_duration_s`` and ``keep`` run the length-constrained search of
  ``export.retime`` over the policy's log-probabilities;
- ``policy_walk(policy, song)``: the action walk (greedy, or sampled
  with a seed), evaluated in whole-song batches, every step under
  ``WalkRules`` (``walk_rules``: the shortest edit ``--min-keep`` allows,
  fades to and from silence);
- ``song_logprobs(policy, song)``: per-beat masked log-probabilities of
  types, sizes and amounts, every cursor window of the song in one or a
  few batched calls;
- ``evaluate(policy, obs, cursors, n_beats)``: observations -> log-probs.

``OnnxPolicy(model_path)`` loads an exported model and its JSON sidecar
(``export.onnx`` writes both) and refuses one made for other features or
an unknown format version. This module imports neither torch nor
``training``: numpy, onnxruntime and ``engine`` only. ``export.onnx.TorchPolicy``
runs a checkpoint eagerly behind the same interface (``PolicyModel``).

Model inputs (layout in ``engine.observation``, shared with
``training.env.EditEnv``): one song, padded with ``W // 2`` beats before
and after it (``W`` the model's window), and after it up to a multiple of
the sidecar's ``length_multiple``: ``features (1, L, F)`` raw
per-beat features, ``position (1, L, P)`` the first ``P`` of
``POSITION_LAYOUT``, ``padding_mask (1, L)`` True outside the song,
``summary (1, F)`` the song's mean features; and ``B`` cursors:
``cursors (B,)`` indices into ``L`` (beat + ``W // 2``), ``done (B, K,
26)`` the ``DONE_LAYOUT`` rows of the ``K`` beats before each cursor under
the walk so far, ``output_ratio (B,)`` output beats so far over the
target (0 without one). The graph encodes the song once and evaluates the
heads at every cursor: its rows equal what the policy computes from
``EditEnv``'s window observations at those cursors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from editorbot.engine.actions import (
    AMOUNT_MASK,
    N_AMOUNTS,
    N_SIZES,
    N_TYPES,
    SIZE_BEATS,
    TYPES,
    FactoredAction,
    output_beats,
)
from editorbot.engine.analysis import Analysis
from editorbot.engine.errors import BadInput, BadRequest
from editorbot.engine.observation import (
    DONE_LAYOUT,
    POSITION_LAYOUT,
    history_windows,
    mark_done,
    padded_song,
    song_summary,
)
from editorbot.engine.plan import EditPlan
from editorbot.export.request import MIN_KEEP
from editorbot.export.retime import TAIL_TYPES, SongSpans

log = logging.getLogger(__name__)

#: Sidecar schema and the format versions this runtime reads.
MODEL_SCHEMA = "editorbot.model/1"
MODEL_VERSIONS: tuple[int, ...] = (2,)
#: Graph inputs and outputs of an exported policy, in order.
INPUT_NAMES: tuple[str, ...] = ("features", "position", "padding_mask", "summary", "cursors", "done", "output_ratio")
OUTPUT_NAMES: tuple[str, ...] = ("logits", "value", "tempo", "energy", "phrase_boundary")
_KIND_NAMES = {"policy": "an edit policy", "supervised": "a supervised edit-sound model"}
#: The bundled model, used when none is named.
#: Package data: models/default in the repository, editorbot/models/default in a wheel.
DEFAULT_MODEL = Path(str(resources.files("editorbot") / "models" / "default" / "policy.onnx"))
#: Environment variable naming a model to use instead of the bundled one (an explicit model still wins).
MODEL_ENV_VAR = "EDITORBOT_MODEL"
#: Device choices: "auto" (CUDA when this onnxruntime has it), "cuda" (asked for), "cpu".
DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu")

_CUT, _LOOP, _SPEED = TYPES.index("CUT"), TYPES.index("LOOP"), TYPES.index("SPEED")
_KEEP = TYPES.index("KEEP")
_SILENCE, _FADE_IN, _FADE_OUT = TYPES.index("SILENCE"), TYPES.index("FADE_IN"), TYPES.index("FADE_OUT")
_TAIL_TYPES = [TYPES.index(t) for t in TAIL_TYPES]
_NEG = -1.0e30
# The distinct rows of AMOUNT_MASK (2) and the one each type uses: amount
# log-probabilities are normalised once per distinct mask, not once per type.
_AMOUNT_PATTERNS, _AMOUNT_PATTERN_OF_TYPE = np.unique(AMOUNT_MASK, axis=0, return_inverse=True)
_AMOUNT_PATTERN_OF_TYPE = _AMOUNT_PATTERN_OF_TYPE.reshape(-1)


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
    length_multiple:
        The padded song's length ``L`` must be a multiple of it (1: any).
    """

    name: str
    version: str
    sha256: str
    config: dict[str, Any]
    feature_names: list[str]
    feature_hash: str
    done_layout: list[str] = field(default_factory=lambda: list(DONE_LAYOUT))
    position_layout: list[str] = field(default_factory=lambda: list(POSITION_LAYOUT))
    length_multiple: int = 1

    @property
    def window(self) -> int:
        """Beats per training observation window (the song is padded by ``window // 2``)."""
        return int(self.config["window"])

    @property
    def history(self) -> int:
        """``K``: beats before the cursor whose done rows the heads read."""
        return int(self.config["history"])

    @property
    def n_pos_feats(self) -> int:
        """Position columns the model reads."""
        return int(self.config["n_pos_feats"])

    def check_compatible(self, where: str) -> None:
        """BadInput (naming ``where``) unless this editorbot's features and layouts match."""
        from editorbot.engine.features import config_hash, feature_names

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
        if not isinstance(cfg.get("window"), int) or not isinstance(cfg.get("history"), int):
            raise BadInput(where, "its config has no window or history")
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


def read_sidecar(model_path: str | os.PathLike, kind: str, versions: tuple[int, ...]) -> dict[str, Any]:
    """The sidecar of ``model_path`` as a dict, checked up to its kind and format version.

    BadInput naming the model file for: a missing model or sidecar, a
    sidecar that is not JSON, an unknown schema, another kind of model
    (``"policy"``, ``"supervised"``) or a format version not in ``versions``.
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
    if doc.get("kind") != kind:
        raise BadInput(path, f"a {doc.get('kind')!r} model, not {_KIND_NAMES.get(kind, kind)}")
    version = doc.get("version")
    if version not in versions:
        raise BadInput(path, f"model format version {version!r} is not one this editorbot reads ({', '.join(map(str, versions))})")
    return doc


def check_file_digest(model_path: str | os.PathLike, sha256: str) -> None:
    """BadInput unless the model file's sha256 is the sidecar's."""
    if sha256_of(model_path) != sha256:
        raise BadInput(model_path, "the model file's sha256 differs from its sidecar's (a changed or mismatched file)")


def load_model_spec(model_path: str | os.PathLike) -> ModelSpec:
    """Read and check the sidecar of ``model_path`` (and the model file's sha256).

    BadInput naming the model file for what ``read_sidecar`` refuses, a
    sidecar that lacks a field, a model file that is not the one the sidecar
    describes, or a feature spec / observation layout this editorbot does
    not produce.
    """
    path = Path(model_path)
    doc = read_sidecar(path, "policy", MODEL_VERSIONS)
    version = doc["version"]
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
            length_multiple=int(obs.get("length_multiple", 1)),
        )
        inputs = [i["name"] for i in doc["inputs"]]
        outputs = [o["name"] for o in doc["outputs"]]
    except (KeyError, TypeError) as err:
        raise BadInput(path, f"sidecar field {err} missing or malformed") from None
    if tuple(inputs) != INPUT_NAMES or tuple(outputs) != OUTPUT_NAMES:
        raise BadInput(path, f"graph inputs {inputs} / outputs {outputs} are not {list(INPUT_NAMES)} / {list(OUTPUT_NAMES)}")
    check_file_digest(path, spec.sha256)
    spec.check_compatible(str(path))
    return spec


# ----------------------------------------------------------------------------- policies


@dataclass
class PolicyInputs:
    """One graph call as numpy arrays (shapes in the module docstring)."""

    features: np.ndarray  # (1, L, F) float32
    position: np.ndarray  # (1, L, P) float32
    padding_mask: np.ndarray  # (1, L) bool
    summary: np.ndarray  # (1, F) float32
    cursors: np.ndarray  # (B,) int64, indices into L
    done: np.ndarray  # (B, K, 26) float32
    output_ratio: np.ndarray  # (B,) float32

    def feeds(self) -> dict[str, np.ndarray]:
        """Graph inputs by name."""
        return {n: getattr(self, n) for n in INPUT_NAMES}


class PolicyModel(Protocol):
    """An edit policy the runtime can run (``OnnxPolicy``, ``export.onnx.TorchPolicy``)."""

    spec: ModelSpec

    def run(self, inputs: PolicyInputs) -> dict[str, np.ndarray]:
        """Outputs by ``OUTPUT_NAMES``: ``logits (B, 30)``, ``value (B,)``, ``tempo (1,)``,
        ``energy (B, n_energy_classes)``, ``phrase_boundary (1, L)``; float32."""
        ...


def _cuda_providers(ort: Any) -> list[Any]:
    return [("CUDAExecutionProvider", {}), "CPUExecutionProvider"]


def open_session(model_path: str, *, device: str = "auto", threads: int | None = None) -> tuple[Any, str]:
    """An onnxruntime session of ``model_path`` and the execution provider that runs it.

    ``device`` as ``DEVICES``: CUDA is tried when asked for (or, with
    ``"auto"``, when this onnxruntime has it); when it is missing or cannot
    start, an error is logged and the CPU runs the model. ``threads``:
    intra-op threads (None: onnxruntime's default). BadInput naming the
    file when onnxruntime cannot load it.
    """
    import onnxruntime as ort

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
        session = ort.InferenceSession(model_path, options, providers=providers)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a malformed graph
        raise BadInput(model_path, f"onnxruntime cannot load it: {str(err).splitlines()[0]}") from None
    ran = session.get_providers()
    provider = ran[0] if ran else "CPUExecutionProvider"
    if want_cuda and provider != "CUDAExecutionProvider":
        log.error("CUDAExecutionProvider could not start (CUDA/cuDNN libraries missing?); running on %s", provider)
    return session, provider


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
        if device not in DEVICES:
            raise BadInput("--device", f"unknown device {device!r} (one of {', '.join(DEVICES)})")
        self.path = str(model_path)
        self.spec = load_model_spec(model_path)
        self.session, self.provider = open_session(self.path, device=device, threads=threads)
        log.info("policy %s (%s) runs on %s", self.spec.name, Path(self.path).name, self.provider)

    def run(self, inputs: PolicyInputs) -> dict[str, np.ndarray]:
        """Outputs by name (see ``PolicyModel.run``)."""
        out = self.session.run(list(OUTPUT_NAMES), inputs.feeds())
        return dict(zip(OUTPUT_NAMES, out))


def load_policy(model: str | os.PathLike | None = None, *, device: str = "auto") -> OnnxPolicy:
    """``OnnxPolicy`` for ``model``; without one, ``$EDITORBOT_MODEL``, else the bundled default.

    An empty ``$EDITORBOT_MODEL`` counts as unset. BadInput when the model
    cannot be used; for the environment's model it names the variable, so
    the message says where the path came from.
    """
    if model is None and os.environ.get(MODEL_ENV_VAR):
        override = os.environ[MODEL_ENV_VAR]
        try:
            return OnnxPolicy(override, device=device)
        except BadInput as err:
            raise BadInput(f"{MODEL_ENV_VAR}={override}", err.problem) from None
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
            mark_done(done, cursor, b1, a.type_idx, a.amount_idx)
            per_beat[cursor:b1] = output_multiplier(a)
        return WalkHistory(done, np.concatenate([[0.0], np.cumsum(per_beat)]))

    @staticmethod
    def keep_all(n_beats: int) -> WalkHistory:
        """The history every cursor sees if everything before it was kept beat by beat."""
        history = WalkHistory.empty(n_beats)
        mark_done(history.done, 0, n_beats, _KEEP, 2)
        history.out_before[:] = np.arange(n_beats + 1)
        return history


def output_multiplier(a: FactoredAction) -> float:
    """Output beats per source beat of an action (CUT 0, LOOP 1 + repeats, SPEED 1 / rate)."""
    return output_beats(a.type_idx, a.amount_idx, 1)


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
    def of(analysis: Analysis) -> SongInputs:
        """From an ``engine.analysis.Analysis``."""
        return SongInputs(
            np.asarray(analysis.features, dtype=np.float32), np.asarray(analysis.grid.phrase_starts, dtype=np.int64)
        )

    @property
    def n_beats(self) -> int:
        """``N``."""
        return int(self.features.shape[0])


def policy_inputs(
    song: SongInputs,
    cursors: np.ndarray,
    history: WalkHistory,
    spec: ModelSpec,
    *,
    target_beats: float | None = None,
) -> PolicyInputs:
    """Graph inputs for ``cursors`` of a song whose walk so far is ``history``.

    Parameters
    ----------
    song:
        Features and phrase starts.
    cursors:
        ``(B,)`` int beat indices.
    history:
        The walk's record; at cursor ``c`` the ``K`` beats before ``c`` show.
    spec:
        The model's window, history and position columns.
    target_beats:
        Target output length in beats (None: no target, ratio 0).

    Returns
    -------
    ``PolicyInputs`` whose rows equal what ``training.env`` shows at those
    cursors after that history.
    """
    n, pad, n_pos = song.n_beats, spec.window // 2, spec.n_pos_feats
    cursors = np.asarray(cursors, dtype=np.int64)
    after = pad + (-(n + 2 * pad)) % spec.length_multiple  # the graph takes whole blocks of beats
    features, position, padding = padded_song(song.features, song.phrase_starts, before=pad, after=after, n_pos_feats=n_pos)
    ratio = history.out_before[np.clip(cursors, 0, n)] / target_beats if target_beats else np.zeros(len(cursors))
    return PolicyInputs(
        features[None],
        position[None],
        padding[None],
        song_summary(song.features)[None],
        cursors + pad,
        history_windows(history.done, cursors, spec.history),
        ratio.astype(np.float32),
    )


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


def cursor_masks(cursors: np.ndarray, n_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """``engine.actions.action_masks`` at each cursor: type ``(B, 20)`` and size ``(B, 5)`` bool
    (the amount mask is ``AMOUNT_MASK`` at every cursor)."""
    cursors = np.asarray(cursors, dtype=np.int64)
    if len(cursors) and (cursors.min() < 0 or cursors.max() >= n_beats):
        raise ValueError(f"cursors outside the song's beats 0..{n_beats - 1}")
    b = len(cursors)
    left = (n_beats - cursors)[:, None]
    size = np.asarray(SIZE_BEATS)[None, :] <= left
    size[:, 0] = True  # BEAT is always allowed (action_masks)
    return np.ones((b, N_TYPES), bool), size


def evaluate(policy: PolicyModel, inputs: PolicyInputs, n_beats: int) -> SongLogProbs:
    """One graph call -> masked log-probabilities at its cursors.

    Masks are ``engine.actions.action_masks`` at each cursor.
    """
    out = policy.run(inputs)
    logits = np.asarray(out["logits"], np.float32)
    b = len(inputs.cursors)
    cursors = inputs.cursors - policy.spec.window // 2
    type_m, size_m = cursor_masks(cursors, n_beats)
    lt, ls, la = np.split(logits, [N_TYPES, N_TYPES + N_SIZES], axis=-1)
    patterns = np.broadcast_to(la[:, None, :], (b, len(_AMOUNT_PATTERNS), N_AMOUNTS))
    return SongLogProbs(
        cursors=cursors,
        type=_log_softmax(lt, type_m),
        size=_log_softmax(ls, size_m),
        amount=_log_softmax(patterns, _AMOUNT_PATTERNS)[:, _AMOUNT_PATTERN_OF_TYPE],
        value=np.asarray(out["value"], np.float32),
    )


def _check_song(policy: PolicyModel, song: SongInputs) -> None:
    want = len(policy.spec.feature_names)
    if song.features.ndim != 2 or song.features.shape[1] != want:
        raise ValueError(f"features must be (n_beats, {want}), got {song.features.shape}")
    if song.n_beats < 1:
        raise ValueError("the song has no beats")


def song_logprobs(policy: PolicyModel, song: SongInputs, *, target_beats: float | None = None) -> SongLogProbs:
    """Log-probabilities at every beat of a song, in one graph call.

    Each cursor sees the history "every beat before it kept", the context
    the length-constrained search scores moves in.

    Returns ``SongLogProbs`` with ``B = N`` rows, row ``b`` at cursor ``b``.
    """
    _check_song(policy, song)
    n = song.n_beats
    inputs = policy_inputs(song, np.arange(n), WalkHistory.keep_all(n), policy.spec, target_beats=target_beats)
    return evaluate(policy, inputs, n)


# ----------------------------------------------------------------------------- walks


def _choose(logp: np.ndarray, u: float | None) -> int:
    """Argmax (``u`` None) or inverse-CDF sample with uniform ``u`` of a masked log-prob row."""
    if u is None or not np.isfinite(logp).any():
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
    no_tail: np.ndarray | None = None,
    u: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> FactoredAction:
    """One step: type, then size, then amount given the type.

    ``lp_*`` are one cursor's masked log-probs (``(20,)``, ``(5,)``,
    ``(20, 5)``). Protected beats allow only KEEP at the cursor and keep any
    other type's span off them (the size is renormalised over what is left;
    BEAT always remains); ``no_tail`` beats allow no effect whose tail would
    ring into them (``export.retime.tail_guard``). ``allowed (20, 5, 5)``
    bool (type, size, amount), from ``WalkRules.allowed``, masks what the
    walk's rules forbid at this step. ``u (3,)`` uniforms sample; None
    takes the argmax.
    """
    lp_type = lp_type.copy()
    lp_size = lp_size.copy()
    lp_amount = lp_amount.copy()
    if allowed is not None:
        lp_type[~allowed.any(axis=(1, 2))] = -np.inf
    if protected is not None and protected[cursor]:
        keep_only = np.full(N_TYPES, -np.inf)
        keep_only[_KEEP] = 0.0
        lp_type = lp_type + keep_only
    if no_tail is not None and no_tail[cursor]:
        lp_type[_TAIL_TYPES] = -np.inf
    t = _choose(lp_type, None if u is None else float(u[0]))
    if protected is not None and t != _KEEP:
        for s, k in enumerate(SIZE_BEATS):
            if protected[cursor : min(cursor + k, n_beats)].any():
                lp_size[s] = -np.inf
    if allowed is not None:
        lp_size[~allowed[t].any(axis=1)] = -np.inf
    s = _choose(lp_size, None if u is None else float(u[1]))
    if allowed is not None:
        lp_amount[t, ~allowed[t, s]] = -np.inf
    a = _choose(lp_amount[t], None if u is None else float(u[2]))
    return FactoredAction(t, s, a)


def _output_factors() -> np.ndarray:
    """``(N_TYPES, N_AMOUNTS)`` output seconds per source second of each (type, amount)
    (``engine.actions.output_beats`` of one beat; 1 where the amount is not the type's, 0 for CUT)."""
    f = np.ones((N_TYPES, N_AMOUNTS))
    for t, a in zip(*np.nonzero(AMOUNT_MASK)):
        f[t, a] = output_beats(int(t), int(a), 1)
    f[_CUT] = 0.0
    return f


_OUTPUT_FACTOR = _output_factors()
#: Types allowed while the output is faded out (after a FADE_OUT, until a FADE_IN).
_WHILE_FADED = np.isin(np.arange(N_TYPES), [_FADE_IN, _CUT, _SILENCE])


@dataclass
class WalkRules:
    """What every step of a policy walk must respect, whatever the policy prefers.

    - Length: the edit lasts at least ``min_out_s`` seconds. A step is
      allowed only if keeping every beat after it (and the tail, unless
      the step ends the walk faded out) still reaches it; KEEP always
      passes when the walk so far did, so the walk can always go on.
    - Fades: after a FADE_OUT only FADE_IN, CUT or SILENCE until a
      FADE_IN (so a fade-out is followed by a fade-in, silence or the end,
      never by a jump back up); a FADE_IN only where the output is silent
      (its start, after a fade-out or a SILENCE), so it rises from silence.
      Protected beats (``--keep``) are exempt: they allow KEEP only.
    - A last beat the song's end clips to under half a beat
      (``sliver_last``) is cut, or kept only after a KEEP (which it then
      extends): on its own it would be a sliver of sound.

    Attributes
    ----------
    beat_s:
        ``(N,)`` seconds of each beat's source span (``engine.plan.beat_spans``
        with ``fold_edges``).
    lead_s, tail_s:
        Source audio before the first span / after the last one, kept as is.
    min_out_s:
        Shortest edit allowed, seconds (0: no length rule).
    sliver_last:
        The last beat lasts under half the median beat.
    """

    beat_s: np.ndarray
    lead_s: float = 0.0
    tail_s: float = 0.0
    min_out_s: float = 0.0
    sliver_last: bool = False

    def __post_init__(self) -> None:
        self.beat_s = np.asarray(self.beat_s, dtype=np.float64)
        self._rest = np.concatenate([np.cumsum(self.beat_s[::-1])[::-1], [0.0]])  # (N + 1,) seconds from beat i on

    @property
    def max_out_s(self) -> float:
        """The longest edit without loops or slow-downs: everything kept."""
        return self.lead_s + float(self._rest[0]) + self.tail_s

    def output_s(self, a: FactoredAction, cursor: int) -> float:
        """Output seconds of step ``a`` at ``cursor``."""
        b1 = min(cursor + a.beats, len(self.beat_s))
        return float(_OUTPUT_FACTOR[a.type_idx, a.amount_idx] * (self._rest[cursor] - self._rest[b1]))

    def allowed(
        self, cursor: int, out_s: float, faded: bool, silent: bool, protected: bool = False, prev_type: int | None = None
    ) -> np.ndarray:
        """``(N_TYPES, N_SIZES, N_AMOUNTS)`` bool: the steps allowed at ``cursor``.

        ``out_s``: output seconds of the steps so far (lead-in included);
        ``faded``: after a FADE_OUT with no FADE_IN since; ``silent``: the
        output so far ends in silence (or is empty); ``prev_type``: the
        type of the step before.
        """
        n = len(self.beat_s)
        b1 = np.minimum(cursor + np.asarray(SIZE_BEATS), n)  # (S,)
        span = self._rest[cursor] - self._rest[b1]  # (S,) seconds
        out = _OUTPUT_FACTOR[:, None, :] * span[None, :, None]  # (T, S, A)
        ends_faded = (np.arange(N_TYPES) == _FADE_OUT) | (faded & _WHILE_FADED & (np.arange(N_TYPES) != _FADE_IN))
        tail = np.where(ends_faded[:, None] & (b1 == n)[None, :], 0.0, self.tail_s)  # (T, S)
        best = out_s + out + self._rest[b1][None, :, None] + tail[:, :, None]
        ok = best >= self.min_out_s - 1e-9
        if not protected:
            types_ok = _WHILE_FADED.copy() if faded else np.ones(N_TYPES, bool)
            types_ok[_FADE_IN] = silent
            ok &= types_ok[:, None, None]
            if self.sliver_last and cursor == n - 1:
                sliver_ok = np.isin(np.arange(N_TYPES), [_CUT] + ([_KEEP] if prev_type == _KEEP else []))
                if (ok & sliver_ok[:, None, None]).any():
                    ok &= sliver_ok[:, None, None]
        return ok


def step_state(a: FactoredAction, faded: bool, silent: bool) -> tuple[bool, bool]:
    """``(faded, silent)`` after step ``a`` (see ``WalkRules.allowed``)."""
    t = a.type_idx
    faded = t == _FADE_OUT or (faded and t in (_CUT, _SILENCE))
    silent = t in (_FADE_OUT, _SILENCE) or (silent and t == _CUT)
    return faded, silent


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
        Graph calls until every step's log-probs were computed under its
        own walk's history.
    evaluated:
        Cursors evaluated in all.
    confidence:
        Per step, the policy's probability of the (type, size, amount) it
        took there, under the walk's own history (``choice_probability``).
    """

    walk: list[FactoredAction]
    cursors: list[int]
    rounds: int
    evaluated: int
    confidence: list[float] = field(default_factory=list)


def policy_walk(
    policy: PolicyModel,
    song: SongInputs,
    *,
    seed: int | None = None,
    greedy: bool | None = None,
    protected: np.ndarray | None = None,
    no_tail: np.ndarray | None = None,
    initial: SongLogProbs | None = None,
    rules: WalkRules | None = None,
) -> WalkResult:
    """Walk the song with the policy: greedy, or sampled reproducibly from ``seed``.

    The decision at a cursor depends on what was done to the ``K`` beats
    before it (the ``done`` input), which one batched call cannot know in
    advance. The walk is found by fixed-point iteration: round 0 evaluates
    every beat with the "all kept" history; each round walks the song with
    the latest log-probs, finds the steps whose log-probs were computed
    under another history than the walk's own, and evaluates all of those
    in one call with the walk's history. The first such step is exact after
    its round, so the loop ends, and its result is the walk a step-by-step
    evaluation would take. Sampling draws one uniform per (beat, factor)
    from ``seed``, so a cursor's choice depends only on its log-probs.

    Parameters
    ----------
    seed:
        Sample with this seed; None is greedy (the most likely type, then
        size, then amount).
    greedy:
        Force greedy (True) or sampling (False, needs ``seed``).
    protected:
        ``(N,)`` bool beats only KEEP may cover (``--keep``).
    no_tail:
        ``(N,)`` bool beats where no reverb or delay may start (their tails
        would reach a protected beat; ``export.retime.tail_guard``).
    initial:
        Round 0's log-probs when already computed (``song_logprobs``).
    rules:
        Length and fade rules every step obeys (``WalkRules``); None: none.
    """
    _check_song(policy, song)
    n, k = song.n_beats, policy.spec.history
    greedy = seed is None if greedy is None else greedy
    if not greedy and seed is None:
        raise ValueError("sampling needs a seed")
    uniforms = None if greedy else np.random.default_rng(seed).random((n, 3))
    lp0 = initial if initial is not None else song_logprobs(policy, song)
    # Per cursor: the latest log-probs and the done rows they saw.
    cache_lp = (lp0.type.copy(), lp0.size.copy(), lp0.amount.copy())
    cache_done = history_windows(WalkHistory.keep_all(n).done, np.arange(n), k)  # (N, K, 26)
    evaluated, rounds = n, 1
    while True:
        steps: list[tuple[int, FactoredAction]] = []
        stale: list[int] = []
        cursor = 0
        history = WalkHistory.empty(n)
        out_s = rules.lead_s if rules is not None else 0.0
        faded, silent = False, rules is None or rules.lead_s == 0.0
        while cursor < n:
            if not np.array_equal(history_windows(history.done, np.array([cursor]), k)[0], cache_done[cursor]):
                stale.append(cursor)
            allowed = None
            if rules is not None:
                allowed = rules.allowed(
                    cursor,
                    out_s,
                    faded,
                    silent,
                    protected is not None and bool(protected[cursor]),
                    steps[-1][1].type_idx if steps else None,
                )
            a = decide(
                cache_lp[0][cursor],
                cache_lp[1][cursor],
                cache_lp[2][cursor],
                cursor,
                n,
                protected=protected,
                no_tail=no_tail,
                u=None if uniforms is None else uniforms[cursor],
                allowed=allowed,
            )
            steps.append((cursor, a))
            b1 = min(cursor + a.beats, n)
            if rules is not None:
                out_s += rules.output_s(a, cursor)
                faded, silent = step_state(a, faded, silent)
            mark_done(history.done, cursor, b1, a.type_idx, a.amount_idx)
            cursor = b1
        # Every step whose log-probs came from another history is stale. The
        # first one's history is made of exact steps, so evaluating it with
        # the walk's own history makes it exact for good: each round progresses.
        if not stale:
            break
        cur = np.asarray(stale)
        inputs = policy_inputs(song, cur, WalkHistory.of(steps, n), policy.spec)
        lp = evaluate(policy, inputs, n)
        cache_lp[0][cur], cache_lp[1][cur], cache_lp[2][cur] = lp.type, lp.size, lp.amount
        cache_done[cur] = inputs.done
        evaluated += len(cur)
        rounds += 1
    log.debug("policy walk: %d steps, %d rounds, %d cursors evaluated", len(steps), rounds, evaluated)
    confidence = [choice_probability(cache_lp[0][c], cache_lp[1][c], cache_lp[2][c], a) for c, a in steps]
    return WalkResult([a for _, a in steps], [c for c, _ in steps], rounds, evaluated, confidence)


def choice_probability(lp_type: np.ndarray, lp_size: np.ndarray, lp_amount: np.ndarray, a: FactoredAction) -> float:
    """The policy's probability (0-1) of choosing ``a`` from one cursor's log-probs
    (``(20,)``, ``(5,)``, ``(20, 5)``): type, size, and amount given the type. The
    policy's own distribution, before the walk's rules or ``--keep`` narrow it."""
    logp = lp_type[a.type_idx] + lp_size[a.size_idx] + lp_amount[a.type_idx, a.amount_idx]
    return float(np.exp(logp)) if np.isfinite(logp) else 0.0


def walk_confidence(lp: SongLogProbs, walk: Sequence[FactoredAction]) -> list[float]:
    """``choice_probability`` of each step of a walk from beat 0 under one set of log-probs
    (every beat's, as ``song_logprobs`` gives them): the length-constrained search's walks."""
    out, cursor = [], 0
    n = len(lp.cursors)
    for a in walk:
        out.append(choice_probability(lp.type[cursor], lp.size[cursor], lp.amount[cursor], a))
        cursor = min(cursor + a.beats, n)
    return out


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
    splice_weight:
        With a target duration: the splice weight the search ended at
        (raised until the walk splices no worse than the pure DP).
    """

    plan: EditPlan
    walk: list[FactoredAction]
    policy_s: float
    search_s: float
    splice_cost: float
    baseline_splice_cost: float | None = None
    rounds: int = 1
    splice_weight: float | None = None


def plan_analysis(
    analysis: Analysis,
    policy: PolicyModel,
    *,
    seed: int | None = None,
    target_duration_s: float | None = None,
    keep: Sequence[tuple[float, float]] = (),
    splice_weight: float = 1.0,
    baseline: bool = True,
    min_keep: float = MIN_KEEP,
) -> Decision:
    """Analysis -> plan.

    Without a target: the policy walk (greedy, or sampled from ``seed``),
    protected ranges kept, under ``WalkRules``: the edit keeps at least
    ``min_keep`` of the source's length (0..1) and its fades go to and
    from silence. With ``target_duration_s``: the length-constrained
    search over the policy's log-probabilities (``export.retime``); with
    ``baseline`` the pure DP retimer runs first and its splice cost is the
    search's budget (``retime(max_splice_cost=)``) and is reported.

    Examples
    --------
    >>> from engine.analysis import analyze
    >>> decision = plan_analysis(analyze("song.wav"), load_policy(), target_duration_s=90.0)  # doctest: +SKIP
    >>> decision.plan.duration_s, decision.splice_cost <= decision.baseline_splice_cost  # doctest: +SKIP
    (89.87, True)
    """
    from editorbot.engine.plan import ModelInfo, plan_from_actions
    from editorbot.export import retime as rt

    n = analysis.n_beats
    if n < 1:
        raise BadInput(analysis.audio.path, "no beats found: nothing to decide on")
    spans = rt.SongSpans.of(analysis)
    starts, ends = spans.starts_s, spans.ends_s
    song = SongInputs.of(analysis)
    song.features = song.features[: len(starts)]
    features = song.features
    protected = rt.protected_beats(starts, ends, keep) if keep else None
    no_tail = rt.tail_guard(starts, ends, protected) if protected is not None else None
    splice = rt.SpliceCost(features, analysis.feature_names)
    t0 = time.perf_counter()
    base_cost, weight_used = None, None
    if target_duration_s is None:
        rules = walk_rules(analysis, min_keep, spans=spans)
        lp = song_logprobs(policy, song)
        t1 = time.perf_counter()
        result = policy_walk(policy, song, seed=seed, protected=protected, no_tail=no_tail, initial=lp, rules=rules)
        t2 = time.perf_counter()
        # rounds after the first are policy time too; split by cursors evaluated
        extra = (t2 - t1) * (result.evaluated - len(starts)) / max(result.evaluated, 1)
        policy_s, search_s = (t1 - t0) + extra, (t2 - t1) - extra
        walk, rounds, confidence = result.walk, result.rounds, result.confidence
        cost = rt.walk_splice_cost(walk, splice)
    else:
        lp = song_logprobs(policy, song, target_beats=spans.target_beats(target_duration_s))
        t1 = time.perf_counter()
        if baseline:  # the pure DP's splice cost is the policy search's budget
            base_cost = rt.retime(analysis, target_duration_s, spans=spans, keep=keep).splice_cost
        res = rt.retime(
            analysis, target_duration_s, spans=spans, logprobs=lp, keep=keep, splice_weight=splice_weight,
            max_splice_cost=base_cost,
        )
        t2 = time.perf_counter()
        policy_s, search_s = t1 - t0, t2 - t1
        walk, rounds, cost = res.walk, 1, res.splice_cost
        weight_used = res.splice_weight
        confidence = walk_confidence(lp, walk)
    plan = plan_from_actions(analysis, walk, confidence=confidence)
    spec = policy.spec
    plan.model = ModelInfo(name=spec.name, version=spec.version, sha256=spec.sha256)
    return Decision(plan, walk, policy_s, search_s, cost, base_cost, rounds, weight_used)


def walk_rules(analysis: Analysis, min_keep: float = MIN_KEEP, *, spans: SongSpans | None = None) -> WalkRules:
    """``WalkRules`` for an analysed song: its beat spans as ``plan_from_actions``
    builds them (``spans``, derived when not given) and the shortest edit
    ``min_keep`` (a share of the source, 0..1) allows. BadRequest naming
    ``min_keep`` outside 0..1 or when no edit keeps that much."""
    if not 0.0 <= min_keep <= 1.0:
        raise BadRequest("min_keep", f"must be a share of the source between 0 and 1, got {min_keep:g}")
    spans = spans or SongSpans.of(analysis)
    src = spans.duration_s
    starts, ends = spans.starts_s, spans.ends_s
    lead = float(starts[0]) if len(starts) else 0.0
    tail = src - float(ends[-1]) if len(ends) else 0.0
    beat_s = ends - starts
    sliver = len(beat_s) >= 2 and beat_s[-1] < 0.5 * float(np.median(beat_s))
    rules = WalkRules(beat_s, lead_s=lead, tail_s=max(tail, 0.0), min_out_s=min_keep * src, sliver_last=bool(sliver))
    if rules.max_out_s < rules.min_out_s - 1e-6:
        raise BadRequest(
            "min_keep",
            f"no edit of the beats of {analysis.audio.path} can keep {min_keep:.0%} of it"
            f" ({rules.max_out_s:.2f} of {src:.2f} s at most); ask for less",
        )
    return rules


def plan_file(path: str | os.PathLike, policy: PolicyModel, **options: Any) -> Decision:
    """File -> plan: ``engine.analysis.analyze`` then ``plan_analysis`` (same options)."""
    from editorbot.engine.analysis import analyze

    return plan_analysis(analyze(path), policy, **options)
