"""The ONNX runtime policy: a model file and its sidecar, observations -> log-probs.

Layered like beat_this's inference API; each layer is usable alone (the
walk and the file -> plan call on top of these live in ``export.walk``):

- ``song_logprobs(policy, song)``: per-beat masked log-probabilities of
  types, sizes and amounts, every cursor window of the song in one or a
  few batched calls;
- ``decide(...)``: one step's (type, size, amount), greedy or sampled;
- ``evaluate(policy, obs, cursors, n_beats)``: observations -> log-probs.

``OnnxPolicy(model_path)`` loads an exported model and its JSON sidecar
(``export.onnx`` writes both) and refuses one made for other features or
an unknown format version; ``load_policy`` finds the bundled model (or
``$EDITORBOT_MODEL``). This module imports neither torch nor ``training``:
numpy, onnxruntime and ``engine`` only. ``export.onnx.TorchPolicy`` runs a
checkpoint eagerly behind the same interface (``PolicyModel``).

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
from editorbot.engine.context import CONTEXT_NAMES, reads_context, with_context
from editorbot.engine.errors import BadInput
from editorbot.engine.observation import (
    DONE_LAYOUT,
    POSITION_LAYOUT,
    history_windows,
    mark_done,
    padded_song,
    song_summary,
)
from editorbot.export.retime import TAIL_TYPES

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

_KEEP = TYPES.index("KEEP")
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

    @property
    def reads_context(self) -> bool:
        """Whether the model reads the whole-song context columns (``engine.context``) after its audio columns."""
        return reads_context(self.feature_names)

    @property
    def audio_feature_names(self) -> list[str]:
        """The audio feature columns the model reads (its columns less the context ones)."""
        return list(self.feature_names[: len(self.feature_names) - (len(CONTEXT_NAMES) if self.reads_context else 0)])

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
        audio = self.audio_feature_names
        if audio != feature_names(stems=len(audio) > len(feature_names())):
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
    def of(analysis: Analysis, spec: ModelSpec | None = None) -> SongInputs:
        """From an ``engine.analysis.Analysis``; with the context columns appended when ``spec``'s model
        reads them (``ModelSpec.reads_context``)."""
        features = np.asarray(analysis.features, dtype=np.float32)
        if spec is not None and spec.reads_context:
            features = with_context(features, analysis.feature_names, analysis.grid.downbeats)
        return SongInputs(features, np.asarray(analysis.grid.phrase_starts, dtype=np.int64))

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


def check_song(policy: PolicyModel, song: SongInputs) -> None:
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
    check_song(policy, song)
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
    ring into them (``export.splice.tail_guard``). ``allowed (20, 5, 5)``
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
