"""export.onnx / export.learned: the supervised edit-sound model exported by
``editorbot export-model`` agrees with torch at two frame counts and batch
sizes, renders what the checkpoint renders (``editorbot render --renderer
learned --model``), and a changed file, another front end or the wrong kind
of model is refused with one line."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from editorbot.bridge.cli import main
from editorbot.engine.actions import AMOUNTS, SIZES, TYPES
from editorbot.engine.audio import load_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import save_plan
from editorbot.export.learned import SUPERVISED_INPUTS, SUPERVISED_OUTPUTS, OnnxEditSound
from editorbot.export.onnx import load_checkpoint
from editorbot.export.runtime import MODEL_SCHEMA, OnnxPolicy, sha256_of
from editorbot.training.config import SupervisedConfig
from editorbot.training.data.pairs import load_pair_plan, make_synth_pair
from editorbot.training.learned_render import render_learned
from editorbot.training.models.supervised import EditSoundModel
from editorbot.training.models.timing import TimingModel
from editorbot.training.supervised_checkpoint import CHECKPOINT_FORMAT, load_model
from tests.export import scratch, tiny_model

logger = logging.getLogger(__name__)

TINY = SupervisedConfig(encoder_dim=32, decoder_dim=32, n_layers=1, n_heads=2, ff_mult=2, dropout=0.0, n_mels=48)
#: A learned timing that retimes and levels (a drift of -6 ms per second, peaks at -1 dBFS).
TIMING = TimingModel(weights=[-0.006, 0.0, 0.001, 0.002], level_rule="peak", level_db=-1.0, fit={"pairs": 3})


def _tiny_sound_model() -> EditSoundModel:
    """Random weights with a non-zero gain head (a fresh model predicts exactly 0 dB)."""
    torch.manual_seed(3)
    model = EditSoundModel(TINY, 44100)
    torch.nn.init.normal_(model.decoder.head.weight, std=0.05)
    torch.nn.init.normal_(model.decoder.head.bias, std=0.3)
    return model.eval()


@functools.cache
def _exported() -> tuple[Path, Path]:
    """``(model.onnx, checkpoint.pt)``: a supervised checkpoint exported with ``editorbot export-model``."""
    folder = scratch("learned")
    ckpt = folder / "best.pt"
    model = _tiny_sound_model()
    torch.save({"format": CHECKPOINT_FORMAT, "config": TINY.to_dict(), "sample_rate": 44100,
                "model": model.state_dict(), "timing": TIMING.to_dict(), "step": 7, "epoch": 2}, ckpt)
    out = folder / "sound.onnx"
    assert main(["export-model", str(ckpt), "-o", str(out), "--quiet"]) == 0
    return out, ckpt


def _inputs(batch: int, frames: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    log_mels = [torch.randn(batch, frames, TINY.n_mels, generator=gen) * 2 - 5 for _ in range(2)]
    labels = [torch.randint(0, len(v), (batch, frames), generator=gen) for v in (TYPES, SIZES, AMOUNTS)]
    return (*log_mels, *labels, torch.rand(batch, frames, generator=gen))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("frames", [37, 300])
def test_onnx_matches_torch(batch: int, frames: int) -> None:
    model_path, _ = _exported()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    args = _inputs(batch, frames, seed=batch * 100 + frames)
    got = session.run(list(SUPERVISED_OUTPUTS), {n: a.numpy() for n, a in zip(SUPERVISED_INPUTS, args)})[0]
    with torch.no_grad():
        want = _tiny_sound_model()(*args).numpy()
    assert got.shape == (batch, frames, TINY.n_mels)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert np.ptp(want) > 1.0  # the gains really vary, so agreement is not trivial


def test_sidecar_describes_the_model() -> None:
    model_path, ckpt = _exported()
    doc = json.loads(model_path.with_suffix(".json").read_text())
    assert doc["schema"] == MODEL_SCHEMA and doc["kind"] == "supervised" and doc["version"] == 2
    assert TimingModel.from_dict(doc["timing"]) == TIMING
    assert doc["sha256"] == sha256_of(model_path) and doc["file"] == "sound.onnx" and doc["name"] == "sound"
    assert doc["vocabulary"]["types"] == list(TYPES)
    assert doc["config"] == TINY.to_dict() and doc["sample_rate"] == 44100
    assert doc["features"]["spec_hash"] == EditSoundModel(TINY, 44100).frontend.spec_hash()
    assert (doc["features"]["n_fft"], doc["features"]["hop"], doc["features"]["n_mels"]) == (2048, 512, 48)
    assert [i["name"] for i in doc["inputs"]] == list(SUPERVISED_INPUTS)
    assert doc["source"] == {"checkpoint": ckpt.name, "checkpoint_sha256": sha256_of(ckpt), "step": 7, "epoch": 2}
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    assert all(isinstance(i.shape[0], str) and isinstance(i.shape[1], str) for i in session.get_inputs())


def test_front_end_hash_follows_the_front_end() -> None:
    base = EditSoundModel(TINY, 44100).frontend.spec_hash()
    assert EditSoundModel(TINY, 48000).frontend.spec_hash() != base
    assert EditSoundModel(SupervisedConfig(**{**TINY.to_dict(), "n_mels": 64}), 44100).frontend.spec_hash() != base


def test_onnx_render_equals_the_checkpoint_render(tmp_path: Path) -> None:
    model_path, ckpt = _exported()
    rec = make_synth_pair(31, "fx_heavy", tmp_path / "pair", duration_s=6.0)
    plan = load_pair_plan(rec.label_path)
    raw = load_audio(plan.source.path)
    torch_model = load_model(ckpt)
    assert torch_model.timing == TIMING
    want = render_learned(plan, raw.samples, raw.sample_rate, torch_model)
    got = render_learned(plan, raw.samples, raw.sample_rate, OnnxEditSound(model_path))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    torch_model.timing = TimingModel()
    untimed = render_learned(plan, raw.samples, raw.sample_rate, torch_model)
    assert np.abs(untimed - want).max() > 0.01  # the timing is part of what both render
    # and through the command line
    plan_path = tmp_path / "edit.plan.json"
    save_plan(plan, plan_path)
    outs = {}
    for flag, path in (("--checkpoint", ckpt), ("--model", model_path)):
        outs[flag] = tmp_path / f"out{flag}.wav"
        assert main(["render", str(plan_path), "-o", str(outs[flag]), "--renderer", "learned", flag, str(path), "-q"]) == 0
    a, b = (load_audio(p).samples for p in outs.values())
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def _copy(name: str, edit=None, touch: bool = False) -> Path:
    model_path, _ = _exported()
    folder = scratch(name)
    out = folder / "m.onnx"
    out.write_bytes(model_path.read_bytes() + (b"\0" if touch else b""))
    doc = json.loads(model_path.with_suffix(".json").read_text())
    if edit:
        edit(doc)
    out.with_suffix(".json").write_text(json.dumps(doc))
    return out


def test_bad_models_are_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(BadInput, match="sha256 differs"):
        OnnxEditSound(_copy("touched", touch=True))
    with pytest.raises(BadInput, match="front-end spec hash 000000000000 does not match"):
        OnnxEditSound(_copy("hash", lambda d: d["features"].update(spec_hash="0" * 64)))
    with pytest.raises(BadInput, match="format version 9"):
        OnnxEditSound(_copy("version", lambda d: d.update(version=9)))
    policy, _ = tiny_model()
    with pytest.raises(BadInput, match="a 'policy' model, not a supervised edit-sound model"):
        OnnxEditSound(policy)
    with pytest.raises(BadInput, match="a 'supervised' model, not an edit policy"):
        OnnxPolicy(_exported()[0])
    with pytest.raises(BadInput, match="a supervised checkpoint, not an edit policy"):
        load_checkpoint(_exported()[1])
    # the command line: one line naming the file, exit 2
    bad = _copy("cli", touch=True)
    assert main(["render", str(bad), "-o", str(bad.with_suffix(".wav")), "--renderer", "learned", "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_a_version_1_export_renders_without_timing() -> None:
    model = OnnxEditSound(_copy("v1", lambda d: (d.update(version=1), d.pop("timing"))))
    assert model.timing.is_identity
