"""engine.audio: decoding every format, rates and channel counts, the bad-input
checks of DESIGN section 11, the analysis copy and atomic, protected writes."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
from pedalboard.io import AudioFile

from editorbot.engine import audio as audio_mod
from editorbot.engine.audio import Audio, analysis_mono, load_audio, sha256_file, write_audio
from editorbot.engine.errors import BadInput


def tone(sr: int, seconds: float = 1.5, n_channels: int = 2, freq_hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    """``(n_channels, n)`` float32 sine, each channel a slightly different frequency."""
    t = np.arange(int(sr * seconds)) / sr
    rows = [level * np.sin(2 * np.pi * (freq_hz + 10 * c) * t) for c in range(n_channels)]
    return np.asarray(rows, dtype=np.float32)


def clicks(sr: int, seconds: float = 2.0, every_s: float = 0.25) -> np.ndarray:
    """``(1, n)`` float32 with single-sample clicks every ``every_s`` seconds."""
    y = np.zeros((1, int(sr * seconds)), dtype=np.float32)
    y[0, :: int(sr * every_s)] = 0.9
    return y


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def bad(path, match: str, **kwargs) -> BadInput:
    """Assert that loading ``path`` raises a one-line BadInput naming it, and leaves it untouched."""
    before = digest(path) if os.path.isfile(path) else None
    with pytest.raises(BadInput) as info:
        load_audio(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert match in info.value.problem, text
    if before is not None:
        assert digest(path) == before
    return info.value


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("subtype, tol", [("PCM_16", 2.0 / 2**15), ("PCM_24", 2.0 / 2**23), ("FLOAT", 0.0)])
def test_wav_bit_depths_decode_exactly(tmp_path, subtype, tol):
    x = tone(44100)
    path = tmp_path / f"a_{subtype}.wav"
    sf.write(path, x.T, 44100, subtype=subtype)
    a = load_audio(path)
    assert a.samples.dtype == np.float32 and a.samples.shape == x.shape
    assert a.sample_rate == 44100 and a.n_channels == 2
    assert a.duration_s == pytest.approx(1.5)
    assert a.path == str(path)
    np.testing.assert_allclose(a.samples, x, atol=tol + 1e-7)


@pytest.mark.parametrize("ext", ["flac", "aiff"])
def test_lossless_formats(tmp_path, ext):
    x = tone(48000, n_channels=3)
    path = tmp_path / f"a.{ext}"
    with AudioFile(str(path), "w", 48000, 3, bit_depth=24) as f:
        f.write(x)
    a = load_audio(path)
    assert a.sample_rate == 48000 and a.samples.shape == x.shape
    np.testing.assert_allclose(a.samples, x, atol=2.0 / 2**23)


def test_ogg_decodes_to_the_same_length_and_pitch(tmp_path):
    x = tone(44100, n_channels=2, seconds=2.0)
    path = tmp_path / "a.ogg"
    with AudioFile(str(path), "w", 44100, 2) as f:
        f.write(x)
    a = load_audio(path)
    assert a.samples.shape == x.shape
    # Lossy: compare the waveform by correlation, not sample values.
    corr = np.corrcoef(a.samples[0, 4410:-4410], x[0, 4410:-4410])[0, 1]
    assert corr > 0.99


def test_mp3_padding_is_trimmed_and_clicks_line_up(tmp_path):
    sr = 44100
    x = clicks(sr)
    path = tmp_path / "c.mp3"
    with AudioFile(str(path), "w", sr, 1) as f:
        f.write(x)
    with AudioFile(str(path)) as f:
        assert f.frames > x.shape[1]  # the raw decode does carry padding
    a = load_audio(path)
    assert a.samples.shape == x.shape
    want = np.flatnonzero(x[0])
    got = np.sort(np.argsort(-np.abs(a.samples[0]))[: len(want)])
    # Never sample-exact for mp3 (DESIGN section 2): within a few samples.
    assert np.abs(got - want).max() <= 4


def test_mp3_with_id3_tags_is_sniffed_and_trimmed(tmp_path):
    sr = 44100
    x = clicks(sr)
    plain = tmp_path / "c.mp3"
    with AudioFile(str(plain), "w", sr, 1) as f:
        f.write(x)
    frame = b"TIT2" + (20).to_bytes(4, "big") + b"\x00\x00\x00" + b"t" * 19
    size = len(frame) + 300  # with 300 bytes of tag padding
    syncsafe = bytes([(size >> 21) & 127, (size >> 14) & 127, (size >> 7) & 127, size & 127])
    tagged = tmp_path / "tagged.wav"  # a misleading extension too
    tagged.write_bytes(b"ID3\x04\x00\x00" + syncsafe + frame + bytes(300) + plain.read_bytes() + b"TAG" + bytes(125))
    a = load_audio(tagged)
    assert a.samples.shape == x.shape
    assert abs(int(np.argmax(np.abs(a.samples[0, 5000:]))) + 5000 - 11025) <= 4


def test_mp3_both_decoders_agree_on_the_true_length(tmp_path):
    sr = 44100
    x = clicks(sr)
    path = tmp_path / "c.mp3"
    with AudioFile(str(path), "w", sr, 1) as f:
        f.write(x)
    info = audio_mod._mp3_header_info(str(path), os.path.getsize(path))
    pb, _, _ = audio_mod._decode_pedalboard(str(path), 1e9, info)
    sfd, _, _ = audio_mod._decode_soundfile(str(path), 1e9, info)
    assert pb.shape == sfd.shape == x.shape
    assert np.argmax(np.abs(pb[0])) == pytest.approx(np.argmax(np.abs(sfd[0])), abs=4)


def test_format_is_read_from_content_not_extension(tmp_path):
    x = tone(22050)
    path = tmp_path / "really_flac.wav"
    sf.write(path, x.T, 22050, format="FLAC")
    assert load_audio(path).samples.shape == x.shape


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000])
def test_every_sample_rate_from_8k_to_192k(tmp_path, sr):
    x = tone(sr, seconds=1.1, n_channels=1, freq_hz=1000.0)
    path = tmp_path / f"r{sr}.wav"
    sf.write(path, x.T, sr, subtype="PCM_16")
    a = load_audio(path)
    assert a.sample_rate == sr and a.samples.shape == x.shape


@pytest.mark.parametrize("n_channels", range(1, 9))
def test_one_to_eight_channels(tmp_path, n_channels):
    x = tone(16000, seconds=1.1, n_channels=n_channels)
    path = tmp_path / f"c{n_channels}.flac"
    sf.write(path, x.T, 16000)
    a = load_audio(path)
    assert a.n_channels == n_channels and a.samples.shape == x.shape


# ---------------------------------------------------------------- bad input


def test_missing_directory_empty(tmp_path):
    bad(tmp_path / "nope.wav", "no such file")
    (tmp_path / "d.wav").mkdir()
    bad(tmp_path / "d.wav", "directory")
    (tmp_path / "e.wav").write_bytes(b"")
    bad(tmp_path / "e.wav", "empty file")


def test_not_audio(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("these are my notes, not a song\n" * 40)
    bad(text, "not an audio file (it looks like text)")
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"\x00\x01" + np.random.default_rng(0).bytes(20000))
    bad(noise, "not an audio file")


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "FLAC"])
def test_truncated_lossless(tmp_path, fmt):
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(path, tone(44100, seconds=3.0).T, 44100, format=fmt, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    bad(path, "truncated")


def test_truncated_mp3(tmp_path):
    path = tmp_path / "t.mp3"
    with AudioFile(str(path), "w", 44100, 2) as f:
        f.write(tone(44100, seconds=3.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    bad(path, "truncated")


def test_wav_header_without_samples(tmp_path):
    path = tmp_path / "h.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 44100)
    bad(path, "no audio samples")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(tmp_path, value):
    x = tone(44100)
    x[1, 30000] = value
    path = tmp_path / "n.wav"
    sf.write(path, x.T, 44100, subtype="FLOAT")
    bad(path, "NaN or infinite")


def test_silence_threshold(tmp_path):
    zeros = tmp_path / "z.wav"
    sf.write(zeros, np.zeros((44100 * 2, 2), np.float32), 44100, subtype="FLOAT")
    bad(zeros, "silent")
    quiet = tmp_path / "q.wav"  # peak -100 dBFS: silence
    sf.write(quiet, tone(44100, level=1e-5).T, 44100, subtype="FLOAT")
    bad(quiet, "silent")
    soft = tmp_path / "s.wav"  # peak -80 dBFS: quiet but real
    sf.write(soft, tone(44100, level=1e-4).T, 44100, subtype="FLOAT")
    assert load_audio(soft).samples.shape == (2, 66150)


def test_too_short_and_too_long(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, tone(44100, seconds=0.5).T, 44100)
    bad(short, "too short")
    ok = tmp_path / "ok.wav"
    sf.write(ok, tone(44100, seconds=3.0).T, 44100)
    bad(ok, "too long", max_duration_s=2.0)
    assert load_audio(ok, max_duration_s=3.5).duration_s == pytest.approx(3.0)


def test_channel_and_rate_limits(tmp_path):
    many = tmp_path / "ch10.wav"
    sf.write(many, np.full((2000, 10), 0.1, np.float32), 44100)
    bad(many, "10 channels")
    low = tmp_path / "sr4k.wav"
    sf.write(low, tone(4000, seconds=2.0).T, 4000)
    bad(low, "sample rate 4000 Hz")
    high = tmp_path / "sr384k.wav"
    sf.write(high, tone(384000, seconds=1.2, n_channels=1, freq_hz=1000).T, 384000)
    bad(high, "sample rate 384000 Hz")


# ---------------------------------------------------------------- analysis copy


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_analysis_mono_is_22050_hz_and_keeps_pitch(sr):
    a = Audio(tone(sr, seconds=2.0, n_channels=2, freq_hz=440.0), sr)
    y = analysis_mono(a)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == pytest.approx(2.0 * 22050, abs=2)
    spectrum = np.abs(np.fft.rfft(y[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 22050 / len(y[2000:-2000])
    assert peak_hz == pytest.approx(445.0, abs=10.0)  # mean of 440 and 450 Hz channels


def test_analysis_mono_mixes_channels():
    x = np.zeros((2, 22050), np.float32)
    x[0] = 0.5
    y = analysis_mono(Audio(x, 22050))
    np.testing.assert_allclose(y, 0.25)


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("ext, tol", [(".wav", 0.0), (".flac", 2.0 / 2**23), (".aiff", 2.0 / 2**23)])
def test_write_roundtrip(tmp_path, ext, tol):
    x = tone(44100, n_channels=2)
    out = tmp_path / f"out{ext}"
    assert write_audio(out, x, 44100) == str(out)
    back = load_audio(out)
    assert back.sample_rate == 44100
    np.testing.assert_allclose(back.samples, x, atol=tol + 1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp files left


def test_write_replaces_atomically_and_cleans_up_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "out.wav"
    write_audio(out, tone(44100), 44100)
    first = digest(out)
    with pytest.raises(ValueError):
        write_audio(out, np.full((2, 44100), np.nan, np.float32), 44100)

    def crash_midway(file, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF half a header")
        raise OSError("disk full")

    from scipy.io import wavfile

    monkeypatch.setattr(sf, "write", crash_midway)
    monkeypatch.setattr(wavfile, "write", crash_midway)  # float WAVs are written by scipy
    with pytest.raises(OSError, match="disk full"):
        write_audio(out, tone(44100, level=0.1), 44100)
    assert digest(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_write_refuses_protected_paths(tmp_path):
    src = tmp_path / "song.wav"
    sf.write(src, tone(44100).T, 44100)
    before = digest(src)
    a = load_audio(src)
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_audio(src, a.samples, a.sample_rate, protect=[str(src)])
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_audio(src, a)  # an Audio protects its own source
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_audio(link, a)
    hard = tmp_path / "hard.wav"
    os.link(src, hard)
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_audio(hard, a.samples, 44100, protect=[src])
    assert digest(src) == before


def test_write_rejects_bad_destinations(tmp_path):
    x = tone(44100)
    with pytest.raises(BadInput, match="does not exist"):
        write_audio(tmp_path / "no" / "out.wav", x, 44100)
    with pytest.raises(BadInput, match="unknown audio extension"):
        write_audio(tmp_path / "out.xyz", x, 44100)
    with pytest.raises(ValueError, match="n_channels, n_samples"):
        write_audio(tmp_path / "out.wav", x.T, 44100)


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"editorbot" * 100_000)
    assert sha256_file(p, block_size=4096) == hashlib.sha256(p.read_bytes()).hexdigest()
