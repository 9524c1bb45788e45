"""engine.analysis: file -> grid + features, the feature cache around it, outputs."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

import editorbot.engine.features
import editorbot.engine.grid
from editorbot.engine.analysis import Analysis, analyze
from editorbot.engine.audio import sha256_file
from editorbot.engine.cache import FeatureCache
from editorbot.engine.errors import BadInput
from tests.drumkit import drum_song

BPM = 120.0


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> str:
    """8 s of a 120 BPM stereo drum song at 44.1 kHz, 16-bit WAV."""
    y, _, _ = drum_song(BPM, seconds=8.0, sr=44100, seed=3)
    path = tmp_path_factory.mktemp("analysis") / "drums.wav"
    sf.write(path, np.stack([y, 0.8 * y]).T, 44100, subtype="PCM_16")
    return str(path)


@pytest.fixture
def count_grids(monkeypatch):
    """Counts beat_grid calls: each one means the grid was computed, not read from cache."""
    calls = []
    real = editorbot.engine.grid.beat_grid

    def counting(spec, **kwargs):
        calls.append(kwargs.get("tracker") or editorbot.engine.grid.default_tracker())
        return real(spec, **kwargs)

    monkeypatch.setattr(editorbot.engine.grid, "beat_grid", counting)
    return calls


def test_analysis_contents(song):
    a = analyze(song, cache=False)
    assert isinstance(a, Analysis)
    assert a.audio.samples.shape == (2, 8 * 44100) and a.audio.sample_rate == 44100
    assert a.sr == 22050 and a.y.dtype == np.float32 and a.y.shape == (8 * 22050,)
    assert a.sha256 == sha256_file(song)
    n_beats = len(a.grid.beat_times)
    assert n_beats >= 12
    assert a.features.shape == (n_beats, 109) and a.features.dtype == np.float32
    assert a.feature_names == editorbot.engine.features.feature_names() and len(a.feature_names) == 109
    assert np.isfinite(a.features).all()
    assert a.grid.tempo_bpm == pytest.approx(BPM, rel=0.03)
    s = a.summary()
    assert s["n_beats"] == n_beats and s["n_bars"] == len(a.grid.downbeats)
    assert s["n_phrases"] == len(a.grid.phrase_starts) and s["duration_s"] == pytest.approx(8.0)
    assert s["tempo_bpm"] == pytest.approx(a.grid.tempo_bpm)
    rms = a.features[:, a.feature_names.index("rms")]
    assert s["features"]["rms"]["mean"] == pytest.approx(float(rms.mean()), rel=1e-6)
    json.dumps(s)  # plain JSON types only


def test_cache_hit_is_equal_and_faster(song, tmp_path, count_grids):
    cache = FeatureCache(tmp_path / "cache")
    analyze(song, cache=False)  # imports and lazy tables warm, so the timings compare the work
    count_grids.clear()
    t0 = time.perf_counter()
    cold = analyze(song, cache=cache)
    t1 = time.perf_counter()
    warm = analyze(song, cache=cache)
    t2 = time.perf_counter()
    assert len(count_grids) == 1  # the second call did not recompute
    assert t2 - t1 < t1 - t0
    np.testing.assert_array_equal(warm.features, cold.features)
    np.testing.assert_array_equal(warm.grid.beat_times, cold.grid.beat_times)
    np.testing.assert_array_equal(warm.grid.downbeats, cold.grid.downbeats)
    np.testing.assert_array_equal(warm.grid.phrase_starts, cold.grid.phrase_starts)
    assert warm.grid.tempo_bpm == cold.grid.tempo_bpm
    assert warm.grid.beats_per_bar == cold.grid.beats_per_bar
    assert warm.grid.confidence == cold.grid.confidence
    # the audio is decoded either way: rendering needs it
    np.testing.assert_array_equal(warm.audio.samples, cold.audio.samples)


def test_config_change_is_a_miss(song, tmp_path, count_grids, monkeypatch):
    cache = FeatureCache(tmp_path)
    analyze(song, cache=cache)
    analyze(song, cache=cache)
    assert len(count_grids) == 1
    monkeypatch.setattr(editorbot.engine.features, "config_hash", lambda: "a-different-feature-config")
    analyze(song, cache=cache)
    assert len(count_grids) == 2
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".npz")]) == 2


def test_changed_audio_is_a_miss(song, tmp_path, count_grids):
    cache = FeatureCache(tmp_path / "c")
    other = tmp_path / "louder.wav"
    x, sr = sf.read(song, dtype="float32")
    sf.write(other, 1.1 * x, sr, subtype="PCM_16")
    analyze(song, cache=cache)
    analyze(other, cache=cache)
    assert len(count_grids) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape"])
def test_corrupt_entry_is_recomputed_and_replaced(song, tmp_path, count_grids, damage):
    cache = FeatureCache(tmp_path)
    first = analyze(song, cache=cache)
    (entry,) = [os.path.join(tmp_path, n) for n in os.listdir(tmp_path)]
    if damage == "garbage":
        with open(entry, "wb") as f:
            f.write(b"\x00garbage" * 100)
    elif damage == "truncated":
        data = open(entry, "rb").read()
        with open(entry, "wb") as f:
            f.write(data[: len(data) // 3])
    else:  # a readable entry whose arrays do not fit together
        key = os.path.basename(entry)[: -len(".npz")]
        arrays = cache.get(key)
        arrays["features"] = arrays["features"][:, :50]
        cache.put(key, arrays)
    again = analyze(song, cache=cache)
    assert len(count_grids) == 2
    np.testing.assert_array_equal(again.features, first.features)
    key = os.path.basename(entry)[: -len(".npz")]
    assert cache.get(key)["features"].shape == first.features.shape  # replaced by a good entry


def test_cache_flag_and_env(song, tmp_path, monkeypatch):
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "env"))
    analyze(song, cache=False)
    assert not (tmp_path / "env").exists()
    analyze(song)  # cache=True: the default cache under $EDITORBOT_CACHE
    assert len(os.listdir(tmp_path / "env")) == 1


def test_the_tracker_comes_from_the_argument_or_the_environment_and_keys_the_cache(
    song, tmp_path, count_grids, monkeypatch
):
    cache = FeatureCache(tmp_path / "c")
    monkeypatch.delenv("EDITORBOT_TRACKER", raising=False)
    onset = analyze(song, cache=cache, tracker="onset")
    learned = analyze(song, cache=cache)
    assert (onset.tracker, learned.tracker) == ("onset", "learned")
    assert learned.summary()["tracker"] == "learned"
    assert count_grids == ["onset", "learned"]  # two cache entries, neither served for the other
    assert abs(learned.grid.tempo_bpm - BPM) < 2.0
    monkeypatch.setenv("EDITORBOT_TRACKER", "onset")
    again = analyze(song, cache=cache)
    assert again.tracker == "onset" and count_grids == ["onset", "learned"]  # a hit
    np.testing.assert_array_equal(again.grid.beat_times, onset.grid.beat_times)
    monkeypatch.setenv("EDITORBOT_TRACKER", "madmom")
    with pytest.raises(BadInput, match="EDITORBOT_TRACKER=madmom: unknown beat tracker"):
        analyze(song, cache=cache)
    with pytest.raises(BadInput, match="unknown beat tracker"):
        analyze(song, cache=cache, tracker="madmom")


def test_save_json_and_npz(song, tmp_path):
    before = sha256_file(song)
    a = analyze(song, cache=False)
    doc = json.loads(open(a.save_json(tmp_path / "a.json")).read())
    assert doc["schema"] == "editorbot.analysis/1"
    assert doc["feature_names"] == a.feature_names
    np.testing.assert_allclose(np.asarray(doc["features"], dtype=np.float32), a.features)
    assert doc["grid"]["beat_times"] == pytest.approx(a.grid.beat_times.tolist())
    assert doc["summary"]["n_beats"] == len(a.grid.beat_times)
    assert 0.0 <= doc["grid"]["confidence"] == a.grid.confidence <= 1.0
    assert doc["summary"]["grid_confidence"] == a.grid.confidence
    with np.load(a.save_npz(tmp_path / "a.npz"), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["features"], a.features)
        np.testing.assert_array_equal(npz["downbeats"], a.grid.downbeats)
        assert list(npz["feature_names"]) == a.feature_names
        assert str(npz["sha256"]) == a.sha256
    for save in (a.save_json, a.save_npz):
        with pytest.raises(BadInput, match="refusing to overwrite"):
            save(song)
    assert sha256_file(song) == before
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.npz"]


def test_channels_that_cancel_out_are_bad_input(tmp_path):
    y, _, _ = drum_song(BPM, seconds=3.0, sr=22050)
    path = tmp_path / "phase.wav"
    sf.write(path, np.stack([y, -y]).T, 22050, subtype="FLOAT")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(BadInput, match="cancel out"):
        analyze(path, cache=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_the_cache_key_covers_every_module_behind_the_grid_and_features(monkeypatch) -> None:
    """Every engine module that grid, spectrum or features import is hashed; a change to one changes the key."""
    import ast
    from pathlib import Path

    from editorbot.engine import analysis

    engine_dir = Path(analysis.__file__).resolve().parent
    seen, todo = set(), ["spectrum", "grid", "features"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((engine_dir / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("editorbot.engine"):
                parts = node.module.split(".")[2:] or [a.name for a in node.names]
                todo += [p for p in parts if (engine_dir / f"{p}.py").exists()]
    # errors/audio/atomic hold no numbers of the analysis; everything else must be keyed
    assert seen - {"errors", "audio", "atomic", "formats"} <= set(analysis.CACHED_CODE)

    before = analysis.analysis_config_hash()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: real(p) + (b"#" if p.name == "metre.py" else b""))
    analysis._code_fingerprint.cache_clear()
    try:
        assert analysis.analysis_config_hash() != before
    finally:
        monkeypatch.undo()
        analysis._code_fingerprint.cache_clear()
