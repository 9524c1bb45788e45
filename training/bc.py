"""Behavioural cloning: labelled (observation, action) examples and their loss.

Demonstrations come from labelled songs: ``EditEnv`` is walked with the
label of the beat at the cursor as the action, so every example's
observation is exactly what the policy sees at that cursor after following
the labels so far.

The ``.npz`` format (``BC_FORMAT = "editorbot.bc/2"``), ``N`` examples,
window ``W``, history ``K``, is one array per name:

==================  =================  ==========================================
name                shape / dtype      meaning
==================  =================  ==========================================
format              () str             ``"editorbot.bc/2"``
features            (N, W, F) float32  ``Observation.features``
position            (N, W, P) float32  ``Observation.position``
padding_mask        (N, W) bool        ``Observation.padding_mask`` (True = pad)
summary             (N, F) float32     ``Observation.summary``
done                (N, K, D) float32  ``Observation.done`` (D = 26)
output_ratio        (N,) float32       ``Observation.output_ratio``
mask_type           (N, 20) bool       ``ActionMasks.type``
mask_size           (N, 5) bool        ``ActionMasks.size``
mask_amount         (N, 20, 5) bool    ``ActionMasks.amount``
actions             (N, 3) int64       labelled (type, size, amount)
pair_ids            (N,) int64         index into ``pair_names``
pair_names          (P,) str           names of the pairs (data folder NAMEs)
confidence          (N,) float32       0..1 trust in the label (loss weight;
                                       absent in older files: read as 1)
tempo_bpm           (N,) float32       auxiliary target: song tempo
energy              (N,) int64         auxiliary target: cursor beat energy class
phrase              (N, W) float32     auxiliary target: 1 at phrase starts
label_type          (N, W) int64       auxiliary target: labelled type of each
                                       window beat, -1 where unknown or padded
                                       (absent in older files: read as all -1)
==================  =================  ==========================================

Files are written compressed (the ``done`` and ``padding_mask`` arrays are
mostly zeros) and atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from editorbot.engine.actions import N_AMOUNTS, N_SIZES, N_TYPES
from editorbot.engine.atomic import atomic_path
from editorbot.engine.errors import BadInput

if TYPE_CHECKING:
    import torch

    from editorbot.training.config import AgentConfig
    from editorbot.training.dataset import Episode
    from editorbot.training.models.agent import ActionMasks, Observation

logger = logging.getLogger(__name__)

BC_FORMAT = "editorbot.bc/2"
#: Arrays a ``BC_FORMAT`` file may lack (written before they existed); ``BCData.load`` fills them in.
OPTIONAL_ARRAYS = ("confidence", "label_type")


@dataclass
class BCData:
    """Labelled examples (one per labelled cursor position); fields as the npz table."""

    features: np.ndarray
    position: np.ndarray
    padding_mask: np.ndarray
    summary: np.ndarray
    done: np.ndarray
    output_ratio: np.ndarray
    mask_type: np.ndarray
    mask_size: np.ndarray
    mask_amount: np.ndarray
    actions: np.ndarray
    pair_ids: np.ndarray
    pair_names: np.ndarray
    confidence: np.ndarray
    tempo_bpm: np.ndarray
    energy: np.ndarray
    phrase: np.ndarray
    label_type: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def window(self) -> int:
        """``W``."""
        return int(self.features.shape[1])

    def observation_config(self) -> AgentConfig:
        """An ``AgentConfig`` whose observation (columns, window, history) is this data's.

        What ``EditEnv`` needs to make more examples like these
        (``AgentConfig.observation_only``).
        """
        from editorbot.training.config import AgentConfig

        return AgentConfig.observation_only(
            in_dim=int(self.features.shape[2]),
            n_pos_feats=int(self.position.shape[2]),
            window=self.window,
            history=int(self.done.shape[1]),
        )

    def fitted(self, config: AgentConfig, where: str = "BC data") -> BCData:
        """These examples as a model of ``config`` sees them, then ``check``-ed.

        Data made for a wider window, a longer history or more position
        columns is cropped, which is exact: a window is centred on the
        cursor and its position columns are per beat, ``done`` row ``k`` is
        beat ``cursor - K + k`` and the position columns read are the first
        ones. So one ``data labels`` file serves models of every size.
        BadInput when the data has less than the model reads.
        """
        w, k, p = config.window, config.history, config.n_pos_feats
        if self.window < w or (self.window - w) % 2:
            raise BadInput(where, f"examples have a {self.window}-beat window, the model reads {w} beats; "
                                  f"make the file again with editorbot data labels --window {w}")
        if self.done.shape[1] < k or self.position.shape[2] < p:
            raise BadInput(where, f"examples have {self.done.shape[1]} history beats and {self.position.shape[2]} "
                                  f"position columns, the model reads {k} and {p} (editorbot data labels --history)")
        if config.context and self.features.shape[2] != config.in_dim:
            raise BadInput(where, f"examples have {self.features.shape[2]} feature columns, the model reads "
                                  f"{config.in_dim} (the whole-song context columns after the audio ones); "
                                  "make the file again with editorbot data labels --context")
        lo = (self.window - w) // 2
        cols = slice(lo, lo + w)
        cropped = replace(
            self,
            features=self.features[:, cols],
            position=self.position[:, cols, :p],
            padding_mask=self.padding_mask[:, cols],
            done=self.done[:, self.done.shape[1] - k :],
            phrase=self.phrase[:, cols],
            label_type=self.label_type[:, cols],
        )
        if (self.window, self.done.shape[1], self.position.shape[2]) != (w, k, p):
            logger.info("%s: examples cropped to the model's %d-beat window, %d history beats, %d position columns",
                        where, w, k, p)
        cropped.check(config, where)
        return cropped

    def check(self, config: AgentConfig, where: str = "BC data") -> None:
        """BadInput unless the shapes match ``config`` and each other."""
        n, w = len(self), config.window
        want = {
            "features": (n, w, config.in_dim),
            "position": (n, w, config.n_pos_feats),
            "padding_mask": (n, w),
            "summary": (n, config.in_dim),
            "done": (n, config.history, config.n_done_feats),
            "output_ratio": (n,),
            "mask_type": (n, N_TYPES),
            "mask_size": (n, N_SIZES),
            "mask_amount": (n, N_TYPES, N_AMOUNTS),
            "actions": (n, 3),
            "pair_ids": (n,),
            "confidence": (n,),
            "tempo_bpm": (n,),
            "energy": (n,),
            "phrase": (n, w),
            "label_type": (n, w),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise BadInput(where, f"array {name} has shape {got}, the model expects {shape}")
        if n and (self.actions.min() < 0 or (self.actions.max(0) >= (N_TYPES, N_SIZES, N_AMOUNTS)).any()):
            raise BadInput(where, "action index out of range")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the compressed npz atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, format=np.array(BC_FORMAT), **{f.name: getattr(self, f.name) for f in fields(self)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BCData:
        """Read and check an npz in ``BC_FORMAT``; BadInput naming the file otherwise."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != BC_FORMAT:
                    found = str(z["format"]) if "format" in z else "no format"
                    raise BadInput(str(path), f"not a {BC_FORMAT} file ({found}); make it again with editorbot data labels")
                return cls.from_arrays(z, str(path))
        except (OSError, ValueError) as err:
            raise BadInput(str(path), f"cannot read BC data: {err}") from None

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], where: str = "BC data") -> BCData:
        """The examples of the npz table's arrays (extra arrays ignored), ``OPTIONAL_ARRAYS`` filled in.

        A file written before labels carried a confidence trusts every label
        fully (1); one written before the per-beat label target knows no
        beat's label (-1). BadInput naming ``where`` when another array is missing.
        """
        names = set(arrays)
        missing = [f.name for f in fields(cls) if f.name not in names and f.name not in OPTIONAL_ARRAYS]
        if missing:
            raise BadInput(where, f"missing arrays: {', '.join(missing)}")
        found = {f.name: arrays[f.name] for f in fields(cls) if f.name in names}
        found.setdefault("confidence", np.ones(found["actions"].shape[0], dtype=np.float32))
        found.setdefault("label_type", np.full(found["phrase"].shape, -1, dtype=np.int64))
        return cls(**found)

    def confident(self, min_confidence: float, where: str = "--bc-min-confidence") -> BCData:
        """The examples whose label confidence is at least ``min_confidence`` (all of them at 0).

        Raises
        ------
        BadInput
            none is left.
        """
        if min_confidence <= 0.0:
            return self
        keep = np.flatnonzero(self.confidence >= min_confidence)
        if keep.size == 0:
            raise BadInput(where, f"no demonstration has a label confidence >= {min_confidence:g} (of {len(self)})")
        logger.info("%d of %d demonstrations have a label confidence >= %g: the others are left out",
                    keep.size, len(self), min_confidence)
        return self.subset(keep)

    def type_balanced(self, power: float) -> BCData:
        """These examples with each confidence (the loss weight) times ``share ** -power``.

        ``share`` is the fraction of examples of the example's labelled type;
        the factors are normalised to mean 1 over the examples. ``power`` 0
        returns the data unchanged.
        """
        if power <= 0.0 or len(self) == 0:
            return self
        types = self.actions[:, 0]
        share = np.bincount(types, minlength=N_TYPES)[types] / len(self)
        factor = share ** -power
        return replace(self, confidence=(self.confidence * factor / factor.mean()).astype(np.float32))

    def subset(self, index: np.ndarray) -> BCData:
        """Rows ``index`` (``pair_names`` kept whole)."""
        return BCData(
            **{f.name: getattr(self, f.name) if f.name == "pair_names" else getattr(self, f.name)[index] for f in fields(self)}
        )

    def batch(
        self, index: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
    ) -> tuple[Observation, ActionMasks, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Tensors of rows ``index``.

        Returns
        -------
        ``obs``, ``masks``, actions ``(B, 3)`` int64, confidence ``(B,)``
        float32 and the auxiliary targets ``{"tempo_bpm": (B,), "energy":
        (B,) int64, "phrase": (B, W), "label_type": (B, W) int64}`` (-1: no label).
        """
        import torch

        from editorbot.training.models.agent import OBS_FIELDS, ActionMasks, Observation

        idx = np.asarray(index)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[idx])).to(device)

        obs = Observation(*(t(getattr(self, name)) for name in OBS_FIELDS))
        obs.padding_mask = obs.padding_mask.bool()
        masks = ActionMasks(t(self.mask_type).bool(), t(self.mask_size).bool(), t(self.mask_amount).bool())
        aux = {"tempo_bpm": t(self.tempo_bpm).float(), "energy": t(self.energy).long(), "phrase": t(self.phrase).float(),
               "label_type": t(self.label_type).long()}
        return obs, masks, t(self.actions).long(), t(self.confidence).float(), aux


def bc_examples(
    episodes: list[Episode],
    config: AgentConfig,
    *,
    quiet: bool = False,
    use_target: bool = True,
    keep_size: int | None = None,
) -> BCData:
    """Demonstrations from labelled songs (unlabelled ones are skipped).

    Each song is walked in ``EditEnv`` taking, at each cursor, the label of
    the cursor beat (made legal the way the env does); a beat with an
    unknown label is stepped over as a one-beat KEEP and gives no example.
    ``use_target`` is ``EditEnv``'s: False leaves the ``output_ratio``
    column 0 (a walk without a target length). ``keep_size`` (a size index)
    replaces the size of every KEEP label: a labelled KEEP run lasts until
    the next edit, which may lie beyond the policy's window, so its size is
    a guess the policy cannot learn; with one-beat KEEPs the walk decides
    again at every beat. None keeps the labels' sizes.

    ``label_type`` holds the labelled type of every beat of each example's
    window (the source beats ``cursor - W // 2 ..``, as the observation's),
    -1 where a beat's label is unknown or the window runs past the song.
    """
    from editorbot.engine.progress import progress
    from editorbot.training.env import EditEnv
    from editorbot.training.models.agent import OBS_FIELDS

    labelled = [e for e in episodes if e.labels is not None]
    if not labelled:
        raise ValueError("no labelled songs for behavioural cloning")
    env = EditEnv(labelled, config, use_target=use_target)
    rows: dict[str, list[Any]] = {f.name: [] for f in fields(BCData) if f.name != "pair_names"}
    w, pad = config.window, config.window // 2
    for song, e in enumerate(progress(labelled, desc="BC examples", quiet=quiet)):
        obs, info = env.reset(options={"song": song})
        labels = cast(np.ndarray, e.labels)  # labelled songs only
        # the labelled type of beat b at row b + pad, as EditEnv pads its per-song arrays
        padded_type = np.full(e.n_beats + w, -1, dtype=np.int64)
        n_known = min(e.n_beats, len(labels))
        padded_type[pad : pad + n_known] = labels[:n_known, 0]
        terminated = False
        while not terminated:
            label = labels[env.cursor]
            known = label[0] >= 0
            action = label if known else np.array((0, 0, 2), dtype=np.int64)
            if known and keep_size is not None and action[0] == 0:
                action = np.array((0, keep_size, action[2]), dtype=np.int64)
            if known:
                for k in OBS_FIELDS:
                    rows[k].append(obs[k])
                rows["padding_mask"][-1] = obs["padding_mask"].astype(bool)
                masks = info["action_masks"]
                rows["mask_type"].append(masks["type"])
                rows["mask_size"].append(masks["size"])
                rows["mask_amount"].append(masks["amount"])
                rows["pair_ids"].append(np.int64(song))
                rows["confidence"].append(np.float32(e.confidence))
                rows["tempo_bpm"].append(np.float32(info["aux"]["tempo_bpm"]))
                rows["energy"].append(np.int64(info["aux"]["energy"]))
                rows["phrase"].append(info["aux"]["phrase"])
                rows["label_type"].append(padded_type[env.cursor : env.cursor + w].copy())
            obs, _, terminated, _, step_info = env.step(action)
            if known:
                rows["actions"].append(step_info["applied_action"])
            info = step_info
    data = BCData(**{k: np.stack(v) for k, v in rows.items()}, pair_names=np.array([e.name for e in labelled]))
    logger.info("BC: %d examples from %d labelled songs", len(data), len(labelled))
    return data


def bc_loss(
    logits: torch.Tensor, masks: ActionMasks, actions: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of the three heads on labelled actions.

    Parameters
    ----------
    logits:
        ``(B, 30)`` unmasked policy logits (``EditAgent.policy_logits``).
    masks:
        ``ActionMasks`` ``(B, ...)``; the amount row is the labelled type's.
    actions:
        ``(B, 3)`` int64 labelled (type, size, amount).
    weight:
        ``(B,)`` per-example weight (label confidence), or None.

    Returns
    -------
    ``(loss, accuracy)``: the weighted mean of the summed per-head
    cross-entropies, and ``{"type", "size", "amount"}`` argmax accuracies.
    """
    import torch
    import torch.nn.functional as F

    from editorbot.training.models.agent import ACTION_DIMS, MASK_LOGIT

    logits = logits.float()
    rows = torch.arange(logits.shape[0], device=logits.device)
    amount_row = masks.amount[rows, actions[:, 0]]
    flat_mask = torch.cat([masks.type, masks.size, amount_row], dim=-1)
    heads = torch.split(logits.masked_fill(~flat_mask, MASK_LOGIT), list(ACTION_DIMS), dim=-1)
    ce = cast(torch.Tensor, sum(F.cross_entropy(h, actions[:, k], reduction="none") for k, h in enumerate(heads)))
    if weight is None:
        loss = ce.mean()
    else:
        loss = (ce * weight).sum() / weight.sum().clamp(min=1e-6)
    with torch.no_grad():
        accuracy = {
            name: (h.argmax(-1) == actions[:, k]).float().mean()
            for k, (name, h) in enumerate(zip(("type", "size", "amount"), heads, strict=True))
        }
    return loss, accuracy
