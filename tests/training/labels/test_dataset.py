"""training.labels.dataset: the BC file of inferred labels, and ``editorbot data labels`` over it."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from editorbot.bridge.cli import main
from editorbot.engine.errors import BadInput
from editorbot.training.bc import BCData
from editorbot.training.config import AgentConfig, PPOConfig
from editorbot.training.labels.dataset import build_dataset


def test_build_dataset_writes_bc_npz_and_evaluates(corpus, tmp_path):
    out = tmp_path / "bc_rich.npz"
    report = build_dataset(corpus["dir"], out, evaluate=True, cache=False, quiet=True)
    assert report.n_pairs == 2 and report.n_alignable == 2
    bc = BCData.load(out)
    bc.check(AgentConfig())
    assert len(bc) == report.n_examples > 0
    assert np.all((bc.confidence >= 0) & (bc.confidence <= 1))
    with np.load(out, allow_pickle=False) as z:
        assert z["beat_labels"].shape == (int(z["pair_offsets"][-1]), 3)
        assert z["beat_features"].shape[0] == z["beat_labels"].shape[0]
        assert len(z["raw_paths"]) == len(z["plans"]) == 2
        assert json.loads(str(z["plans"][0]))["schema"] == "editorbot.editplan/1"
    assert (tmp_path / "bc_rich_plans" / "struct.plan.json").is_file()
    ev = report.evaluation
    assert ev is not None and ev.n_pairs == 2
    assert ev.structural_accuracy >= 0.9 and ev.boundary_within_1 >= 0.8
    assert "KEEP" in ev.per_type and any("macro-F1" in line for line in ev.lines())


def test_cli_labels_reports_unalignable(corpus, tmp_path, capsys):
    folder = tmp_path / "d"
    for d in ("input", "desired_output"):
        (folder / d).mkdir(parents=True)
    shutil.copy(corpus["struct"]["raw"], folder / "input" / "a_raw.wav")
    shutil.copy(corpus["fx"]["edit"], folder / "desired_output" / "a_edit.wav")
    code = main(["data", "labels", "--data-dir", str(folder), "--out", str(tmp_path / "x.npz"), "-q", "--no-cache"])
    out = capsys.readouterr().out
    assert code == 2
    assert "unalignable: a:" in out
    assert main(["data", "labels", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "y.npz")]) == 2
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(tmp_path / "z.npz"), "--window", "0"]) == 2
    assert "--window: AgentConfig.window must be >= 1" in capsys.readouterr().err


def test_cli_labels_window_and_history(corpus, tmp_path):
    folder = tmp_path / "d"
    for d, key in (("input", "raw"), ("desired_output", "edit")):
        (folder / d).mkdir(parents=True)
        shutil.copy(corpus["struct"][key], folder / d / f"a_{key}.wav")
    out = tmp_path / "wide.npz"
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(out), "-q", "--no-cache",
                 "--window", "121", "--history", "20"]) == 0
    bc = BCData.load(out)
    assert (bc.window, bc.done.shape[1]) == (121, 20)


def test_cli_labels_context_columns_for_a_context_model(corpus, tmp_path):
    """``--context``: the windows carry the whole-song context columns a ``--context`` model reads; a file
    without them is refused for such a model with one line naming the flag."""
    from editorbot.engine.context import CONTEXT_NAMES

    folder = tmp_path / "d"
    for d, key in (("input", "raw"), ("desired_output", "edit")):
        (folder / d).mkdir(parents=True)
        shutil.copy(corpus["struct"][key], folder / d / f"a_{key}.wav")
    wide = tmp_path / "ctx.npz"
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(wide), "-q", "--no-cache", "--context"]) == 0
    cfg = AgentConfig(context=True, in_dim=AgentConfig().in_dim + len(CONTEXT_NAMES), hidden=16, heads=2, layers=1,
                      kernel=5)
    b = BCData.load(wide)
    with np.load(wide, allow_pickle=False) as z:
        n_audio = z["beat_features"].shape[1]  # the npz's per-beat rows stay the audio columns
    assert b.features.shape[2] == n_audio + len(CONTEXT_NAMES) == cfg.in_dim
    assert b.fitted(cfg).features.shape[2] == cfg.in_dim
    plain = dataclasses.replace(b, features=b.features[..., :n_audio], summary=b.summary[:, :n_audio])
    with pytest.raises(BadInput, match="data labels --context"):
        plain.fitted(cfg)


def test_confidence_in_plans_bc_file_and_calibration(corpus, tmp_path):
    out = tmp_path / "bc_rich.npz"
    report = build_dataset(corpus["dir"], out, evaluate=True, cache=False, quiet=True)
    plan = json.loads((tmp_path / "bc_rich_plans" / "struct.plan.json").read_text())
    confs = [a["confidence"] for a in plan["actions"]]
    assert confs and all(0.0 <= c <= 1.0 for c in confs)
    ev = report.evaluation
    assert ev is not None and ev.calibration
    assert sum(n for _, _, n, _ in ev.calibration) == ev.n_beats
    assert all(0.0 <= lo < hi <= 1.0 and 0.0 <= acc <= 1.0 for lo, hi, _, acc in ev.calibration)
    assert any(line.startswith("calibration") for line in ev.lines())
    # a BC file from before labels carried a confidence reads as fully trusted
    with np.load(out, allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if k != "confidence"}
    np.savez_compressed(tmp_path / "old.npz", **old)
    bc = BCData.load(tmp_path / "old.npz")
    assert bc.confidence.dtype == np.float32 and np.all(bc.confidence == 1.0)


def test_bc_min_confidence_drops_low_confidence_examples(corpus, tmp_path):
    out = tmp_path / "bc_rich.npz"
    build_dataset(corpus["dir"], out, cache=False, quiet=True)
    bc = BCData.load(out)
    bc.confidence = np.linspace(0.0, 1.0, len(bc), dtype=np.float32)
    kept = bc.confident(0.5)
    assert 0 < len(kept) < len(bc) and np.all(kept.confidence >= 0.5)
    assert len(bc.confident(0.0)) == len(bc)
    with pytest.raises(BadInput, match="--bc-min-confidence"):
        bc.confident(1.01)
    with pytest.raises(ValueError, match="bc_min_confidence"):
        PPOConfig(bc_min_confidence=1.5)


def test_labels_in_worker_processes_match_and_a_bad_pair_does_not_stop_the_run(corpus, tmp_path, capsys):
    folder = tmp_path / "d"
    for d in ("input", "desired_output", "labels"):
        (folder / d).mkdir(parents=True)
    for name in ("struct", "fx"):
        p = corpus[name]
        shutil.copy(p["raw"], folder / "input" / f"{name}_raw.wav")
        shutil.copy(p["edit"], folder / "desired_output" / f"{name}_edit.wav")
        shutil.copy(p["label"], folder / "labels" / f"{name}.json")
    (folder / "input" / "bad_raw.wav").write_bytes(b"not audio at all")
    shutil.copy(corpus["fx"]["edit"], folder / "desired_output" / "bad_edit.wav")
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(one), "-q", "--no-cache"]) == 0
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(two), "-q", "--no-cache", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("unalignable: bad:") == 2 and "bad_raw.wav" in out
    with np.load(one, allow_pickle=False) as a, np.load(two, allow_pickle=False) as b:
        assert list(a["pair_names"]) == list(b["pair_names"]) == ["fx", "struct"]
        assert np.array_equal(a["beat_labels"], b["beat_labels"])
        assert np.allclose(a["beat_confidence"], b["beat_confidence"])
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(tmp_path / "x.npz"), "--jobs", "0"]) == 2
