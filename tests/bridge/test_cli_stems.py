"""``editorbot stems`` and ``editorbot analyze --stems``: files written (the
stems the separator offers), the cache makes a second run skip the separation,
chains apply, --list names the stems, bad input exits 2 with one line naming
the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from editorbot.bridge.cli import main
from tests.drumkit import drum_song

SR = 44100
BUILTIN_STEMS = ("drums", "other")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDITORBOT_DEMUCS_DIR", str(tmp_path / "no-weights"))


@pytest.fixture
def song(tmp_path) -> Path:
    y, _, _ = drum_song(120.0, seconds=4.0, sr=SR, pattern="four_on_floor", seed=4)
    t = np.arange(len(y)) / SR
    bass = 0.2 * np.sin(2 * np.pi * 55.0 * t)
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([y + bass, 0.8 * y + bass], axis=1).astype(np.float32), SR, subtype="FLOAT")
    return path


def read(path: Path) -> np.ndarray:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR
    return data.T


def test_stems_writes_stems_and_mix_then_uses_the_cache(song, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["stems", str(song), "-o", str(out), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert "separator builtin (no demucs weights in" in first and "separated in" in first
    assert "offers    drums other" in first
    assert sorted(p.name for p in out.iterdir()) == ["drums.wav", "mix.wav", "other.wav"]
    mix_in = read(song)
    stems = {name: read(out / f"{name}.wav") for name in BUILTIN_STEMS}
    assert all(s.shape == mix_in.shape for s in stems.values())
    residual = sum(stems.values()) - mix_in
    assert 20 * np.log10(np.linalg.norm(residual) / np.linalg.norm(mix_in)) < -40
    np.testing.assert_allclose(read(out / "mix.wav"), sum(stems.values()), atol=1e-5)

    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"stems": {"drums": [{"plugin": "Gain", "params": {"gain_db": -6}}]},
                                 "gains_db": {"other": -120}}))  # fmt: skip
    out2 = tmp_path / "out2"
    assert main(["stems", str(song), "-o", str(out2), "--chain", str(chain), "--quiet"]) == 0
    second = capsys.readouterr().out
    assert "from cache" in second and "chain     drums: Gain" in second
    np.testing.assert_allclose(read(out2 / "drums.wav"), stems["drums"] * 10 ** (-6 / 20), rtol=1e-4, atol=1e-6)
    assert np.abs(read(out2 / "other.wav")).max() < 1e-5
    np.testing.assert_allclose(
        read(out2 / "mix.wav"), sum(read(out2 / f"{n}.wav") for n in BUILTIN_STEMS), atol=1e-5
    )


def test_list_names_the_stems_and_a_chain_on_another_stem_is_refused(song, tmp_path, capsys):
    assert main(["stems", "--list", "--separator", "builtin"]) == 0
    assert capsys.readouterr().out.splitlines() == ["separator builtin", "offers    drums other"]
    assert main(["stems", "--list"]) == 0  # auto, no weights: says why it is the built-in one
    out = capsys.readouterr().out
    assert "separator builtin (no demucs weights in" in out and "offers    drums other" in out
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"gains_db": {"vocals": -6}}))
    assert main(["stems", str(song), "-o", str(tmp_path / "o"), "--chain", str(chain), "--separator", "builtin"]) == 2
    assert one_error_line(capsys) == (
        f"editorbot: {chain}: stems.vocals: the builtin separator does not produce a vocals stem (it offers drums, other)"
    )
    assert not (tmp_path / "o").exists()
    assert main(["stems", str(song)]) == 2
    assert "-o DIR" in one_error_line(capsys)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_chain_exits_2_before_any_work(song, tmp_path, capsys):
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"stems": {"drums": [{"plugin": "Gain"}, {"plugin": "Reverbb"}]}}))
    out = tmp_path / "out"
    assert main(["stems", str(song), "-o", str(out), "--chain", str(chain)]) == 2
    assert one_error_line(capsys) == f'editorbot: {chain}: stems.drums[1]: unknown plugin "Reverbb" (did you mean Reverb?)'
    assert not out.exists()
    assert not (tmp_path / "cache").exists()  # nothing was separated


def test_bad_vst3_in_chain_exits_2(song, tmp_path, capsys):
    (tmp_path / "Broken.vst3").write_bytes(b"\0" * 64)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"stems": {"vocals": [{"plugin": "Broken.vst3", "params": {"mix": 1}}]}}))
    assert main(["stems", str(song), "-o", str(tmp_path / "out"), "--chain", str(chain), "--plugin-dir", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"editorbot: {chain}: stems.vocals[0]: cannot load plugin {tmp_path / 'Broken.vst3'}")
    # without --plugin-dir naming its folder, the plugin is never opened
    assert main(["stems", str(song), "-o", str(tmp_path / "out"), "--chain", str(chain)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"editorbot: {chain}: stems.vocals[0]: plugin {tmp_path / 'Broken.vst3'} is outside the plugin folders")


def test_demucs_without_weights_names_the_folder(song, tmp_path, capsys):
    pytest.importorskip("demucs")
    weights = tmp_path / "weights"
    weights.mkdir()
    args = ["stems", str(song), "-o", str(tmp_path / "out"), "--separator", "demucs", "--model-dir", str(weights)]
    assert main(args) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"editorbot: {weights}: no demucs weights") and "htdemucs.yaml" in line


def test_model_dir_with_a_damaged_model_file_names_it(song, tmp_path, capsys):
    pytest.importorskip("demucs")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    damaged = weights / "955717e8-8726e21a.th"
    damaged.write_bytes(b"\0" * 4096)  # e.g. a download cut short
    args = ["stems", str(song), "-o", str(tmp_path / "out"), "--separator", "demucs", "--model-dir", str(weights)]
    assert main(args) == 2
    assert one_error_line(capsys) == (
        f"editorbot: {damaged}: checksum mismatch: the name says sha256 8726e21a..., the file's is "
        "ad7facb2...; it is damaged or incomplete, copy it again"
    )
    assert not (tmp_path / "out").exists()


def test_bad_audio_and_output(tmp_path, song, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["stems", str(text), "-o", str(tmp_path / "o")]) == 2
    assert "not an audio file" in one_error_line(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["stems", str(song), "-o", str(blocker)]) == 2
    assert "must be a folder" in one_error_line(capsys)


def test_analyze_stems_gives_the_offered_stems_columns(song, tmp_path, capsys):
    npz = tmp_path / "a.npz"
    assert main(["analyze", str(song), "--stems", "--separator", "builtin", "--npz", str(npz), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stems     builtin" in out and "(115 features per beat)" in out
    with np.load(npz) as data:
        assert data["features"].shape[1] == 115
        assert list(data["feature_names"][109:]) == [
            f"stem_builtin_{s}_{f}" for s in BUILTIN_STEMS for f in ("rms", "centroid", "onset_strength")
        ]
    assert main(["analyze", str(song), "--npz", str(npz), "--quiet"]) == 0
    with np.load(npz) as data:
        assert data["features"].shape[1] == 109


def test_stems_over_osc(song, tmp_path):
    from editorbot.bridge.osc_client import OscClient
    from editorbot.bridge.server import Server, ServerConfig
    from tests.bridge.test_server import collect, submit

    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"gains_db": {"other": -6}}))
    bad_chain = tmp_path / "bad.json"
    bad_chain.write_text(json.dumps({"stems": {"drums": ["Reverbb"]}}))
    config = ServerConfig(host="127.0.0.1", port=0, out_dir=tmp_path / "out", allowed_roots=[tmp_path])
    server = Server(config).start()
    try:
        with OscClient("127.0.0.1", server.port) as c:
            options = json.dumps({"separator": "builtin", "chain": str(chain), "name": "song"})
            job = submit(c, "/editorbot/stems", str(song), options)
            done = collect(c, until_done_of=job)[-1]
            assert done[1] == "/editorbot/done", done
            folder, mix, job_id = done[2]
            assert job_id == job and Path(mix) == Path(folder) / "mix.wav"
            assert sorted(p.name for p in Path(folder).iterdir()) == sorted(f"{n}.wav" for n in (*BUILTIN_STEMS, "mix"))

            job = submit(c, "/editorbot/stems", str(song), json.dumps({"separator": "builtin", "chain": str(bad_chain)}))
            error = collect(c, until_done_of=job)[-1]
            assert error[1] == "/editorbot/error"
            assert error[2][0] == f'{bad_chain}: stems.drums[0]: unknown plugin "Reverbb" (did you mean Reverb?)'

            c.send("/editorbot/stems", str(song), json.dumps({"separator": "spleeter"}))
            reply = c.receive(5.0)
            assert reply == ("/editorbot/error", ["/editorbot/stems: separator must be one of auto, demucs, builtin"])
    finally:
        server.close()
