"""HTDemucs stem separation from local weights (the optional ``stems`` extra).

Three jobs, kept apart as demucs keeps them:

- Finding and loading state (``resolve_model_dir``, ``find_weights``,
  ``load_model``): weights come from ``--model-dir``, ``$EDITORBOT_DEMUCS_DIR``
  or ``~/.cache/editorbot/demucs``, never from the network. Accepted layouts
  are demucs' own: a local repo (``htdemucs.yaml`` naming signatures, and
  ``SIG-CHECKSUM.th`` or ``SIG.th`` model packages as demucs' ``save_with_checksum``
  writes them), the HuggingFace export (``htdemucs.yaml`` + ``SIG.safetensors``),
  or a single ``.th`` / ``.safetensors`` model file. A ``SIG-CHECKSUM.th``
  file's sha256 must begin with ``CHECKSUM`` (``verify_checksum``; one line
  naming the file when it does not). Packages are read by
  ``demucs.states.load_model`` / ``demucs.hf.load_safetensors_model``; the hub and the legacy
  download repo are never constructed, and ``HF_HUB_OFFLINE=1`` is set so
  nothing reached from here can fall back to a download.
- Applying a model to long audio (``apply_chunked``): overlapping segments of
  the model's training length, each through ``demucs.apply.apply_model``
  (which pads a segment with its real neighbouring audio), overlap-added with
  demucs' triangular weights, with a progress bar.
- The ``Separator`` (``DemucsSeparator``): rate and channel handling around
  the two.

The model code is demucs' own (``demucs.htdemucs.HTDemucs``); torchaudio is
not needed: in demucs 4.1 only its wav, repitch and train modules import it,
and none of them is imported here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_NAMES
from editorbot.engine.progress import progress
from editorbot.engine.separator import Separator, check_mix

log = logging.getLogger(__name__)

ENV_VAR = "EDITORBOT_DEMUCS_DIR"
DEFAULT_MODEL = "htdemucs"
MODEL_SUFFIXES = (".th", ".safetensors")
INSTALL_HINT = 'pip install --no-deps "demucs>=4.1" einops "julius>=0.2.3" pyyaml safetensors (make install does it)'
WEIGHTS_HINT = (
    "put htdemucs.yaml and its model file (955717e8-8726e21a.th, or 955717e8.safetensors from the "
    "HuggingFace export) there, or pass --model-dir / set " + ENV_VAR
)


def default_model_dir() -> str:
    """``~/.cache/editorbot/demucs``."""
    return os.path.join(os.path.expanduser("~"), ".cache", "editorbot", "demucs")


def resolve_model_dir(model_dir: str | os.PathLike | None = None) -> str:
    """``model_dir``, else ``$EDITORBOT_DEMUCS_DIR``, else ``default_model_dir()`` (expanded, not checked)."""
    if model_dir is not None and os.fspath(model_dir):
        return os.path.expanduser(os.fspath(model_dir))
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.expanduser(env)
    return default_model_dir()


def demucs_available() -> bool:
    """Whether the ``demucs`` package (and what its model code imports) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("demucs", "einops", "julius", "yaml"))


