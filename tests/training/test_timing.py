"""The supervised model's learned timing and level (``training.models.timing``): blocks on the plan's
beats, lags measured against an edit, the drift learned from pairs whose editor skips source at every
join (as another editor's overlapping splices do), the level rule, and the timing kept in a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from editorbot.engine.plan.model import EditPlan, Grid, Segment, Source
from editorbot.training.config import SupervisedConfig
from editorbot.training.losses import multiscale_stft
from editorbot.training.models.supervised import FrameLabels
from editorbot.training.models.timing import (
    MAX_LAG_S,
    TimingBlocks,
    TimingExample,
    TimingModel,
    choose_keep_scale,
    fit_timing,
    measure_lags,
    retime,
    timing_blocks,
)
from editorbot.training.song_pairs import SongPair
from editorbot.training.supervised import train
from editorbot.training.supervised_checkpoint import load_model

torch.set_num_threads(1)

SR = 16000
BEAT_S = 0.5


def music(seconds: float, seed: int) -> np.ndarray:
    """``(n,)`` a test song: a decaying noise-and-tone hit on every eighth note, random pitches and levels."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = np.zeros(n)
    t = np.arange(int(0.2 * SR)) / SR
    for start in range(0, n - t.size, int(BEAT_S * SR / 2)):
        f = rng.uniform(150.0, 1500.0)
        hit = (np.sin(2 * np.pi * f * t) + 0.5 * rng.standard_normal(t.size)) * np.exp(-t * rng.uniform(12.0, 30.0))
        y[start : start + t.size] += rng.uniform(0.2, 0.6) * hit
    return y.astype(np.float32)


def plan_of(seconds: float, cut: tuple[float, float] | None = None) -> EditPlan:
    """A plan of a song with beats every ``BEAT_S``: everything kept, or one span cut out."""
    beats = list(np.arange(0.0, seconds, BEAT_S))
    src = Source("song.wav", "0" * 64, SR, 1, seconds)
    if cut is None:
        segs = [Segment(0.0, seconds, 0.0)]
    else:
        a, b = cut
        segs = [Segment(0.0, a, 0.0), Segment(b, seconds, a)]
    return EditPlan(src, Grid(120.0, beats, [0]), segments=segs)


