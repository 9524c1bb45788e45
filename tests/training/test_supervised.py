"""Supervised edit-sound model: studio styles, frame labels, the learned render against the DSP
render on held-out songs, KEEP frames left alone, early stopping on a rising validation loss,
resume after SIGKILL, a non-finite batch skipped, and the CLI (train supervised, render --renderer learned)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from editorbot.engine.audio import load_audio, write_audio
from editorbot.engine.render import render_plan
from editorbot.training.config import SupervisedConfig
from editorbot.training.data.editors import apply_studio
from editorbot.training.data.pairs import load_pair_plan, make_synth_pair, read_label_doc
from editorbot.training.learned_render import render_learned
from editorbot.training.losses import multiscale_stft
from editorbot.training.models.supervised import EditSoundModel, FrameLabels, frame_labels
from editorbot.training.song_pairs import SongPair, load_song_pairs, make_studio_pairs, split_by_song, structural_plan
from editorbot.training.supervised import train
from editorbot.training.supervised_checkpoint import load_model, load_supervised_checkpoint
from tests.training import torchrun_two

torch.set_num_threads(1)

DURATION_S = 8.0
#: A tiny model that still learns the studio chain in a couple of minutes of one core.
TINY = {"encoder_dim": 32, "decoder_dim": 32, "n_layers": 1, "n_heads": 2, "ff_mult": 2, "dropout": 0.0,
        "n_mels": 64, "lr": 3e-3, "batch_size": 4, "crop_s": 1.0, "checkpoint_every": 1000, "seed": 0}
REPO = Path(__file__).resolve().parents[2]


def distance(pred: np.ndarray, target: np.ndarray) -> float:
    n = min(pred.shape[1], target.shape[1])
    return float(multiscale_stft(torch.from_numpy(pred[:, :n].copy()), torch.from_numpy(target[:, :n].copy())))


def pair_renders(label_path: str, model: EditSoundModel) -> dict[str, np.ndarray]:
    """Desired, learned, DSP and re-sequenced raw renders of one pair, ``(n_channels, n)`` each."""
    plan = load_pair_plan(label_path)
    raw = load_audio(plan.source.path)
    root = os.path.dirname(os.path.dirname(label_path))
    desired = load_audio(os.path.join(root, read_label_doc(label_path)["edit"])).samples
    sr = raw.sample_rate
    return {
        "desired": desired,
        "learned": render_learned(plan, raw.samples, sr, model),
        "dsp": render_plan(plan, raw.samples, sr),
        "raw": render_plan(structural_plan(plan), raw.samples, sr),
    }


# ------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def studio_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Studio pairs (chain over the whole edit): 5 songs to train/validate on, 2 held out."""
    root = tmp_path_factory.mktemp("studio")
    make_studio_pairs(5, root / "data", seed=0, duration_s=DURATION_S)
    make_studio_pairs(2, root / "test", seed=500, duration_s=DURATION_S)
    return {"data": root / "data", "test": root / "test"}


