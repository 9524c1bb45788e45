"""training.labels: structure, effects and amounts recovered from short (raw, edit) pairs.

Pairs are made here from ``synth_song`` + an explicit walk +
``plan_from_actions`` on the song's true grid + ``render_plan``, so each
test knows exactly what was done to every beat.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from engine import actions as vocab
from engine.audio import Audio, load_audio, sha256_file, write_audio
from engine.grid import Grid
from engine.plan import plan_from_actions, plan_to_dict
from engine.render import render_plan
from training import labels as L
from training.data.synth import synth_song

DURATION_S = 24.0
TEMPO_BPM = 120.0

#: Structural walk over 48 beats (12 bars): every structural type.
STRUCT_WALK = [
    ("KEEP", "BAR", "NEUTRAL"),
    ("CUT", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("LOOP", "BAR", "NEG_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("REVERSE", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("STUTTER", "BEAT", "POS_SMALL"),
    ("KEEP", "BEAT", "NEUTRAL"),
    ("STUTTER", "BEAT", "NEG_SMALL"),
    ("KEEP", "BEAT", "NEUTRAL"),
    ("SILENCE", "BAR", "NEUTRAL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("SPEED", "BAR", "POS_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
]

#: Effects walk over 48 beats.
EFFECT_WALK = [
    ("FADE_IN", "BAR", "NEUTRAL"),
    ("GAIN", "BAR", "NEG_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("LOWPASS", "BAR", "NEG_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("DISTORTION", "BAR", "POS_SMALL"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("WIDTH", "BAR", "NEG_LARGE"),
    ("PITCH", "BAR", "POS_LARGE"),
    ("KEEP", "BAR", "NEUTRAL"),
    ("TREBLE", "BAR", "POS_LARGE"),
    ("FADE_OUT", "BAR", "NEUTRAL"),
]


def _analysis(song, path: str) -> SimpleNamespace:
    """What ``plan_from_actions`` reads, on the song's true grid."""
    n = len(song.beat_times)
    grid = Grid(
        tempo_bpm=song.tempo_bpm,
        beat_times=np.asarray(song.beat_times),
        downbeats=np.arange(0, n, 4),
        beats_per_bar=4,
        phrase_starts=np.arange(0, n, 16),
    )
    return SimpleNamespace(audio=Audio(song.samples, song.sample_rate, path), sha256=sha256_file(path), grid=grid)


def make_pair(folder: str, name: str, seed: int, walk: list[tuple[str, str, str]]) -> dict:
    """Write ``input/NAME_raw.wav``, ``desired_output/NAME_edit.wav``, ``labels/NAME.json``."""
    for d in ("input", "desired_output", "labels"):
        os.makedirs(os.path.join(folder, d), exist_ok=True)
    song = synth_song(seed, duration_s=DURATION_S, tempo_bpm=TEMPO_BPM)
    raw = os.path.join(folder, "input", f"{name}_raw.wav")
    edit = os.path.join(folder, "desired_output", f"{name}_edit.wav")
    write_audio(raw, song.samples, song.sample_rate)
    plan = plan_from_actions(_analysis(song, raw), walk)
    rendered = render_plan(plan, song.samples, song.sample_rate)
    write_audio(edit, rendered, song.sample_rate)
    label = os.path.join(folder, "labels", f"{name}.json")
    with open(label, "w", encoding="utf-8") as f:
        json.dump({"plan": plan_to_dict(plan)}, f)
    return {"raw": raw, "edit": edit, "label": label, "plan": plan_to_dict(plan), "rendered": rendered, "sr": song.sample_rate}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pairs"))
    return {
        "dir": folder,
        "struct": make_pair(folder, "struct", 11, STRUCT_WALK),
        "fx": make_pair(folder, "fx", 12, EFFECT_WALK),
    }


@pytest.fixture(scope="module")
def struct_result(corpus):
    p = corpus["struct"]
    return L.infer_pair(p["raw"], p["edit"], name="struct", cache=False)