def foreign_join(y: np.ndarray, seed: int, rng_joins: tuple[float, float] = (0.002, 0.05)) -> np.ndarray:
    """``y`` as an editor that splices it into 1-8 beat pieces joined by overlaps (each skipping source) makes it."""
    rng = np.random.default_rng(seed)
    beats = np.arange(0, y.size, int(BEAT_S * SR))
    cuts, i = [0], 0
    while True:
        i += int(rng.choice([1, 2, 3, 4, 6, 8]))
        if i >= beats.size:
            break
        cuts.append(int(beats[i]))
    cuts.append(y.size)
    out = y[cuts[0] : cuts[1]].astype(np.float64)
    for a, b in zip(cuts[1:], cuts[2:]):
        piece = y[a:b].astype(np.float64)
        k = min(int(rng.uniform(*rng_joins) * SR), out.size // 2, piece.size // 2)
        fade = np.linspace(0.0, 1.0, k)
        out = np.concatenate([out[: out.size - k], out[out.size - k :] * (1 - fade) + piece[:k] * fade, piece[k:]])
    return out.astype(np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(multiscale_stft(torch.from_numpy(a[:n].copy()), torch.from_numpy(b[:n].copy())))


def test_blocks_sit_on_the_plans_beats_mapped_to_the_output() -> None:
    plan = plan_of(8.0, cut=(2.0, 4.0))
    blocks = timing_blocks(plan, int(6.0 * SR), SR)
    # beats 0..1.5 s play at 0..1.5 s, beats 4.5..7.5 s at 2.5..5.5 s, and the splice at 2.0 s
    assert (blocks.starts / SR).tolist() == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5])
    seconds, beats, splices = blocks.features[:, 0], blocks.features[:, 1], blocks.features[:, 2]
    assert seconds[0] == pytest.approx(0.25) and seconds[-1] == pytest.approx(5.75)
    # beats played before each block's centre: 0.5, 1.0, 1.5 s, then (the splice at 2.0 s plays no beat) 2.5 s on
    assert beats.tolist() == [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    assert splices.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert np.all(blocks.features[:, 3] == 1.0)


def test_retime_shifts_each_block_and_crossfades_at_the_edges() -> None:
    y = music(4.0, 0)
    blocks = TimingBlocks(np.array([0, 2 * SR]), np.zeros((2, 4)))
    assert retime(y, blocks, np.zeros(2), SR) is y
    out = retime(y, blocks, np.array([0.0, -0.025]), SR)
    k = int(0.025 * SR)
    assert np.allclose(out[: 2 * SR - 100], y[: 2 * SR - 100], atol=1e-6)
    assert np.allclose(out[2 * SR + 100 : -k - 1], y[2 * SR + 100 + k : -1], atol=1e-6)
    assert out.dtype == y.dtype and out.shape == y.shape


def test_measured_lags_follow_the_editors_skips() -> None:
    y = music(12.0, 1)
    edit = foreign_join(y, 3)
    blocks = timing_blocks(plan_of(12.0), y.size, SR)
    lags, scores = measure_lags(y, edit, blocks, SR)
    good = scores > 0.8
    assert good.mean() > 0.7
    # the edit only ever runs ahead, by a growing amount
    assert np.all(lags[good] <= 0.001)
    assert lags[good][-3:].mean() < lags[good][:3].mean() - 0.05


def test_fitted_drift_brings_held_out_edits_closer() -> None:
    songs = [music(10.0, s) for s in range(8)]
    edits = [foreign_join(y, 100 + s) for s, y in enumerate(songs)]
    blocks = [timing_blocks(plan_of(10.0), y.size, SR) for y in songs]
    model = fit_timing([TimingExample(y, e, b, f"s{i}") for i, (y, e, b) in enumerate(zip(songs[:5], edits[:5], blocks[:5], strict=True))],
                       SR, guard_keep=False)
    # the mean join skips 26 ms; joins come every 3.7 beats of 0.5 s on average: about -14 ms per second
    # per second or per beat (every beat is 0.5 s here)
    assert -0.025 < model.weights[0] + 2 * model.weights[1] < -0.005
    assert model.fit["lag_abs_ms_after"] < 0.6 * model.fit["lag_abs_ms_before"]
    before, after, d_before, d_after = [], [], [], []
    for y, e, b in zip(songs[5:], edits[5:], blocks[5:], strict=True):
        lags, scores = measure_lags(y, e, b, SR)
        good = scores > 0.8
        before.append(np.abs(lags[good]).mean())
        after.append(np.abs(lags[good] - model.lags(b)[good]).mean())
        d_before.append(distance(y, e))
        d_after.append(distance(model.apply([y], b, SR)[0], e))
    # where each join sits is not knowable, the average drift is: each held-out song's lags are a
    # random staircase around the learned line
    assert np.mean(after) < 0.7 * np.mean(before)
    assert np.mean(d_after) < 0.9 * np.mean(d_before)


def test_level_rule_learns_a_peak_normalisation() -> None:
    songs = [music(6.0, s) for s in range(4)]
    # the editor's edit peaks at -1 dBFS whatever the song's level (a pure level change)
    gains = [0.3, 1.7, 0.8, 2.5]
    targets = [(y * g) / np.abs(y * g).max() * 10 ** (-1 / 20) for y, g in zip(songs, gains, strict=True)]
    blocks = [timing_blocks(plan_of(6.0), y.size, SR) for y in songs]
    model = fit_timing([TimingExample(y * g, t, b) for y, g, t, b in zip(songs, gains, targets, blocks, strict=True)], SR)
    assert model.level_rule == "peak" and model.level_db == pytest.approx(-1.0, abs=1e-3)
    assert model.weights == [0.0] * 4  # no timing to learn: nothing retimed
    held = music(6.0, 9) * 3.0
    out = model.apply([held], blocks[0], SR)[0]
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)


def test_level_rule_reads_the_peak_over_all_channels() -> None:
    # a wide stereo song: its mono mix peaks well under its loudest channel, and so does the editor's file
    left, right = music(6.0, 1), music(6.0, 2)
    stereo = np.stack([left, right]) * 1.6
    model = TimingModel(level_rule="peak", level_db=-1.0)
    blocks = timing_blocks(plan_of(6.0), left.size, SR)
    out = model.apply([stereo], blocks, SR)[0]
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    # the mono copy the trainer holds gets the same gain when told the stereo peak
    mono = model.apply([stereo.mean(axis=0)], blocks, SR, peak_db=20 * np.log10(np.abs(stereo).max()))[0]
    assert np.allclose(mono, out.mean(axis=0), atol=1e-6)
    # fitted from the channels' peaks, not the mono mixes'
    songs = [np.stack([music(6.0, 10 + s), music(6.0, 20 + s)]) * g for s, g in enumerate([0.4, 1.3, 2.0])]
    edits = [y / np.abs(y).max() * 10 ** (-1 / 20) for y in songs]
    ex = [TimingExample(y.mean(axis=0), e.mean(axis=0), blocks, f"s{i}", 20 * np.log10(np.abs(y).max()),
                        20 * np.log10(np.abs(e).max())) for i, (y, e) in enumerate(zip(songs, edits, strict=True))]
    fitted = fit_timing(ex, SR)
    assert fitted.level_rule == "peak" and fitted.level_db == pytest.approx(-1.0, abs=1e-3)


