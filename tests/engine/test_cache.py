"""engine.cache: misses, round trips, corrupt entries, no temp files left, location."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from editorbot.engine.cache import FeatureCache, default_cache_dir


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "features": rng.standard_normal((64, 109)).astype(np.float32),
        "beat_times": np.linspace(0.0, 30.0, 64),
        "downbeats": np.arange(0, 64, 4, dtype=np.int64),
        "tempo_bpm": np.asarray(128.0),
    }


def test_miss_then_hit_roundtrip(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    key = cache.key("ab" * 32, "cfg1")
    assert cache.get(key) is None
    cache.put(key, arrays())
    got = cache.get(key)
    want = arrays()
    assert got is not None and set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


def test_keys_separate_config_and_audio(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put(cache.key("aa", "cfg1"), arrays())
    assert cache.get(cache.key("aa", "cfg2")) is None
    assert cache.get(cache.key("bb", "cfg1")) is None
    assert cache.key("aa", "../x") == cache.key("aa", ".._x")  # never escapes the directory
    assert os.path.dirname(cache.path(cache.key("aa", "../../etc"))) == str(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"",  # empty
        lambda data: b"not a zip file at all" * 10,  # garbage
        lambda data: data[:200] + bytes(b ^ 0xFF for b in data[200:400]) + data[400:],  # bit flips
    ],
    ids=["truncated", "empty", "garbage", "bitflip"],
)
def test_corrupt_entry_is_a_miss_and_is_deleted(tmp_path, caplog, damage):
    cache = FeatureCache(tmp_path)
    key = cache.key("cd" * 32, "cfg")
    path = cache.put(key, arrays())
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(damage(data))
    with caplog.at_level(logging.WARNING, logger="editorbot.engine.cache"):
        assert cache.get(key) is None
    assert "corrupt cache entry" in caplog.text
    assert not os.path.exists(path)
    cache.put(key, arrays())  # and it can be rebuilt
    assert cache.get(key) is not None


def test_entry_copied_under_another_key_is_not_trusted(tmp_path):
    cache = FeatureCache(tmp_path)
    a, b = cache.key("aa", "cfg"), cache.key("bb", "cfg")
    os.replace(cache.put(a, arrays()), cache.path(b))
    assert cache.get(b) is None
    assert not os.path.exists(cache.path(b))


def test_put_overwrites_and_leaves_no_temp_files(tmp_path):
    cache = FeatureCache(tmp_path)
    key = cache.key("ee", "cfg")
    cache.put(key, {"x": np.zeros(3)})
    cache.put(key, {"x": np.ones(3)})
    np.testing.assert_array_equal(cache.get(key)["x"], np.ones(3))
    assert os.listdir(tmp_path) == [os.path.basename(cache.path(key))]


def test_directory_from_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "env"))
    assert FeatureCache().directory == str(tmp_path / "env")
    assert FeatureCache(tmp_path / "arg").directory == str(tmp_path / "arg")
    monkeypatch.delenv("EDITORBOT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "editorbot" / "features")


def test_reserved_name_rejected(tmp_path):
    with pytest.raises(ValueError):
        FeatureCache(tmp_path).put("k", {"__cache_key__": np.zeros(1)})
