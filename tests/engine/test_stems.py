"""engine.stems and engine.demucs_separator: the built-in separator's stems add
back up to the mix and land where they should; a real HTDemucs saved the way
demucs saves models loads from a folder and separates; missing weights fail
at once with the folder named; stems are cached; the built-in separator
offers only the stems that beat mix/4 by 3 dB SDR on the synthesizer's dry
stems, and --stems feature columns name the separator and stem."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import soundfile as sf

from editorbot.engine.analysis import analyze
from editorbot.engine.cache import FeatureCache
from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_NAMES, feature_names, stem_column_names
from editorbot.engine.stems import (
    BuiltinSeparator,
    Separator,
    StemCache,
    istft,
    median9,
    separate_cached,
    separator_for,
    stem_columns,
    stft,
)
from editorbot.training.data.synth import synth_stems
from tests.drumkit import drum_song

SR = 44100


def error_db(stems: dict[str, np.ndarray], mix: np.ndarray) -> float:
    residual = sum(stems.values()) - mix
    return 20.0 * np.log10(np.linalg.norm(residual) / np.linalg.norm(mix))


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


def tone(freq_hz: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_median9_is_the_dilated_median_filter(axis, dilation):
    x = np.random.default_rng(axis * 10 + dilation).random((130, 97)).astype(np.float32)
    footprint = np.zeros((8 * dilation + 1, 1) if axis == 0 else (1, 8 * dilation + 1), dtype=bool)
    if axis == 0:
        footprint[::dilation, 0] = True
    else:
        footprint[0, ::dilation] = True
    expected = scipy.ndimage.median_filter(x, footprint=footprint, mode="mirror")
    np.testing.assert_array_equal(median9(x, axis=axis, dilation=dilation), expected)


@pytest.mark.parametrize("n_samples", [44100, 44100 + 333])
def test_istft_inverts_stft(n_samples):
    x = np.random.default_rng(1).standard_normal((2, n_samples)).astype(np.float32)
    spec = stft(x, n_fft=2048, hop_length=512)
    y = istft(spec, n_fft=2048, hop_length=512, length=n_samples)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() < 1e-5


# --------------------------------------------------------------------------- built-in separator


@pytest.mark.parametrize(
    ("n_channels", "sr"), [(2, 44100), (1, 22050), (3, 48000)], ids=["stereo-44k", "mono-22k", "3ch-48k"]
)
def test_builtin_stems_sum_back_to_the_mix(n_channels, sr):
    rng = np.random.default_rng(n_channels)
    drums, _, _ = drum_song(120.0, seconds=3.0, sr=sr, seed=n_channels)
    mix = np.stack([drums * (1.0 - 0.2 * c) + 0.05 * rng.standard_normal(len(drums)) for c in range(n_channels)])
    mix = (mix + tone(220.0, 3.0, sr)[: mix.shape[1]]).astype(np.float32)
    stems = BuiltinSeparator().separate(mix, sr)
    assert list(stems) == list(BuiltinSeparator.stems) == ["drums", "other"]
    for name, stem in stems.items():
        assert stem.shape == mix.shape and stem.dtype == np.float32, name
        assert np.isfinite(stem).all(), name
    assert error_db(stems, mix) < -40.0
    # the masks are not trivial: no stem holds everything
    assert all(energy(s) < 0.95 * energy(mix) for s in stems.values())


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    err = reference.astype(np.float64) - estimate
    return 10.0 * np.log10(energy(reference) / float(np.sum(err * err)))


def test_builtin_stems_beat_mix_over_4_by_3_db_on_synth_stems():
    """What bench/stems.py measures, on one short song: every stem offered earns its place."""
    truth = synth_stems(2, duration_s=16.0)
    mix = sum(truth.values())
    stems = BuiltinSeparator().separate(mix, SR)
    references = {"drums": truth["drums"], "other": truth["bass"] + truth["other"]}
    for name, ref in references.items():
        assert sdr_db(ref, stems[name]) >= sdr_db(ref, mix / 4.0) + 3.0, name


def test_builtin_puts_each_kind_of_sound_in_its_stem():
    sep = BuiltinSeparator()
    drums, _, _ = drum_song(110.0, seconds=4.0, sr=SR, pattern="backbeat", seed=3, accent_downbeat=False)
    cases = {
        "drums": np.stack([drums, drums]),  # kick body included
        "other": np.stack([tone(70.0, 4.0) + tone(700.0, 4.0), tone(70.0, 4.0)]),  # held bass and a held tone
    }
    for expected, mix in cases.items():
        stems = sep.separate(mix.astype(np.float32), SR)
        shares = {name: energy(s) / energy(mix) for name, s in stems.items()}
        assert max(shares, key=shares.get) == expected, (expected, shares)
        assert shares[expected] > 0.6, (expected, shares)


# --------------------------------------------------------------------------- demucs


@pytest.fixture
def one_thread():
    """One torch thread: on a busy shared CPU, torch's spinning workers cost far more than they give."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_like_demucs(model, folder: Path, signature: str, bag: str = "htdemucs") -> Path:
    """A model package as demucs' serialize_model + save_with_checksum writes it, and a bag yaml naming it."""
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs
    package = {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=True),
        "training_args": {},
    }
    save_with_checksum(package, folder / f"{signature}.th")
    (folder / f"{bag}.yaml").write_text(f"models: ['{signature}']\n")
    (path,) = folder.glob(f"{signature}-*.th")
    return path