def test_keep_blocks_and_the_keep_guard() -> None:
    plan = plan_of(8.0, cut=(2.0, 4.0))
    plan.segments[1].action = "LOOP"
    blocks = timing_blocks(plan, int(6.0 * SR), SR)
    assert blocks.keep is not None and blocks.keep.tolist() == [True] * 4 + [False] * 8
    m = TimingModel(weights=[-0.01, 0.0, 0.0, 0.0], keep_scale=0.5)
    full = TimingModel(weights=[-0.01, 0.0, 0.0, 0.0]).lags(blocks)
    assert np.allclose(m.lags(blocks), np.where(blocks.keep, 0.5 * full, full))
    # an editor that leaves KEEP spans where the plan has them: the guard keeps the lag off them
    songs = [music(6.0, s) for s in range(4)]
    blocks = [timing_blocks(plan_of(6.0), y.size, SR) for y in songs]
    ex = [TimingExample(y, y.copy(), b, f"s{i}") for i, (y, b) in enumerate(zip(songs, blocks, strict=True))]
    measured = [measure_lags(e.render, e.target, e.blocks, SR) for e in ex]
    drifting = TimingModel(weights=[-0.01, 0.0, 0.0, 0.0])
    assert choose_keep_scale(drifting, ex, measured, SR) == 0.0
    assert drifting.fit["keep_guard"]["pairs_worse_than_dsp"][0] == 0
    # one whose every join skips source: the lag is worth having on KEEP spans too
    edits = [foreign_join(y, 60 + i) for i, y in enumerate(songs)]
    ex = [TimingExample(y[: e.size], e[: y.size], timing_blocks(plan_of(6.0), min(y.size, e.size), SR), f"s{i}")
          for i, (y, e) in enumerate(zip(songs, edits, strict=True))]
    model = fit_timing(ex, SR)
    assert any(model.weights) and model.keep_scale > 0.0


def test_timing_model_round_trip_and_bounds() -> None:
    assert TimingModel.from_dict(None).is_identity
    m = TimingModel(weights=[-0.01, 0.0, 0.002, 0.0], level_rule="offset", level_db=-2.0)
    assert TimingModel.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError):
        TimingModel.from_dict({**m.to_dict(), "weights": [0.0]})
    with pytest.raises(ValueError):
        TimingModel.from_dict({**m.to_dict(), "level_rule": "loud"})
    far = TimingBlocks(np.array([0]), np.array([[1000.0, 0.0, 0.0, 1.0]]))
    assert m.lags(far)[0] == -MAX_LAG_S


def song_pair(name: str, seed: int) -> SongPair:
    y = music(6.0, seed)
    e = foreign_join(y, seed + 50)
    n = min(y.size, e.size)
    plan = plan_of(6.0)
    hop = 128
    labels = FrameLabels(np.zeros(1 + n // hop, np.int64), np.zeros(1 + n // hop, np.int64),
                         np.zeros(1 + n // hop, np.int64), np.zeros(1 + n // hop, np.float32))
    return SongPair(name, f"song{seed}", SR, y[:n], y[:n].copy(), e[:n], labels, True, timing_blocks(plan, n, SR))


def test_trainer_fits_the_timing_first_and_the_checkpoint_keeps_it(tmp_path: Path) -> None:
    cfg = SupervisedConfig(encoder_dim=16, decoder_dim=16, n_layers=1, n_heads=2, ff_mult=1, dropout=0.0, n_mels=32,
                           batch_size=2, crop_s=0.5, crops_per_epoch=2, epochs=1, checkpoint_every=1000)
    songs = [song_pair(f"p{s}", s) for s in range(4)]
    train(songs[:3], songs[3:], tmp_path, config=cfg, quiet=True, max_steps=1)
    model = load_model(tmp_path / "best.pt")
    assert model.timing.weights[0] + 2 * model.timing.weights[1] < -0.003
    assert model.timing.fit["pairs"] == 3
    off = SupervisedConfig(**{**cfg.to_dict(), "learn_timing": False})
    train(songs[:3], songs[3:], tmp_path / "off", config=off, quiet=True, max_steps=1)
    assert load_model(tmp_path / "off" / "best.pt").timing.is_identity
