"""``editorbot train rl``: trains from a real pair folder, resumes, and answers
bad input with exit 2 and one stderr line naming the file or flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from editorbot.bridge.cli import main
from editorbot.training.data.pairs import make_synth_pair
from editorbot.training.ppo import load_checkpoint

TINY = ["--hidden", "32", "--heads", "2", "--layers", "1", "--kernel", "5", "--window", "16",
        "--value-hidden", "16", "--value-heads", "2", "--batch-size", "32", "--num-envs", "2",
        "--num-minibatches", "2", "--grad-accum", "2", "--update-epochs", "1", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs")
    make_synth_pair(3, "radio_edit", out, duration_s=16)
    return out


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(1)


def test_train_rl_from_pairs_then_resume(pair_dir: Path, tmp_path: Path) -> None:
    save = tmp_path / "run"
    argv = ["train", "rl", "--data-dir", str(pair_dir), "--save-dir", str(save), "--quiet", *TINY,
            "--bc-epochs", "2", "--bc-batch-size", "8", "--reward", "density=0.3"]
    assert main([*argv, "--max-updates", "2"]) == 0
    ckpt = load_checkpoint(save / "last.pt")
    assert ckpt["update"] == 2 and ckpt["bc_epochs"] == 2
    assert ckpt["agent_config"]["hidden"] == 32 and ckpt["ppo_config"]["batch_size"] == 32
    assert ckpt["reward_weights"]["density"] == 0.3
    assert main([*argv, "--max-updates", "3", "--resume"]) == 0
    assert load_checkpoint(save / "last.pt")["update"] == 3


def test_train_rl_with_context_then_resume_without_the_flag(pair_dir: Path, tmp_path: Path) -> None:
    """--context widens the model by the context columns; a resumed run keeps them without the flag."""
    from editorbot.engine.context import CONTEXT_NAMES

    save = tmp_path / "run"
    argv = ["train", "rl", "--data-dir", str(pair_dir), "--save-dir", str(save), "--quiet", *TINY,
            "--bc-epochs", "1", "--bc-batch-size", "8"]
    assert main([*argv, "--bc-only", "--context"]) == 0
    cfg = load_checkpoint(save / "last.pt")["agent_config"]
    assert cfg["context"] is True and cfg["in_dim"] == 109 + len(CONTEXT_NAMES)
    assert main([*argv, "--max-updates", "1", "--resume"]) == 0
    ckpt = load_checkpoint(save / "last.pt")
    assert ckpt["update"] == 1 and ckpt["agent_config"]["context"] is True


def test_python_m_form_parses_the_same_flags(pair_dir: Path, tmp_path: Path) -> None:
    from editorbot.training.train import main as train_main

    save = tmp_path / "run"
    assert train_main(["--quiet", "rl", "--data-dir", str(pair_dir), "--save-dir", str(save), *TINY,
                       "--max-updates", "1", "--no-mixed-precision"]) == 0
    assert load_checkpoint(save / "last.pt")["ppo_config"]["mixed_precision"] is False


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--data-dir", "/nonexistent/pairs"], "/nonexistent/pairs"),
        (["--reward", "bogus=1"], "--reward"),
        (["--batch-size", "33"], "flags"),
        (["--bc-mixed", "/nonexistent/bc.npz"], "/nonexistent/bc.npz"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], names: str
) -> None:
    argv = ["train", "rl", "--data-dir", str(pair_dir), "--save-dir", str(tmp_path / "run"), "--quiet", *TINY, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unlabelled_data_cannot_do_bc(pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    (bare / "input").mkdir(parents=True)
    for wav in (pair_dir / "input").iterdir():
        (bare / "input" / wav.name).write_bytes(wav.read_bytes())
    assert main(["train", "rl", "--data-dir", str(bare), "--save-dir", str(tmp_path / "run"), "-q", *TINY,
                 "--bc-only"]) == 2
    assert "labels" in capsys.readouterr().err


def test_fine_tune_starts_from_an_exported_model(pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--init MODEL.onnx``: the run starts from the export's weights and config (its policy flags ignored)."""
    from tests.export import tiny_agent, tiny_model

    model, _ = tiny_model()
    save = tmp_path / "ft"
    argv = ["train", "rl", "--data-dir", str(pair_dir), "--save-dir", str(save), "--quiet", *TINY,
            "--init", str(model), "--bc-only", "--bc-epochs", "1", "--bc-batch-size", "8", "--bc-lr", "1e-9"]
    assert main(argv) == 0
    ckpt = load_checkpoint(save / "last.pt")
    original = tiny_agent()
    assert ckpt["agent_config"] == original.config.to_dict()  # not TINY's --hidden 32 --layers 1 ...
    for key, value in original.state_dict().items():  # one BC epoch at lr 1e-9 moves nothing visible
        assert torch.allclose(ckpt["agent"][key].float(), value.float(), atol=1e-5), key
    assert not list(tmp_path.glob("**/init.pt"))  # the rebuilt checkpoint was a temporary file

    # the python -m form takes checkpoints only, and says so in one line
    from editorbot.training.train import main as train_main

    assert train_main(["--quiet", "rl", "--data-dir", str(pair_dir), "--save-dir", str(tmp_path / "m"), *TINY,
                       "--init", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(model) in err[0] and "checkpoint" in err[0]