def has_weights(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a model file or a folder holding at least one."""
    p = Path(path)
    if p.is_file():
        return p.suffix in MODEL_SUFFIXES
    return p.is_dir() and any(f.suffix in MODEL_SUFFIXES for f in p.iterdir() if f.is_file())


# --------------------------------------------------------------------------- state


@dataclass
class WeightFiles:
    """What ``find_weights`` found: the model files of one model or bag, in order."""

    path: str  # the folder or file that was searched
    name: str  # model name (bag yaml stem, or the file's signature)
    files: list[Path]
    checksums: list[str | None]  # the part after "SIG-" in a .th name, checked before loading
    weights: list[list[float]] | None = None  # per-model, per-source bag weights
    segment: float | None = None  # bag override of the models' segment (seconds)

    def digest(self) -> str:
        """Identity of the weights for cache keys: names, sizes and mtimes of the files (sha256 hex, 16)."""
        h = hashlib.sha256(self.name.encode())
        for f in self.files:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(repr((self.weights, self.segment)).encode())
        return h.hexdigest()[:16]


def _signature(file: Path) -> tuple[str, str | None]:
    """``(signature, checksum)`` from a model file name: ``SIG-CHECKSUM.th`` or ``SIG.th`` / ``SIG.safetensors``."""
    if file.suffix == ".th" and "-" in file.stem:
        sig, checksum = file.stem.rsplit("-", 1)
        return sig, checksum
    return file.stem, None


def find_weights(model_dir: str | os.PathLike, name: str = DEFAULT_MODEL) -> WeightFiles:
    """Locate the model files of ``name`` under ``model_dir`` (or ``model_dir`` itself if it is a file).

    Raises
    ------
    BadInput
        the path is missing, holds no model, names a signature it
        does not hold, or holds several models and no bag yaml to choose.
    """
    root = Path(model_dir)
    if root.is_file():
        if root.suffix not in MODEL_SUFFIXES:
            raise BadInput(root, f"not a demucs model file (expected {' or '.join(MODEL_SUFFIXES)})")
        sig, checksum = _signature(root)
        return WeightFiles(str(root), sig, [root], [checksum])
    if not root.is_dir():
        raise BadInput(root, f"no demucs weights: the folder does not exist; {WEIGHTS_HINT}")
    models: dict[str, Path] = {}
    for f in sorted(root.iterdir()):
        if f.is_file() and f.suffix in MODEL_SUFFIXES:
            sig, _ = _signature(f)
            if sig in models:
                raise BadInput(f, f"two model files for signature {sig} ({models[sig].name}, {f.name}); keep one")
            models[sig] = f
    bag_file = root / f"{name}.yaml"
    if not bag_file.is_file():
        # one bag file under another name (htdemucs_ft.yaml, htdemucs_6s.yaml): that is the model meant
        bags = sorted(f for f in root.iterdir() if f.is_file() and f.suffix == ".yaml")
        if len(bags) == 1:
            bag_file, name = bags[0], bags[0].stem
    if bag_file.is_file():
        import yaml

        try:
            bag = yaml.safe_load(bag_file.read_text())
            signatures = [str(s) for s in bag["models"]]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
            raise BadInput(bag_file, f"not a demucs bag file (a 'models' list of signatures): {err}") from None
        missing = [s for s in signatures if s not in models]
        if missing:
            raise BadInput(
                bag_file,
                f"names model {missing[0]} but {root} has no {missing[0]}-*.th, {missing[0]}.th "
                f"or {missing[0]}.safetensors",
            )
        files = [models[s] for s in signatures]
        segment = bag.get("segment")
        return WeightFiles(
            str(root), name, files, [_signature(f)[1] for f in files], bag.get("weights"),
            float(segment) if segment is not None else None,
        )  # fmt: skip
    if name in models:
        f = models[name]
        return WeightFiles(str(root), name, [f], [_signature(f)[1]])
    if not models:
        raise BadInput(root, f"no demucs weights (no {name}.yaml, .th or .safetensors file); {WEIGHTS_HINT}")
    if len(models) > 1:
        raise BadInput(
            root, f"{len(models)} model files and no {name}.yaml saying which to use ({', '.join(sorted(models))})"
        )
    (sig, f), = models.items()
    return WeightFiles(str(root), sig, [f], [_signature(f)[1]])


def verify_checksum(file: Path, checksum: str) -> None:
    """BadInput (one line naming ``file``) unless the file's sha256 hex digest begins with ``checksum``.

    demucs publishes its weights as ``SIGNATURE-CHECKSUM.th``, ``CHECKSUM``
    being the first 8 hex digits of the file's sha256 (``demucs.states.save_with_checksum``).
    """
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise BadInput(file, f"cannot read the model file: {err.strerror or err}") from None
    actual = digest.hexdigest()[: len(checksum)]
    if actual != checksum.lower():
        raise BadInput(
            file,
            f"checksum mismatch: the name says sha256 {checksum}..., the file's is {actual}...; "
            "it is damaged or incomplete, copy it again",
        )


def load_model(found: WeightFiles):
    """The model (or ``demucs.apply.BagOfModels``) described by ``found``, in eval mode, on the CPU.

    Raises
    ------
    BadInput
        a file fails its checksum or is not a demucs model package.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from demucs.apply import BagOfModels
        from demucs.hf import load_safetensors_model
        from demucs.repo import ModelLoadingError
        from demucs.states import load_model as load_package
    except ImportError as err:
        raise BadInput(None, f"demucs separation needs the stems extra ({err}); {INSTALL_HINT}") from None

    models = []
    for file, checksum in zip(found.files, found.checksums):
        if checksum:
            verify_checksum(file, checksum)
        try:
            if file.suffix == ".safetensors":
                model = load_safetensors_model(file)
            else:
                model = load_package(str(file))
        except ModelLoadingError as err:
            raise BadInput(file, str(err)) from None
        except (KeyError, ValueError, RuntimeError, OSError, EOFError, AttributeError) as err:
            problem = " ".join(str(err).split())[:300]
            raise BadInput(file, f"not a loadable demucs model package ({type(err).__name__}: {problem})") from None
        missing = [s for s in ("drums", "bass", "vocals") if s not in getattr(model, "sources", ())]
        if missing:
            raise BadInput(file, f"model separates {list(getattr(model, 'sources', []))}; it needs drums, bass, vocals")
        models.append(model)
    if len(models) == 1 and found.weights is None and found.segment is None:
        model = models[0]
    else:
        model = BagOfModels(models, found.weights, found.segment)
    model.eval()
    return model


# --------------------------------------------------------------------------- applying to long audio


def model_segment_s(model) -> float:
    """Longest segment (seconds) the model (or every model of a bag) was trained on."""
    from demucs.apply import BagOfModels

    if isinstance(model, BagOfModels):
        segment = model.max_allowed_segment
        if not np.isfinite(segment):
            segment = min(float(getattr(m, "segment", 8.0)) for m in model.models)
        return float(segment)
    return float(getattr(model, "segment", 8.0))


def apply_chunked(
    model,
    mix,
    *,
    overlap: float = 0.25,
    segment_s: float | None = None,
    device: str | None = None,
    quiet: bool = True,
    desc: str = "demucs",
):
    """Run ``model`` over ``mix`` in overlapping segments, as demucs' split mode does.

    Each segment of ``segment_s`` (default: the model's training segment) goes
    through ``demucs.apply.apply_model(..., split=False)``, which pads it with the
    real audio around it; outputs are overlap-added with triangular weights
    (highest mid-segment) and normalised by the summed weight.

    Parameters
    ----------
    model : torch.nn.Module
        an HTDemucs/HDemucs/Demucs or a BagOfModels.
    mix : torch.Tensor
        ``(batch, channels, n_samples)`` float tensor at ``model.samplerate``.
    overlap : float
        fraction of a segment shared with the next (0 <= overlap < 1).
    segment_s : float | None
        segment length (seconds); default the model's training segment.
    device : str | None
        where the model runs (``"cuda"``, ...); default the CPU. The
        song and the result stay on the CPU.
    quiet : bool
        no progress bar.
    desc : str
        the progress bar's label.

    Returns
    -------
    torch.Tensor
        ``(batch, n_sources, channels, n_samples)`` tensor, sources in ``model.sources`` order.
    """
    import torch
    from demucs.apply import TensorChunk, apply_model

    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    batch, channels, length = mix.shape
    segment = int(model.samplerate * (segment_s if segment_s is not None else model_segment_s(model)))
    stride = max(1, int((1.0 - overlap) * segment))
    offsets = list(range(0, length, stride))
    # the last segment already reaching the end makes the ones after it redundant
    while len(offsets) > 1 and offsets[-2] + segment >= length:
        offsets.pop()
    weight = torch.cat([torch.arange(1, segment // 2 + 1), torch.arange(segment - segment // 2, 0, -1)]).float()
    weight /= weight.max()
    out = torch.zeros(batch, len(model.sources), channels, length)
    total = torch.zeros(length)
    with torch.no_grad():
        for offset in progress(offsets, desc=desc, quiet=quiet):
            chunk = TensorChunk(mix, offset, segment)
            estimate = apply_model(model, chunk, shifts=0, split=False, progress=False, device=device).cpu()
            n = estimate.shape[-1]
            out[..., offset : offset + n] += weight[:n] * estimate
            total[offset : offset + n] += weight[:n]
    return out / total.clamp_min(1e-8)


# --------------------------------------------------------------------------- separator


@dataclass
class DemucsSeparator(Separator):
    """HTDemucs (or any demucs model package) loaded from local weights.

    Mono input is separated as two identical channels and averaged back;
    more than two channels are separated in pairs (0-1, 2-3, ...; an odd last
    channel as mono). Input at another rate is resampled to the model's
    (soxr) and the stems back to the input's. Stems are denormalised by the
    mix's mean and standard deviation, as ``demucs.separate`` does. Sources
    beyond the four (``htdemucs_6s``: guitar, piano) are added to ``other``.

    Parameters
    ----------
    model_dir : str | os.PathLike | None
        folder or model file (see ``find_weights``); default as
        ``resolve_model_dir``.
    model_name : str
        the bag to load from a folder (``htdemucs.yaml``).
    overlap : float
        segment overlap for ``apply_chunked``.
    segment_s : float | None
        segment length override (seconds; default the model's).
    device : str | None
        torch device the model runs on (default the CPU).
    quiet : bool
        no progress bar.
    model : Any
        an already-loaded demucs model or ``BagOfModels`` instead of loading
        one (tests, benchmarks).
    """

    model_dir: str | os.PathLike | None = None
    model_name: str = DEFAULT_MODEL
    overlap: float = 0.25
    segment_s: float | None = None
    device: str | None = None
    quiet: bool = True
    model: Any = field(default=None, repr=False)  # a demucs model or BagOfModels (the optional extra)
    note: str | None = None
    weights: WeightFiles | None = field(default=None, init=False)

    kind = "demucs"

    def __post_init__(self) -> None:
        if self.model is None:
            if not demucs_available():
                raise BadInput(None, f"--separator demucs needs the stems extra; {INSTALL_HINT}")
            self.weights = find_weights(resolve_model_dir(self.model_dir), self.model_name)
            self.model = load_model(self.weights)
            log.info("demucs %s loaded from %s", self.weights.name, self.weights.path)

    @property
    def name(self) -> str:  # type: ignore[override]
        label = self.weights.name if self.weights is not None else type(self.model).__name__
        return f"demucs {label}"

    @property
    def cache_id(self) -> str:
        if self.weights is not None:
            ident = self.weights.digest()
        else:  # an in-memory model: its parameters are its identity
            h = hashlib.sha256()
            for p in self.model.state_dict().values():
                h.update(p.detach().cpu().numpy().tobytes())
            ident = h.hexdigest()[:16]
        return f"demucs:{ident}:{self.overlap}:{self.segment_s}"

    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        import torch

        x = check_mix(samples)
        n_channels, n_samples = x.shape
        model_sr = int(self.model.samplerate)
        work = _resample(x, sample_rate, model_sr)
        groups = [list(range(c, min(c + 2, n_channels))) for c in range(0, n_channels, 2)]
        stems = {name: np.zeros((n_channels, work.shape[1]), dtype=np.float32) for name in STEM_NAMES}
        sources = list(self.model.sources)
        for group in groups:
            pair = work[group] if len(group) == 2 else np.repeat(work[group], 2, axis=0)
            mix = torch.from_numpy(np.ascontiguousarray(pair))
            reference = mix.mean(0)
            mean, std = reference.mean(), reference.std().clamp_min(1e-8)
            normalised = ((mix - mean) / std)[None]
            desc = "separating (demucs)"
            if len(groups) > 1:
                desc += f" ch {group[0] + 1}-{group[-1] + 1}"
            estimate = apply_chunked(
                self.model,
                normalised,
                overlap=self.overlap,
                segment_s=self.segment_s,
                device=self.device,
                quiet=self.quiet,
                desc=desc,
            )[0]
            estimate = (estimate * std + mean).numpy()  # (n_sources, 2, n)
            for k, source in enumerate(sources):
                target = source if source in STEM_NAMES else "other"
                part = estimate[k] if len(group) == 2 else estimate[k].mean(axis=0, keepdims=True)
                stems[target][group] += part
        return {name: _resample(stem, model_sr, sample_rate, length=n_samples) for name, stem in stems.items()}


def _resample(x: np.ndarray, from_sr: int, to_sr: int, *, length: int | None = None) -> np.ndarray:
    """``(n_channels, n)`` float32 resampled with soxr (HQ); trimmed or zero-padded to ``length``."""
    if int(from_sr) != int(to_sr):
        import soxr

        x = soxr.resample(np.ascontiguousarray(x.T), int(from_sr), int(to_sr), quality="HQ").T
    x = np.ascontiguousarray(x, dtype=np.float32)
    if length is not None and x.shape[1] != length:
        x = x[:, :length] if x.shape[1] > length else np.pad(x, ((0, 0), (0, length - x.shape[1])))
    return x
