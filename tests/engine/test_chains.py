"""engine.chains: every pedalboard built-in works in a chain with its parameters
set; external plugins load by path (and a bad path is one clear line); bad
chain files name the entry; gains and the mix."""

from __future__ import annotations

import json

import numpy as np
import pedalboard
import pytest
import soundfile as sf

from editorbot.engine.chains import StemChain, builtin_plugins, load_chain, parse_chain
from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_NAMES

SR = 44100

# Parameters given to each built-in in its test: every settable parameter at a
# value away from the default, so a parameter that is silently ignored shows.
BUILTIN_PARAMS: dict[str, dict] = {
    "Bitcrush": {"bit_depth": 4},
    "BrickwallLimiter": {"ceiling_db": -12.0, "lookahead_ms": 2.0, "release_ms": 50.0, "true_peak": True},
    "Chorus": {"rate_hz": 2.0, "depth": 0.5, "centre_delay_ms": 10.0, "feedback": 0.2, "mix": 0.7},
    "Clipping": {"threshold_db": -20.0},
    "Compressor": {"threshold_db": -30.0, "ratio": 8.0, "attack_ms": 2.0, "release_ms": 80.0},
    "Convolution": {"mix": 0.8},  # plus impulse_response_filename, written per test
    "Delay": {"delay_seconds": 0.05, "feedback": 0.4, "mix": 0.5},
    "Distortion": {"drive_db": 30.0},
    "GSMFullRateCompressor": {"quality": "ZeroOrderHold"},
    "Gain": {"gain_db": -6.0},
    "HighShelfFilter": {"cutoff_frequency_hz": 3000.0, "gain_db": -12.0, "q": 0.5},
    "HighpassFilter": {"cutoff_frequency_hz": 2000.0},
    "Invert": {},
    "LadderFilter": {"mode": "HPF24", "cutoff_hz": 1500.0, "resonance": 0.3, "drive": 2.0},
    "Limiter": {"threshold_db": -18.0, "release_ms": 50.0},
    "LowShelfFilter": {"cutoff_frequency_hz": 300.0, "gain_db": 12.0, "q": 0.5},
    "LowpassFilter": {"cutoff_frequency_hz": 500.0},
    "MP3Compressor": {"vbr_quality": 9.0},
    "NoiseGate": {"threshold_db": -10.0, "ratio": 10.0, "attack_ms": 1.0, "release_ms": 50.0},
    "PeakFilter": {"cutoff_frequency_hz": 1000.0, "gain_db": 12.0, "q": 2.0},
    "Phaser": {"rate_hz": 3.0, "depth": 0.8, "centre_frequency_hz": 1000.0, "feedback": 0.5, "mix": 0.8},
    "PitchShift": {"semitones": 5.0},
    "Resample": {"target_sample_rate": 8000.0, "quality": "Linear"},
    "Reverb": {"room_size": 0.8, "damping": 0.3, "wet_level": 0.5, "dry_level": 0.5, "width": 0.7, "freeze_mode": 0.0},
}


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """0.5 s of stereo noise with a 220 Hz tone, well above every threshold used."""
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    x = 0.2 * rng.standard_normal((2, SR // 2)) + 0.3 * np.sin(2 * np.pi * 220.0 * t)
    return x.astype(np.float32)


def test_every_builtin_has_a_test_table_entry():
    assert set(builtin_plugins()) == set(BUILTIN_PARAMS)
    for name in ("Compressor", "Reverb", "Delay", "Chorus", "Distortion", "Gain", "HighpassFilter", "LowpassFilter",
                 "LadderFilter", "Phaser", "PitchShift", "Limiter", "NoiseGate", "HighShelfFilter",
                 "LowShelfFilter", "PeakFilter", "Bitcrush", "Clipping"):  # fmt: skip
        assert name in builtin_plugins()


@pytest.mark.parametrize("name", sorted(BUILTIN_PARAMS))
def test_builtin_plugin_in_a_chain(name, noise, tmp_path):
    params = dict(BUILTIN_PARAMS[name])
    if name == "Convolution":
        ir = np.zeros(2048, np.float32)
        ir[0], ir[900] = 1.0, 0.6
        sf.write(tmp_path / "ir.wav", ir, SR, subtype="FLOAT")
        params["impulse_response_filename"] = "ir.wav"  # relative to the chain file
    chain_file = tmp_path / "chain.json"
    chain_file.write_text(json.dumps({"stems": {"drums": [{"plugin": name, "params": params}]}}))
    chain = load_chain(chain_file)
    (plugin,) = list(chain.boards["drums"])
    assert type(plugin).__name__ == name
    for key, value in params.items():
        if key == "impulse_response_filename":
            assert getattr(plugin, key) == str(tmp_path / "ir.wav")
            continue
        got = getattr(plugin, key)
        if isinstance(value, str):
            assert got.name == value, key
        else:
            assert got == pytest.approx(value, rel=1e-3, abs=1e-3), key

    stems = {s: noise for s in STEM_NAMES}
    processed, mix = chain(stems, SR)
    out = processed["drums"]
    assert out.shape == noise.shape and out.dtype == np.float32 and np.isfinite(out).all()
    for other in ("bass", "vocals", "other"):
        np.testing.assert_array_equal(processed[other], noise)
    np.testing.assert_allclose(mix, out + 3 * noise, atol=1e-5)
    if name == "Invert":
        np.testing.assert_allclose(out, -noise, atol=1e-6)
    elif name == "Gain":
        np.testing.assert_allclose(out, noise * 10 ** (-6 / 20), rtol=1e-4, atol=1e-6)
    else:
        assert np.abs(out - noise).max() > 1e-3, f"{name} left the audio unchanged"


def test_gains_and_mix(noise):
    chain = parse_chain({"gains_db": {"bass": -6.0, "vocals": 6.0}, "stems": {"other": []}})
    stems = {s: noise * (k + 1) for k, s in enumerate(STEM_NAMES)}
    processed, mix = chain(stems, SR)
    np.testing.assert_allclose(processed["bass"], stems["bass"] * 10 ** (-6 / 20), rtol=1e-5)
    np.testing.assert_allclose(processed["vocals"], stems["vocals"] * 10 ** (6 / 20), rtol=1e-5)
    np.testing.assert_array_equal(processed["drums"], stems["drums"])
    np.testing.assert_allclose(mix, sum(processed.values()), atol=1e-5)
    assert chain.describe() == ["bass: (no plugins), -6.0 dB", "vocals: (no plugins), +6.0 dB"]


def test_yaml_chain_equals_json(tmp_path):
    pytest.importorskip("yaml")
    doc = {"stems": {"vocals": [{"plugin": "Reverb", "params": {"room_size": 0.4}}]}, "gains_db": {"drums": -1.5}}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    (tmp_path / "c.yaml").write_text(
        "stems:\n  vocals:\n    - plugin: Reverb\n      params: {room_size: 0.4}\ngains_db:\n  drums: -1.5\n"
    )
    a, b = load_chain(tmp_path / "c.json"), load_chain(tmp_path / "c.yaml")
    assert a.gains_db == b.gains_db == {"drums": -1.5}
    assert b.boards["vocals"][0].room_size == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"stems": {"drums": [{"plugin": "Gain"}, {"plugin": "Reverbb"}]}},
         'chain.json: stems.drums[1]: unknown plugin "Reverbb" (did you mean Reverb?)'),
        ({"stems": {"guitar": []}}, "chain.json: stems.guitar: unknown stem (stems are drums, bass, vocals, other)"),
        ({"stems": {"bass": [{"plugin": "Compressor", "params": {"treshold_db": -3}}]}},
         "chain.json: stems.bass[0].treshold_db: Compressor has no parameter 'treshold_db'"),
        ({"stems": {"bass": [{"plugin": "Reverb", "params": {"room_size": 2.0}}]}},
         "chain.json: stems.bass[0].room_size: 2.0 refused: Room Size value must be between 0.0 and 1.0."),
        ({"stems": {"bass": [{"plugin": "Compressor", "params": {"ratio": "high"}}]}},
         "chain.json: stems.bass[0].ratio: not a finite number: 'high'"),
        ({"stems": {"bass": [{"plugin": "LadderFilter", "params": {"mode": "HPF13"}}]}},
         "chain.json: stems.bass[0].mode: 'HPF13' is not one of LPF12, HPF12, BPF12, LPF24, HPF24, BPF24"),
        ({"stems": {"bass": [{"params": {}}]}}, "chain.json: stems.bass[0]: missing 'plugin'"),
        ({"stems": {"bass": {"plugin": "Gain"}}}, "chain.json: stems.bass: must be a list of plugins"),
        ({"gains_db": {"vocals": "loud"}}, "chain.json: gains_db.vocals: not a finite number: 'loud'"),
        ({"gains_db": {"vocals": 100}}, "chain.json: gains_db.vocals: 100 dB is outside [-120, 48]"),
        ({"stem": {}}, "chain.json: stem: unknown key"),
        ([1, 2], "chain.json: a chain file holds an object"),
        ({"stems": {"bass": [{"plugin": "Convolution", "params": {"impulse_response_filename": "nope.wav"}}]}},
         "chain.json: stems.bass[0].impulse_response_filename: impulse response"),
    ],
)  # fmt: skip
def test_bad_chain_entries_are_named(doc, expected, tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(BadInput) as err:
        load_chain(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert message.replace(str(path), "chain.json", 1).startswith(expected)


def test_unreadable_chain_files(tmp_path):
    (tmp_path / "bad.json").write_text('{"stems": {"drums": [}')
    with pytest.raises(BadInput, match=r"bad.json: not valid JSON: .* line 1 column"):
        load_chain(tmp_path / "bad.json")
    with pytest.raises(BadInput, match="no such chain file"):
        load_chain(tmp_path / "missing.json")
    with pytest.raises(BadInput, match="is a directory"):
        load_chain(tmp_path)


def test_bad_vst3_paths_are_one_clear_line(tmp_path):
    here = {"source": "chain.json", "base_dir": str(tmp_path), "plugin_dirs": [tmp_path]}
    missing = {"stems": {"vocals": [{"plugin": "plugins/Nope.vst3", "params": {"mix": 0.5}}]}}
    with pytest.raises(BadInput) as err:
        parse_chain(missing, **here)
    assert str(err.value) == f"chain.json: stems.vocals[0]: plugin {tmp_path / 'plugins' / 'Nope.vst3'} does not exist"

    fake = tmp_path / "Fake.vst3"
    fake.write_bytes(b"not a plugin")
    with pytest.raises(BadInput) as err:
        parse_chain({"stems": {"drums": [{"plugin": "Fake.vst3"}]}}, **here)
    message = str(err.value)
    assert message.startswith(f"chain.json: stems.drums[0]: cannot load plugin {fake}: ")
    assert "\n" not in message

    (tmp_path / "Dir.vst3").mkdir()
    with pytest.raises(BadInput, match=r"stems.bass\[0\]: cannot load plugin .*Dir.vst3"):
        parse_chain({"stems": {"bass": ["Dir.vst3"]}}, **here)


def test_plugins_and_impulse_responses_outside_their_folders_are_never_opened(tmp_path, monkeypatch):
    """A chain naming a plugin outside the plugin folders (directly, relative, or through a link)
    is refused before pedalboard opens anything: loading a plugin runs its code."""
    plugins, elsewhere = tmp_path / "plugins", tmp_path / "elsewhere"
    plugins.mkdir()
    elsewhere.mkdir()
    evil = elsewhere / "Evil.vst3"
    evil.write_bytes(b"native code")
    (plugins / "Link.vst3").symlink_to(evil)
    opened: list[str] = []
    monkeypatch.setattr("pedalboard.load_plugin", lambda path, **kw: opened.append(path))
    for name in (str(evil), "../elsewhere/Evil.vst3", "Link.vst3"):
        doc = {"stems": {"drums": [{"plugin": name}]}}
        with pytest.raises(BadInput) as err:
            parse_chain(doc, source="chain.json", base_dir=str(plugins), plugin_dirs=[plugins])
        assert str(err.value).startswith("chain.json: stems.drums[0]: plugin ") and "outside the plugin folders" in str(err.value)
    ir = elsewhere / "ir.wav"
    sf.write(ir, np.full(4410, 0.1, np.float32), SR, subtype="FLOAT")
    doc = {"stems": {"vocals": [{"plugin": "Convolution", "params": {"impulse_response_filename": str(ir)}}]}}
    with pytest.raises(BadInput, match=r"impulse_response_filename: impulse response .*ir.wav is outside the allowed folders"):
        parse_chain(doc, source="chain.json", plugin_dirs=[plugins], file_roots=[plugins])
    assert opened == []


def test_chain_keeps_shape_and_resets_between_calls(noise):
    chain = parse_chain({"stems": {"drums": [{"plugin": "Delay", "params": {"delay_seconds": 0.1, "feedback": 0.5}}]}})
    first, _ = chain({"drums": noise}, SR)
    second, _ = chain({"drums": noise}, SR)
    np.testing.assert_array_equal(first["drums"], second["drums"])  # no tail carried over
    assert isinstance(chain.boards["drums"], pedalboard.Pedalboard)
    assert StemChain().describe() == []