def _scores(result: L.PairLabels, plan: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tt, ta = L.truth_on_beats(plan, result.beat_times)
    return tt, ta, result.labels[:, 0], result.labels[:, 2]


def test_structural_types_recovered(corpus, struct_result):
    res = struct_result
    assert res.alignable and res.match > 0.8
    tt, ta, pt, pa = _scores(res, corpus["struct"]["plan"])
    acc = float(np.mean(pt == tt))
    assert acc >= 0.95, f"beat accuracy {acc:.3f}"
    for name in ("CUT", "LOOP", "REVERSE", "STUTTER", "SILENCE", "SPEED"):
        sel = tt == vocab.type_index(name)
        assert sel.any()
        assert np.mean(pt[sel] == tt[sel]) >= 0.75, name
    for name in ("LOOP", "SPEED"):
        sel = (tt == vocab.type_index(name)) & (pt == tt)
        assert np.all(pa[sel] == ta[sel]), f"{name} amount"
    # the walk covers the extended grid and every beat has a valid label
    assert np.all(vocab.AMOUNT_MASK[res.labels[:, 0], res.labels[:, 2]])
    assert res.action_start.any() and len(res.walk) >= len(STRUCT_WALK) - 2


def test_inferred_plan_renders_like_the_edit(struct_result):
    d_plan, d_raw = L.render_check(struct_result)
    assert d_plan <= 0.2 * d_raw, (d_plan, d_raw)


def test_structural_splices_measured(corpus, struct_result):
    """LOOP, REVERSE, STUTTER, SILENCE and SPEED spans render from where the edit has them (within 2 ms)."""
    truth = corpus["struct"]["plan"]["segments"]
    inferred = plan_to_dict(struct_result.plan)["segments"]
    for seg in truth:
        if seg.get("action") not in ("LOOP", "REVERSE", "STUTTER", "SILENCE", "SPEED"):
            continue
        same = [s for s in inferred if s["action"] == seg["action"]]
        assert same, seg
        best = min(same, key=lambda s: abs(s["src_start_s"] - seg["src_start_s"]) + abs(s["dst_start_s"] - seg["dst_start_s"]))
        for key in ("src_start_s", "src_end_s", "dst_start_s"):
            assert abs(best[key] - seg[key]) <= 0.002, (seg["action"], key, best[key], seg[key])


def test_grid_period_is_the_line_through_the_beats():
    """Frame-quantised beats: the fitted period is within 0.1 ms of the true one, the median beat is not."""
    period = 0.4321
    hop = 512 / 22050
    beats = np.round(np.arange(64) * period / hop) * hop  # a tracker's frame grid
    assert abs(L.grid_period(beats) - period) < 1e-4
    assert abs(float(np.median(np.diff(beats))) - period) > 1e-3


def test_loop_phase_moves_a_loop_to_where_its_repeats_start():
    """A loop found one beat early (after a beat it should include) is moved to the beat its repeats start on."""
    rng = np.random.default_rng(3)
    beat = 2000  # samples at FRAME_SR
    raw = rng.standard_normal(12 * beat).astype(np.float32)
    # the edit: beat 0, then beats 1..4 played twice (LOOP BAR, one repeat), then beats 5..11
    edit = np.concatenate([raw[:beat], raw[beat : 5 * beat], raw[beat : 5 * beat], raw[5 * beat :]])
    starts = np.arange(12) * beat / L.FRAME_SR
    ends = starts + beat / L.FRAME_SR
    sec = beat / L.FRAME_SR
    slot = L.LOOP_REPEATS.index(1)
    found = [  # what the frames could not tell apart: loop of beats 0..3, then beat 4
        L.Move(0, 4, L.LOOP, slot, 0.0, 8 * sec),
        L.Move(4, 1, L.FWD, 0, 8 * sec, 9 * sec),
    ] + [L.Move(b, 1, L.FWD, 0, (b + 4) * sec, (b + 5) * sec) for b in range(5, 12)]
    fixed = L.loop_phase(raw, edit, found, starts, ends)
    assert (fixed[0].kind, fixed[0].beat) == (L.FWD, 0)
    assert (fixed[1].kind, fixed[1].beat, fixed[1].n_beats) == (L.LOOP, 1, 4)
    assert abs(fixed[1].dst_start_s - sec) < 1e-6 and abs(fixed[1].dst_end_s - 9 * sec) < 1e-6
    assert [m.beat for m in fixed[2:]] == list(range(5, 12))


def test_effects_and_amounts(corpus):
    p = corpus["fx"]
    res = L.infer_pair(p["raw"], p["edit"], name="fx", cache=False)
    assert res.alignable
    tt, ta, pt, pa = _scores(res, p["plan"])
    assert np.mean(pt == tt) >= 0.85, np.mean(pt == tt)
    for name in ("GAIN", "LOWPASS", "DISTORTION", "WIDTH", "PITCH", "TREBLE", "FADE_IN", "FADE_OUT"):
        sel = tt == vocab.type_index(name)
        assert np.mean(pt[sel] == tt[sel]) >= 0.5, name
    right = (pt == tt) & np.array([vocab.TYPES[t] not in vocab.NEUTRAL_ONLY for t in tt])
    assert np.mean(pa[right] == ta[right]) >= 0.8


def test_different_songs_are_unalignable(corpus):
    res = L.infer_pair(corpus["struct"]["raw"], corpus["fx"]["edit"], name="mixed_up", cache=False)
    assert not res.alignable
    assert "does not match" in res.reason or "no alignment" in res.reason
    assert res.labels.shape == (0, 3)


@pytest.mark.parametrize("damage", ["mp3", "48k", "gain"])
def test_damaged_edit_keeps_structure(corpus, struct_result, tmp_path, damage):
    import pedalboard
    import soxr

    p = corpus["struct"]
    y, sr = p["rendered"], p["sr"]
    if damage == "mp3":
        out = str(tmp_path / "edit.mp3")
        with pedalboard.io.AudioFile(out, "w", sr, y.shape[0], quality="128k") as f:
            f.write(y)
    elif damage == "48k":
        out = str(tmp_path / "edit.wav")
        write_audio(out, soxr.resample(y.T, sr, 48000).T.copy(), 48000)
    else:
        out = str(tmp_path / "edit.wav")
        write_audio(out, y * 10 ** (3 / 20), sr)
    assert load_audio(out).duration_s > 10
    res = L.infer_pair(p["raw"], out, name=damage, cache=False, effects=False)
    assert res.alignable
    tt, _, pt, _ = _scores(res, p["plan"])
    structural = np.isin(tt, [vocab.type_index(t) for t in L.STRUCTURAL_TYPES])
    fwd = np.isin(pt, [vocab.type_index(t) for t in vocab.TYPES if t not in L.STRUCTURAL_TYPES[1:]])
    pt = np.where(fwd, vocab.type_index("KEEP"), pt)  # effects off: forward beats are KEEP
    assert np.mean(pt[structural] == tt[structural]) >= 0.9


def test_build_dataset_writes_bc_npz_and_evaluates(corpus, tmp_path):
    from training.bc import BCData
    from training.config import AgentConfig

    out = tmp_path / "bc_rich.npz"
    report = L.build_dataset(corpus["dir"], out, evaluate=True, cache=False, quiet=True)
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
    import shutil

    from bridge.cli import main

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
    import shutil

    from bridge.cli import main
    from training.bc import BCData

    folder = tmp_path / "d"
    for d, key in (("input", "raw"), ("desired_output", "edit")):
        (folder / d).mkdir(parents=True)
        shutil.copy(corpus["struct"][key], folder / d / f"a_{key}.wav")
    out = tmp_path / "wide.npz"
    assert main(["data", "labels", "--data-dir", str(folder), "--out", str(out), "-q", "--no-cache",
                 "--window", "121", "--history", "20"]) == 0
    bc = BCData.load(out)
    assert (bc.window, bc.done.shape[1]) == (121, 20)


def _beat(ramp: tuple[float, float] | None, judged: dict[tuple[str, int], float]) -> L.BeatEffect:
    """A judged forward beat: its candidates' distances (dB) and its fade fit's gain ramp."""
    (t, slot), d = min(judged.items(), key=lambda kv: kv[1])
    return L.BeatEffect(t, slot, d, 0.1, judged, ramp)


def test_a_fade_is_one_ramp_from_or_to_silence() -> None:
    fade_in = [_beat((k / 4, (k + 1) / 4), {("FADE_IN", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(4)]
    assert L.false_fades(fade_in, [("FADE_IN", 0)] * 4) == set()
    fade_out = [_beat((1 - k / 2, 1 - (k + 1) / 2), {("FADE_OUT", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(2)]
    assert L.false_fades(fade_out, [("FADE_OUT", 0)] * 2) == set()
    assert L.false_fades(fade_out[1:], [("FADE_OUT", 0)]) == set()  # a one-beat fade-out ends at silence
    # a compressor riding each beat's level: every beat restarts its ramp
    ramps = ((0.11, 0.3), (0.11, 0.19), (0.21, 0.41))
    sawtooth = [_beat(r, {("FADE_IN", 0): 0.4, ("COMPRESS", 3): 0.5}) for r in ramps]
    labels = [("KEEP", 0), ("FADE_IN", 0), ("FADE_IN", 0), ("FADE_IN", 0)]
    assert L.false_fades([_beat(None, {("KEEP", 0): 0.1}), *sawtooth], labels) == {1, 2, 3}
    assert L.label_run(sawtooth) == [("COMPRESS", 3)] * 3
    # a fade never lifts the level, and a one-beat fade-in starts at silence
    lifting = _beat((0.9, 1.2), {("FADE_IN", 0): 0.2, ("GAIN", 3): 0.3})
    late = _beat((0.2, 0.5), {("FADE_IN", 0): 0.2, ("GAIN", 1): 0.3})
    assert L.false_fades([lifting], [("FADE_IN", 0)]) == L.false_fades([late], [("FADE_IN", 0)]) == {0}
    assert L.label_run([late]) == [("GAIN", 1)]