@pytest.fixture(scope="module")
def small_htdemucs():
    """A real HTDemucs (the full 4-level hybrid architecture, few channels, 2 s segments), random weights."""
    pytest.importorskip("demucs", reason="the stems extra (make install installs it)")
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(
            ["drums", "bass", "other", "vocals"], channels=4, dconv_comp=4, t_layers=1, t_heads=4, segment=Fraction(2)
        )
    return model.eval()


def test_demucs_loads_saved_weights_and_separates(small_htdemucs, tmp_path, one_thread, monkeypatch):
    import torch

    from editorbot.engine.demucs_separator import DemucsSeparator

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = save_like_demucs(small_htdemucs, tmp_path, "0badc0de")
    sep = DemucsSeparator(tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert sep.name == "demucs htdemucs"
    assert sep.weights.files == [path]
    loaded = sep.model
    assert type(loaded).__name__ == "HTDemucs" and loaded.sources == ["drums", "bass", "other", "vocals"]
    for key, saved in small_htdemucs.state_dict().items():  # the saved (half precision) weights came back
        torch.testing.assert_close(loaded.state_dict()[key], saved.half().float(), msg=key)

    rng = np.random.default_rng(5)
    mix = (0.1 * rng.standard_normal((2, 5 * SR))).astype(np.float32)
    stems = sep.separate(mix, SR)
    assert list(stems) == list(STEM_NAMES)
    for name, stem in stems.items():
        assert stem.shape == (2, 5 * SR) and stem.dtype == np.float32 and np.isfinite(stem).all(), name
        assert energy(stem) > 0.0, name
    # the segments overlap-add smoothly: no jump at a segment boundary (1.5 s hop)
    joint = int(1.5 * SR)
    assert np.abs(np.diff(stems["drums"][:, joint - 2 : joint + 2])).max() < 10 * np.abs(mix).max()


def test_demucs_mono_at_another_rate_keeps_the_shape(small_htdemucs, tmp_path, one_thread, monkeypatch):
    from editorbot.engine.demucs_separator import DemucsSeparator

    save_like_demucs(small_htdemucs, tmp_path, "0badc0de")
    monkeypatch.setenv("EDITORBOT_DEMUCS_DIR", str(tmp_path))
    sep = separator_for("auto")
    assert isinstance(sep, DemucsSeparator) and sep.note is None
    mix = (0.1 * np.random.default_rng(6).standard_normal((1, 3 * 22050))).astype(np.float32)
    stems = sep.separate(mix, 22050)
    assert all(s.shape == mix.shape for s in stems.values())


def test_missing_weights_fail_at_once_naming_the_folder(tmp_path, monkeypatch):
    pytest.importorskip("demucs")
    from editorbot.engine.demucs_separator import DemucsSeparator

    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(BadInput) as err:
        DemucsSeparator(empty)
    message = str(err.value)
    assert message.startswith(str(empty)) and "htdemucs.yaml" in message and "\n" not in message
    with pytest.raises(BadInput, match="does not exist"):
        separator_for("demucs", tmp_path / "nowhere")

    monkeypatch.setenv("EDITORBOT_DEMUCS_DIR", str(empty))
    auto = separator_for("auto")
    assert isinstance(auto, BuiltinSeparator) and str(empty) in auto.note


def test_bag_naming_a_missing_model_and_bad_checksum(small_htdemucs, tmp_path):
    from editorbot.engine.demucs_separator import DemucsSeparator

    (tmp_path / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    with pytest.raises(BadInput, match="names model 955717e8"):
        DemucsSeparator(tmp_path)
    (tmp_path / "htdemucs.yaml").unlink()
    path = save_like_demucs(small_htdemucs, tmp_path, "0badc0de")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BadInput) as err:
        DemucsSeparator(tmp_path)
    checksum = path.stem.split("-")[1]
    assert str(err.value).startswith(f"{path}: checksum mismatch: the name says sha256 {checksum}..., the file's is ")
    assert "\n" not in str(err.value)


def test_bag_under_its_own_name_loads(small_htdemucs, tmp_path, one_thread):
    """A folder holding htdemucs_ft.yaml (say) and its files is that bag, with no htdemucs.yaml beside it."""
    from editorbot.engine.demucs_separator import DemucsSeparator

    first = save_like_demucs(small_htdemucs, tmp_path, "0badc0de", bag="mybag")
    second = save_like_demucs(small_htdemucs, tmp_path, "1badc0de", bag="mybag")
    (tmp_path / "mybag.yaml").write_text("models: ['0badc0de', '1badc0de']\n")
    sep = DemucsSeparator(tmp_path)
    assert sep.name == "demucs mybag" and sep.weights.files == [first, second]
    assert type(sep.model).__name__ == "BagOfModels"


# --------------------------------------------------------------------------- cache and features


class CountingSeparator(BuiltinSeparator):
    calls = 0

    def separate(self, samples, sample_rate):
        type(self).calls += 1
        return super().separate(samples, sample_rate)


def test_stems_are_cached_per_file_and_separator(tmp_path):
    mix = np.stack([tone(300.0, 2.0), tone(310.0, 2.0)])
    cache = StemCache(tmp_path)
    sep = CountingSeparator()
    first, hit1 = separate_cached(mix, SR, sep, audio_sha256="ab" * 32, cache=cache)
    second, hit2 = separate_cached(mix, SR, sep, audio_sha256="ab" * 32, cache=cache)
    assert (hit1, hit2) == (False, True) and CountingSeparator.calls == 1
    assert list(first) == list(second) == list(sep.stems)
    for name in sep.stems:
        np.testing.assert_array_equal(first[name], second[name])
    # another separator setting is another entry
    _, hit3 = separate_cached(mix, SR, CountingSeparator(harmonic_span_s=0.3), audio_sha256="ab" * 32, cache=cache)
    assert not hit3 and CountingSeparator.calls == 2
    # a damaged entry is recomputed, never trusted
    entry = cache.store.path(StemCache.key("ab" * 32, sep))
    Path(entry).write_bytes(Path(entry).read_bytes()[:1000])
    _, hit4 = separate_cached(mix, SR, sep, audio_sha256="ab" * 32, cache=cache)
    assert not hit4 and CountingSeparator.calls == 3


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> str:
    y, _, _ = drum_song(120.0, seconds=6.0, sr=SR, pattern="backbeat", seed=2)
    bass = tone(55.0, 6.0)
    path = tmp_path_factory.mktemp("stems") / "song.wav"
    sf.write(path, np.stack([y + bass, 0.9 * y + bass], axis=1), SR, subtype="FLOAT")
    return str(path)


def test_analyze_with_stems_uses_the_stems_the_separator_offers(song, tmp_path):
    cache = FeatureCache(tmp_path)
    plain = analyze(song, cache=cache)
    with_stems = analyze(song, cache=cache, stems=True, separator=BuiltinSeparator())
    names = list(stem_column_names("builtin", ("drums", "other")))
    assert names[0] == "stem_builtin_drums_rms" and names[-1] == "stem_builtin_other_onset_strength"
    assert with_stems.features.shape == (plain.n_beats, 109 + 6)
    assert with_stems.feature_names == feature_names(stems=names)
    assert with_stems.separator == "builtin" and with_stems.summary()["separator"] == "builtin"
    np.testing.assert_array_equal(with_stems.features[:, :109], plain.features)
    stem_block = with_stems.features[:, 109:]
    assert np.isfinite(stem_block).all()
    rms = {s: stem_block[:, names.index(f"stem_builtin_{s}_rms")] for s in ("drums", "other")}
    centroid = {s: stem_block[:, names.index(f"stem_builtin_{s}_centroid")] for s in ("drums", "other")}
    assert rms["drums"].mean() > 0 and rms["other"].mean() > 0
    assert centroid["other"].mean() < centroid["drums"].mean()  # the held 55 Hz bass
    # both entries live side by side in the cache; the stems too
    again = analyze(song, cache=cache, stems=True, separator=BuiltinSeparator())
    np.testing.assert_array_equal(again.features, with_stems.features)
    assert analyze(song, cache=cache).features.shape[1] == 109
    assert any((tmp_path / "stems").iterdir())


def test_stem_columns_pool_like_the_features(song):
    a = analyze(song, cache=False)
    stems = {name: a.audio.samples * (k + 1) / 10 for k, name in enumerate(STEM_NAMES)}
    cols = stem_columns(stems, a.audio.sample_rate, a.grid)
    assert cols.shape == (a.n_beats, 12)
    assert stem_columns({"other": stems["other"], "drums": stems["drums"]}, a.audio.sample_rate, a.grid).shape == (
        a.n_beats,
        6,
    )
    # a stem that is the mix scaled by g has the mix's rms scaled by g and its centroid
    rms = a.features[:, a.feature_names.index("rms")]
    centroid = a.features[:, a.feature_names.index("centroid")]
    for k in range(len(STEM_NAMES)):
        np.testing.assert_allclose(cols[:, 3 * k], rms * (k + 1) / 10, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(cols[:, 3 * k + 1], centroid, rtol=1e-3)


def test_separator_interface():
    assert issubclass(BuiltinSeparator, Separator)
    with pytest.raises(BadInput, match="unknown separator"):
        separator_for("spleeter")
    with pytest.raises(ValueError):
        BuiltinSeparator().separate(np.zeros((44100, 2), np.float32), SR)
