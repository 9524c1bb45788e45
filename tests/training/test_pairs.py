"""Pairs on disk: layout, exact labels, determinism, edit == render(label plan), user songs."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

from editorbot.engine import actions as vocab
from editorbot.engine.audio import load_audio, write_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import validate_plan
from editorbot.engine.render import render_to_file, stage_gain
from editorbot.training.data.editors import TruthLabels, truth_labels
from editorbot.training.data.pairs import (
    LABEL_SCHEMA,
    LAYOUT_DIRS,
    PairRecord,
    corpus_coverage,
    load_pair_plan,
    make_pair_from_audio,
    make_synth_pair,
    read_label_doc,
    synth_structure,
)
from editorbot.training.data.synth import synth_song

SEED = 5
STYLE = "fx_heavy"  # effects, speed and pitch on a chorus: the renderer's slow paths
DURATION_S = 20.0


def wav_bytes(path: str | os.PathLike) -> bytes:
    """A WAV file's exact bytes: writes are reproducible, with no time stamp inside."""
    return Path(path).read_bytes()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> PairRecord:
    return make_synth_pair(SEED, STYLE, tmp_path_factory.mktemp("pairs"), DURATION_S)


def test_layout_and_label_file(pair: PairRecord) -> None:
    root = Path(pair.label_path).parent.parent
    for d in LAYOUT_DIRS:
        assert (root / d).is_dir()
    assert pair.raw_path == str(root / "input" / f"{pair.name}_raw.wav")
    assert pair.edit_path == str(root / "desired_output" / f"{pair.name}_edit.wav")
    doc = read_label_doc(pair.label_path)
    assert doc["schema"] == LABEL_SCHEMA and doc["style"] == STYLE and doc["seed"] == SEED
    assert (root / doc["raw"]).is_file() and (root / doc["edit"]).is_file()
    # The plan's source is the raw file, relative to the label file.
    assert doc["plan"]["source"]["path"] == f"../input/{pair.name}_raw.wav"


def test_labels_are_the_synthesizers_truth(pair: PairRecord) -> None:
    song = synth_song(SEED, duration_s=DURATION_S)
    doc = read_label_doc(pair.label_path)
    assert doc["grid"]["source"] == "synth"
    np.testing.assert_array_equal(doc["grid"]["beat_times"], song.beat_times)
    assert doc["grid"]["downbeats"] == [int(i) for i in song.downbeats]
    assert [(s["name"], s["start_beat"], s["n_beats"]) for s in doc["sections"]] == [
        (s.name, s.start_beat, s.n_beats) for s in song.sections
    ]
    plan = load_pair_plan(pair.label_path)
    validate_plan(plan)
    labels = TruthLabels.from_dict(doc["beat_labels"])
    assert labels.n_beats == len(song.beat_times)
    recomputed = truth_labels(plan)
    for a, b in zip((labels.type_idx, labels.size_idx, labels.amount_idx), (recomputed.type_idx, recomputed.size_idx, recomputed.amount_idx), strict=True):
        np.testing.assert_array_equal(a, b)
    assert vocab.AMOUNT_MASK[labels.type_idx, labels.amount_idx].all()
    assert (labels.type_idx != vocab.ActionType.KEEP).any()


def test_structure_without_audio_matches_the_song() -> None:
    song = synth_song(SEED, duration_s=DURATION_S)
    st = synth_structure(SEED, duration_s=DURATION_S)
    np.testing.assert_allclose(st.beat_times, song.beat_times, rtol=0, atol=1e-12)
    assert [(s.name, s.start_beat, s.n_beats) for s in st.sections] == [
        (s.name, s.start_beat, s.n_beats) for s in song.sections
    ]
    assert round(st.duration_s * song.sample_rate) == song.samples.shape[1]


def test_edit_is_the_render_of_the_label_plan(pair: PairRecord, tmp_path: Path) -> None:
    """Same bytes as rendering the label plan (float, no peak ceiling: training data), and the
    same samples from `editorbot render`, turned down to the peak ceiling where the edit goes over it."""
    from editorbot.bridge.cli import main

    edit_bytes = wav_bytes(pair.edit_path)
    plan = load_pair_plan(pair.label_path)
    render_to_file(plan, tmp_path / "api.wav", subtype="FLOAT", ceiling_db=None)
    assert wav_bytes(tmp_path / "api.wav") == edit_bytes

    # The plan as its own file next to the pair, rendered by the command line.
    root = Path(pair.label_path).parent.parent
    plan_dir = root / "plans"
    plan_dir.mkdir(exist_ok=True)
    plan_file = plan_dir / f"{pair.name}.json"
    plan_file.write_text(json.dumps(read_label_doc(pair.label_path)["plan"]))
    assert main(["render", str(plan_file), "-o", str(tmp_path / "cli.wav"), "--subtype", "FLOAT", "--quiet"]) == 0
    staged, _ = stage_gain(copy.deepcopy(plan), load_audio(pair.edit_path).samples)
    assert np.array_equal(load_audio(tmp_path / "cli.wav").samples, staged)
    # And it is an edit, not a copy of the raw song.
    raw = load_audio(pair.raw_path).samples
    edit = load_audio(pair.edit_path).samples
    assert raw.shape != edit.shape or not np.array_equal(raw, edit)


def test_same_seed_same_bytes(pair: PairRecord, tmp_path: Path) -> None:
    again = make_synth_pair(SEED, STYLE, tmp_path, DURATION_S)
    for a, b in ((pair.raw_path, again.raw_path), (pair.edit_path, again.edit_path)):
        assert wav_bytes(a) == wav_bytes(b), os.path.basename(a)
    assert Path(pair.label_path).read_bytes() == Path(again.label_path).read_bytes()
    other = make_synth_pair(SEED + 1, STYLE, tmp_path, DURATION_S)
    assert wav_bytes(other.raw_path) != wav_bytes(pair.raw_path)


def test_corpus_coverage_reads_label_files(pair: PairRecord) -> None:
    root = Path(pair.label_path).parent.parent
    cov = corpus_coverage(root)
    labels = TruthLabels.from_dict(read_label_doc(pair.label_path)["beat_labels"])
    assert cov["n_beats"]["total"] == labels.n_beats
    keep = float(np.mean(labels.type_idx == vocab.ActionType.KEEP))
    assert cov["type"]["KEEP"] == pytest.approx(keep)
    with pytest.raises(BadInput, match="no label files"):
        corpus_coverage(root / "reference")


def test_pair_from_a_users_song(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    song = synth_song(9, duration_s=16.0)
    user = tmp_path / "my song.flac"
    write_audio(user, song.samples, song.sample_rate)
    rec = make_pair_from_audio(user, "dj_edit", tmp_path / "out", seed=3)
    assert rec.name == "my_song_dj_edit_s3"
    doc = read_label_doc(rec.label_path)
    assert doc["grid"]["source"] == "analysis"
    assert doc["original"]["file"] == "my song.flac"
    plan = load_pair_plan(rec.label_path)
    render_to_file(plan, tmp_path / "again.wav", subtype="FLOAT", ceiling_db=None)
    assert wav_bytes(tmp_path / "again.wav") == wav_bytes(rec.edit_path)
    assert user.is_file(), "the user's song is never touched"

    short = tmp_path / "short.wav"
    write_audio(short, song.samples[:, : song.sample_rate // 2], song.sample_rate)
    with pytest.raises(BadInput, match="too short"):
        make_pair_from_audio(short, "dj_edit", tmp_path / "out")