@pytest.fixture(scope="module")
def studio_model(studio_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the studio pairs; returns its best checkpoint."""
    songs = load_song_pairs(studio_data["data"], quiet=True)
    train_songs, val_songs = split_by_song(songs, 0.2, 0)
    save = tmp_path_factory.mktemp("studio_run")
    cfg = SupervisedConfig(**TINY, epochs=40, patience=40, crops_per_epoch=16)
    train(train_songs, val_songs, save, config=cfg, quiet=True, max_steps=60)
    return save / "best.pt"


def test_apply_studio_scopes(tmp_path: Path) -> None:
    rec = make_synth_pair(4, "mixed", tmp_path, DURATION_S)  # kept and edited spans (seed 3 is one fade-out to the end)
    plan = load_pair_plan(rec.label_path)
    edit = load_audio(rec.edit_path)
    sr = edit.sample_rate
    wet_all = apply_studio(edit.samples, sr, plan, "all")
    wet_edits = apply_studio(edit.samples, sr, plan, "edits")
    assert wet_all.shape == wet_edits.shape == edit.samples.shape
    assert distance(wet_all, edit.samples) > 0.5  # the chain changes the sound a lot
    margin = round(0.02 * sr)
    kept = edited = 0
    for seg in plan.segments:
        a, b = round(seg.dst_start_s * sr) + margin, round((seg.dst_start_s + seg.length_s) * sr) - margin
        if b <= a:
            continue
        same = np.array_equal(wet_edits[:, a:b], edit.samples[:, a:b])
        if seg.action == "KEEP":
            assert same, f"KEEP span {seg.dst_start_s:.2f} s changed"
            kept += 1
        elif np.abs(edit.samples[:, a:b]).max() > 1e-3:
            assert not same, f"{seg.action} span {seg.dst_start_s:.2f} s unchanged"
            edited += 1
    assert kept and edited
    with pytest.raises(ValueError):
        apply_studio(edit.samples, sr, plan, "nowhere")


def test_frame_labels_follow_the_plan(studio_data: dict[str, Path]) -> None:
    label = sorted((studio_data["data"] / "labels").glob("*.json"))[0]
    plan = load_pair_plan(label)
    hop_s = 512 / 44100
    n = 1 + round(plan.duration_s / hop_s)
    labels = frame_labels(plan, n, hop_s)
    actions = {(a.beat, a.type): a for a in plan.actions}
    from editorbot.engine import actions as vocab

    for seg in plan.segments:
        t = np.arange(n) * hop_s
        inside = np.flatnonzero((t >= seg.dst_start_s) & (t < seg.dst_start_s + seg.length_s))
        if inside.size == 0:
            continue
        assert (labels.type_idx[inside] == vocab.type_index(seg.action)).all()
        act = actions.get((seg.beat, seg.action))
        if act is not None:
            assert (labels.size_idx[inside] == vocab.size_index(act.size)).all()
            assert (labels.amount_idx[inside] == vocab.amount_index(act.amount)).all()
        pos = labels.position[inside]
        assert (np.diff(pos) > 0).all() and 0.0 <= pos[0] < 0.2 and 0.8 < pos[-1] <= 1.0
    assert labels.keep.any() and not labels.keep.all()


@pytest.mark.parametrize("raw_mix", [False, True], ids=["gain", "gain+raw"])
def test_untrained_model_renders_the_dsp_plan(studio_data: dict[str, Path], raw_mix: bool) -> None:
    """The decoder starts at 0 dB (and no raw mixed in): the learned render is the DSP render up to the STFT round trip."""
    label = str(sorted((studio_data["test"] / "labels").glob("*.json"))[0])
    model = EditSoundModel(SupervisedConfig(**TINY, raw_mix=raw_mix), 44100).eval()
    r = pair_renders(label, model)
    assert r["learned"].shape == r["dsp"].shape
    assert np.abs(r["learned"] - r["dsp"]).max() < 1e-4
    if raw_mix:  # a raw-mix weight of 1 everywhere gives the structural re-sequencing of the raw audio
        with torch.no_grad():
            model.decoder.head.bias[TINY["n_mels"] :] = 1.0
        r = pair_renders(label, model)
        assert np.abs(r["learned"] - r["raw"]).max() < 1e-4


def test_an_inferred_plan_may_miss_the_edit_length_by_a_little(tmp_path: Path) -> None:
    """Another editor's splices are not reproduced to the sample by the plan label inference finds."""
    from editorbot.engine.errors import BadInput
    from editorbot.training.song_pairs import load_song_pair

    rec = make_synth_pair(3, "studio_edits", tmp_path, 8.0)
    edit = load_audio(rec.edit_path)
    short = edit.samples[:, : int(0.98 * edit.samples.shape[1])]
    write_audio(rec.edit_path, short, edit.sample_rate)
    with pytest.raises(BadInput, match="the plan renders"):
        load_song_pair(rec.label_path)
    doc = json.loads(Path(rec.label_path).read_text())
    Path(rec.label_path).write_text(json.dumps({**doc, "plan_source": "inferred"}))
    song = load_song_pair(rec.label_path)
    assert song.n_samples == short.shape[1] == song.target.shape[0] == song.raw.shape[0]
    np.testing.assert_allclose(song.target, short.mean(axis=0), atol=1e-6)
    write_audio(rec.edit_path, edit.samples[:, : int(0.9 * edit.samples.shape[1])], edit.sample_rate)
    with pytest.raises(BadInput, match="the plan renders"):  # 10 % is more than an editor's overlaps
        load_song_pair(rec.label_path)


def test_split_is_by_song(studio_data: dict[str, Path], tmp_path: Path) -> None:
    songs = load_song_pairs(studio_data["data"], quiet=True)
    train_songs, val_songs = split_by_song(songs, 0.2, 0)
    assert len(val_songs) == 1 and len(train_songs) == 4
    assert not {s.song for s in train_songs} & {s.song for s in val_songs}
    assert all(not s.consistency for s in songs)  # the chain covers every frame: nothing to hold still


# ------------------------------------------------------------------ (1) learned beats DSP


def test_learned_render_halves_the_distance_on_held_out_songs(studio_data: dict[str, Path], studio_model: Path) -> None:
    model = load_model(studio_model)
    sums = {"learned": 0.0, "dsp": 0.0, "raw": 0.0}
    for label in sorted((studio_data["test"] / "labels").glob("*.json")):
        r = pair_renders(str(label), model)
        for k in sums:
            sums[k] += distance(r[k], r["desired"])
    print(f"\nheld-out multi-scale STFT distance: {sums}")
    assert sums["learned"] <= 0.5 * sums["dsp"]
    assert sums["learned"] <= 0.5 * sums["raw"]


# ------------------------------------------------------------------ (2) KEEP frames unchanged


def mel_db(x: np.ndarray, model: EditSoundModel) -> np.ndarray:
    """``(T, n_mels)`` mel magnitude in dB of the channel mean."""
    with torch.no_grad():
        fe = model.frontend
        lm = fe.log_mel(fe.stft(torch.from_numpy(x.mean(axis=0))[None]).abs())[0]
    return lm.numpy() * 20.0 / np.log(10.0)


def test_keep_frames_change_by_at_most_half_a_db(tmp_path: Path) -> None:
    """Trained on an editor whose chain runs over edited spans only, the model changes edited frames
    towards the edit and leaves KEEP frames within 0.5 dB of the DSP render on a held-out song."""
    make_studio_pairs(4, tmp_path / "data", style="studio_edits", seed=20, duration_s=DURATION_S)
    # seed 702: kept spans at both ends (700 ends in a fade-out, which now ends the song)
    (test_label,) = make_studio_pairs(1, tmp_path / "test", style="studio_edits", seed=702, duration_s=DURATION_S)
    songs = load_song_pairs(tmp_path / "data", quiet=True)
    assert all(s.consistency for s in songs)
    train_songs, val_songs = split_by_song(songs, 0.25, 0)
    cfg = SupervisedConfig(**{**TINY, "lr": 5e-3}, epochs=40, patience=40, crops_per_epoch=16)
    train(train_songs, val_songs, tmp_path / "run", config=cfg, quiet=True, max_steps=120)
    model = load_model(tmp_path / "run" / "last.pt")
    r = pair_renders(test_label, model)
    plan = load_pair_plan(test_label)
    learned, dsp, desired = mel_db(r["learned"], model), mel_db(r["dsp"], model), mel_db(r["desired"], model)
    labels = frame_labels(plan, learned.shape[0], model.frontend.hop_s)
    # frames at least one STFT window away from any non-KEEP frame
    edited = ~labels.keep
    near = np.convolve(edited.astype(float), np.ones(9), mode="same") > 0
    keep = labels.keep & ~near
    assert keep.sum() > 50 and edited.sum() > 50
    audible = dsp > dsp.max() - 60.0
    keep_change = np.abs(learned - dsp)[keep[:, None] & audible].mean()
    print(f"\nmean |dB change| on KEEP frames: {keep_change:.3f}")
    assert keep_change <= 0.5
    # and it did learn the edit where there is one
    err_dsp = np.abs(dsp - desired)[edited[:, None] & audible].mean()
    err_learned = np.abs(learned - desired)[edited[:, None] & audible].mean()
    print(f"edited frames: |dB error| DSP {err_dsp:.2f}, learned {err_learned:.2f}")
    assert err_learned < err_dsp - 0.1


# ------------------------------------------------------------------ (3) overfitting and early stopping


def test_overfitting_is_logged_and_stops_training(tmp_path: Path) -> None:
    """Each desired edit is its DSP render with a random gain per STFT frame (the song's own noise):
    nothing carries over to other songs, so fitting the training songs makes validation worse and
    the trainer stops after ``patience`` epochs without improvement."""
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for seed in (40, 41, 42):
        rec = make_synth_pair(seed, "mastering", data, 6.0)
        edit = load_audio(rec.edit_path)
        hop = 512
        gains = 10 ** (rng.uniform(-8.0, 8.0, 1 + edit.samples.shape[1] // hop) / 20.0)
        env = np.repeat(gains, hop)[: edit.samples.shape[1]].astype(np.float32)
        write_audio(rec.edit_path, edit.samples * env, edit.sample_rate, protect=(rec.raw_path,))
    songs = load_song_pairs(data, quiet=True)
    train_songs, val_songs = split_by_song(songs, 0.34, 0)
    cfg = SupervisedConfig(**{**TINY, "encoder_dim": 64, "decoder_dim": 64, "lr": 3e-3, "crop_s": 2.0},
                           epochs=30, patience=3, crops_per_epoch=8)
    result = train(train_songs, val_songs, tmp_path / "run", config=cfg, quiet=True)
    hist = result["history"]
    assert result["stopped_early"] and len(hist) < cfg.epochs
    best = result["best_epoch"]
    assert len(hist) == best + 1 + cfg.patience  # stopped exactly one patience window after the best
    assert all(h["val_loss"] > hist[best]["val_loss"] for h in hist[best + 1 :])
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]  # still fitting the training songs
    lines = [json.loads(x) for x in (tmp_path / "run" / "progress.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if x["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(len(hist)))
    assert all({"train_loss", "val_loss"} <= set(e) for e in epochs)
    assert load_supervised_checkpoint(tmp_path / "run" / "best.pt")["best_epoch"] == best
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/l1_loss", "train/msstft_loss", "train/consistency_loss", "val/total_loss"} <= tags


# ------------------------------------------------------------------ (4) resume after SIGKILL


RUNNER = textwrap.dedent(
    """
    import json, sys, time, torch
    torch.set_num_threads(1)
    from editorbot.training.config import SupervisedConfig
    from editorbot.training.song_pairs import load_song_pairs, split_by_song
    from editorbot.training.supervised import train
    args = json.loads(sys.argv[1])
    songs = load_song_pairs(args["data"], quiet=True)
    tr, va = split_by_song(songs, 0.2, 0)
    train(tr, va, args["save_dir"], config=SupervisedConfig(**args["config"]), resume=args["resume"], quiet=True,
          max_steps=args["max_steps"], on_step=lambda s, m: time.sleep(args["sleep"]))
    """
)


def run_trainer(tmp_path: Path, data: Path, save_dir: Path, *, resume: bool, sleep: float) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    cfg = {**TINY, "checkpoint_every": 2, "epochs": 3, "patience": 5, "crops_per_epoch": 16}
    args = {"data": str(data), "save_dir": str(save_dir), "config": cfg, "resume": resume, "sleep": sleep,
            "max_steps": 10}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), json.dumps(args)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def logged_steps(save_dir: Path) -> list[int]:
    path = save_dir / "progress.jsonl"
    if not path.exists():
        return []
    return [d["step"] for d in map(json.loads, path.read_text().splitlines()) if d["kind"] == "step"]


def test_resume_after_sigkill_loses_at_most_one_interval(studio_data: dict[str, Path], tmp_path: Path) -> None:
    save_dir = tmp_path / "run"
    proc = run_trainer(tmp_path, studio_data["data"], save_dir, resume=False, sleep=0.3)
    deadline = time.time() + 240
    while len(logged_steps(save_dir)) < 5:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.time() < deadline, "trainer too slow"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = max(logged_steps(save_dir))
    saved = load_supervised_checkpoint(save_dir / "last.pt")
    assert 0 <= done - saved["step"] < 2  # checkpoint_every = 2
    assert saved["step"] >= 4

    proc = run_trainer(tmp_path, studio_data["data"], save_dir, resume=True, sleep=0.0)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    final = load_supervised_checkpoint(save_dir / "last.pt")
    assert final["step"] == 10
    steps = logged_steps(save_dir)
    assert steps[-(10 - saved["step"]) :] == list(range(saved["step"] + 1, 11))  # continued from the checkpoint
    # 16 crops / batch 4 = 4 steps per epoch: 10 steps end inside epoch 2, and the epoch lines say so
    epochs = [d for d in map(json.loads, (save_dir / "progress.jsonl").read_text().splitlines()) if d["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs][-2:] == [0, 1] and final["epoch"] == 2 and final["step_in_epoch"] == 2


# ------------------------------------------------------------------ CLI


def test_cli_train_supervised_and_render_learned(studio_data: dict[str, Path], studio_model: Path, tmp_path: Path) -> None:
    from editorbot.bridge.cli import main as cli

    save = tmp_path / "run"
    rc = cli(["train", "-q", "supervised", "--data-dir", str(studio_data["data"]), "--save-dir", str(save),
              "--epochs", "1", "--batch-size", "2", "--max-steps", "2", "--encoder-dim", "16", "--decoder-dim", "16",
              "--n-layers", "1", "--n-heads", "2", "--n-mels", "32", "--crop-s", "0.5", "--crops-per-epoch", "4"])
    assert rc == 0
    ckpt = load_supervised_checkpoint(save / "last.pt")
    assert ckpt["step"] == 2 and ckpt["config"]["encoder_dim"] == 16

    label = sorted((studio_data["test"] / "labels").glob("*.json"))[0]
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(read_label_doc(label)["plan"]))
    from editorbot.engine.plan import load_plan, save_plan

    plan = load_plan(plan_path)
    plan.source.path = load_pair_plan(label).source.path
    save_plan(plan, plan_path)
    out_dsp, out_learned = tmp_path / "dsp.wav", tmp_path / "learned.wav"
    assert cli(["render", "-q", str(plan_path), "-o", str(out_dsp)]) == 0
    assert cli(["render", "-q", str(plan_path), "-o", str(out_learned), "--renderer", "learned",
                "--checkpoint", str(studio_model)]) == 0
    a, b = load_audio(out_dsp), load_audio(out_learned)
    assert a.samples.shape == b.samples.shape and a.sample_rate == b.sample_rate
    desired = load_audio(label.parent.parent / read_label_doc(label)["edit"]).samples
    assert distance(b.samples, desired) < distance(a.samples, desired)

    assert cli(["render", "-q", str(plan_path), "-o", str(tmp_path / "x.wav"), "--renderer", "learned"]) == 2
    assert cli(["render", "-q", str(plan_path), "-o", str(tmp_path / "x.wav"), "--renderer", "learned",
                "--checkpoint", str(plan_path)]) == 2  # not a checkpoint
    assert not (tmp_path / "x.wav").exists()


DDP_RUNNER = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from editorbot.training.config import SupervisedConfig
    from editorbot.training.song_pairs import load_song_pairs, split_by_song
    from editorbot.training.supervised import train
    args = json.loads(sys.argv[1])
    tr, va = split_by_song(load_song_pairs(args["data"], quiet=True), 0.2, 0)
    train(tr, va, args["save_dir"], config=SupervisedConfig(**args["config"]), quiet=True, max_steps=2)
    """
)


def test_torchrun_two_processes_keep_replicas_identical(studio_data: dict[str, Path], tmp_path: Path) -> None:
    script = tmp_path / "ddp_runner.py"
    script.write_text(DDP_RUNNER)
    save_dir = tmp_path / "run"
    cfg = {**TINY, "batch_size": 2, "crops_per_epoch": 8, "epochs": 1}
    args = {"data": str(studio_data["data"]), "save_dir": str(save_dir), "config": cfg}
    proc = torchrun_two(script, json.dumps(args), save_dir, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    hashes = json.loads((save_dir / "replicas.json").read_text())["hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    ckpt = load_supervised_checkpoint(save_dir / "last.pt")
    assert ckpt["step"] == 2 and ckpt["world"] == 2 and len(ckpt["rng"]) == 2


# ------------------------------------------------------------------ (5) a non-finite batch is skipped


def noise_pair(name: str, seed: int, sr: int = 22050, duration_s: float = 2.0) -> SongPair:
    """An in-memory pair of noise whose target is the base 6 dB down; every frame KEEP."""
    y = np.random.default_rng(seed).normal(0.0, 0.1, int(sr * duration_s)).astype(np.float32)
    n_frames = 1 + y.size // 512
    zeros = np.zeros(n_frames, np.int64)
    labels = FrameLabels(zeros, zeros.copy(), zeros.copy(), np.zeros(n_frames, np.float32))
    return SongPair(name, f"song{seed}", sr, y, y.copy(), 0.5 * y, labels)


def test_a_non_finite_batch_is_skipped_and_still_counts_in_the_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A training song whose target is NaN makes its batches' loss NaN: each is skipped with a warning
    (no optimiser step, the weights stay finite), counts towards the epoch, and the epoch ends as usual."""
    bad = noise_pair("bad", 1)
    bad.target[:] = np.nan
    train_songs, val_songs = [noise_pair("good", 0), bad], [noise_pair("val", 2)]
    cfg = SupervisedConfig(**{**TINY, "batch_size": 1, "crop_s": 0.25, "learn_timing": False}, epochs=1,
                           crops_per_epoch=8)
    with caplog.at_level("WARNING", logger="editorbot.training.supervised"):
        result = train(train_songs, val_songs, tmp_path, config=cfg, quiet=True)
    skipped = [r for r in caplog.records if "non-finite loss, batch skipped" in r.getMessage()]
    assert skipped and result["step"] >= 1
    assert result["step"] + len(skipped) == 8  # 8 crops of one song each: every one a step or a skip
    assert result["epoch"] == 1 and len(result["history"]) == 1 and np.isfinite(result["history"][0]["train_loss"])
    ckpt = load_supervised_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == result["step"] and ckpt["step_in_epoch"] == 0
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values())
