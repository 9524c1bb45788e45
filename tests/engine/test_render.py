"""engine.render: every segment behaviour measured on short generated audio."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from editorbot.engine.actions import CUTOFF_MAX_FRACTION, EFFECT_RANGES, PITCH_RANGE_SEMITONES, RATE_RANGE
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, Effect, Grid, Segment, Source, plan_from_dict, plan_to_dict
from editorbot.engine.render import CROSSFADE_S, EFFECTS, MAX_TAIL_S, Width, build_chain, render_plan

SR = 44_100
BEAT_S = 0.5  # 120 bpm
BAR_S = 4 * BEAT_S
XF = round(CROSSFADE_S * SR)  # splice crossfade, samples


# ----------------------------------------------------------------- signals


def sine(freq_hz: float, duration_s: float, *, sr: int = SR, n_channels: int = 2, amp: float = 0.5) -> np.ndarray:
    """``(n_channels, n)`` sine, channel c with phase offset c (so channels differ)."""
    t = np.arange(round(duration_s * sr)) / sr
    return np.stack([amp * np.sin(2 * np.pi * freq_hz * t + c) for c in range(n_channels)]).astype(np.float32)


def noise(duration_s: float, *, sr: int = SR, n_channels: int = 2, seed: int = 0) -> np.ndarray:
    """``(n_channels, n)`` independent white noise, rms 0.1."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n_channels, round(duration_s * sr)))).astype(np.float32)


def drum_chord_mix(duration_s: float, *, attack_s: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """``(2, n)`` kick/snare on the beats (120 bpm) over a bass and a chord per bar.

    ``attack_s`` is the drums' attack ramp; the right channel is the left
    delayed by 7 samples at 0.9 gain.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * sr)
    y = np.zeros(n)
    b_lo, a_lo = butter(2, 3000 / (sr / 2))
    n_beats = int(duration_s / BEAT_S)
    for beat in range(n_beats):
        start = round(beat * BEAT_S * sr)
        length = min(round(0.4 * sr), n - start)
        k = np.arange(length) / sr
        env = np.minimum(1.0, k / attack_s)
        if beat % 2 == 0:  # kick: falling sine sweep
            freq = 50 + 70 * np.exp(-k / 0.03)
            y[start : start + length] += 0.6 * np.sin(2 * np.pi * np.cumsum(freq) / sr) * env * np.exp(-k / 0.12)
        else:  # snare: filtered noise and a body tone
            body = 0.25 * lfilter(b_lo, a_lo, rng.standard_normal(length)) + 0.2 * np.sin(2 * np.pi * 190 * k)
            y[start : start + length] += body * env * np.exp(-k / 0.06)
    roots = (220.0, 174.6, 261.6, 196.0)
    for bar in range(int(np.ceil(n_beats / 4))):
        start, end = round(bar * BAR_S * sr), min(n, round((bar + 1) * BAR_S * sr))
        k = np.arange(end - start) / sr
        root = roots[bar % 4]
        ramp = np.minimum(1, k / 0.01) * np.minimum(1, (k[-1] - k) / 0.01)
        chord = sum(np.sin(2 * np.pi * root * m * k + m) + 0.3 * np.sin(4 * np.pi * root * m * k) for m in (1, 1.26, 1.5))
        y[start:end] += (0.08 * chord + 0.2 * np.sin(2 * np.pi * root / 4 * k)) * ramp
    return np.stack([y, 0.9 * np.roll(y, 7)]).astype(np.float32)


# ----------------------------------------------------------------- plans


def make_plan(segments: list[Segment], samples: np.ndarray, sr: int = SR) -> EditPlan:
    return EditPlan(
        source=Source("source.wav", "0" * 64, sr, samples.shape[0], samples.shape[1] / sr),
        grid=Grid(120.0, [], []),
        segments=segments,
    )


def timeline(spans: list[tuple[float, float, dict]]) -> list[Segment]:
    """Segments laid end to end: ``(src_start_s, src_end_s, extra Segment fields)``."""
    segments, dst = [], 0.0
    for start, end, extra in spans:
        seg = Segment(src_start_s=start, src_end_s=end, dst_start_s=dst, **extra)
        segments.append(seg)
        dst += seg.length_s
    return segments


def render(spans: list[tuple[float, float, dict]], samples: np.ndarray, sr: int = SR) -> np.ndarray:
    return render_plan(make_plan(timeline(spans), samples, sr), samples, sr)


def s2i(t: float, sr: int = SR) -> int:
    return round(t * sr)


# ----------------------------------------------------------------- measures


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def peak_hz(x: np.ndarray, sr: int = SR) -> float:
    """Frequency of the largest spectral peak of mono ``x``, refined by parabolic interpolation."""
    x = x * np.hanning(len(x))
    mag = np.abs(np.fft.rfft(x, 8 * len(x)))
    k = int(np.argmax(mag))
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    k_exact = k + 0.5 * (a - c) / (a - 2 * b + c)
    return k_exact * sr / (8 * len(x))


def centroid_hz(x: np.ndarray, sr: int = SR) -> float:
    mag = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float((freqs * mag).sum() / mag.sum())


def band_energy(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int = SR) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float(power[(freqs >= lo_hz) & (freqs < hi_hz)].sum())


def thd(x: np.ndarray, f0: float, sr: int = SR) -> float:
    """Harmonic (2..10) to fundamental amplitude ratio."""
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)

    def around(f: float) -> float:
        return float(power[np.abs(freqs - f) < 20].sum())

    return float(np.sqrt(sum(around(h * f0) for h in range(2, 11)) / around(f0)))


def interior(x: np.ndarray, start_s: float, end_s: float, *, margin: int = XF, sr: int = SR) -> np.ndarray:
    """Output samples of ``[start_s, end_s)`` without the splice crossfades at its edges."""
    return x[..., s2i(start_s, sr) + margin : s2i(end_s, sr) - margin]


# ----------------------------------------------------------------- exactness and lengths


def test_all_keep_plan_reproduces_source_bit_exactly():
    src = drum_chord_mix(6.0, attack_s=0.004)
    spans = [(i * BEAT_S, (i + 1) * BEAT_S, {}) for i in range(12)]
    out = render(spans, src)
    assert out.dtype == np.float32
    assert np.array_equal(out, src)


@pytest.mark.parametrize(("n_channels", "sr"), [(1, 44_100), (2, 44_100), (6, 48_000), (2, 48_000)])
def test_output_keeps_rate_channels_and_exact_length(n_channels, sr):
    src = noise(4.0, sr=sr, n_channels=n_channels)
    spans = [
        (0.0, 0.5, {}),
        (1.0, 1.5, {"reverse": True}),
        (1.0, 1.5, {"effects": [Effect("reverb", {"room_size": 0.5, "wet": 0.3}), Effect("width", {"width": 0.0})]}),
        (2.0, 2.5, {"mute": True}),
        (2.5, 3.0, {"rate": 1.25}),
        (3.0, 3.5, {"gain_db": -3.0, "fade_out_s": 0.2}),
    ]
    plan = make_plan(timeline(spans), src, sr)
    out = render_plan(plan, src, sr)
    assert out.shape == (n_channels, round(plan.duration_s * sr))
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    if n_channels == 6:  # width moves only the front pair
        seg = interior(out, 1.0, 1.5, margin=s2i(CROSSFADE_S, sr), sr=sr)
        np.testing.assert_allclose(seg[0], seg[1], atol=1e-6)
        assert not np.allclose(seg[2], seg[3])


def test_cut_of_a_bar_shortens_by_exactly_one_bar_and_shifts_the_rest():
    src = drum_chord_mix(8.0, attack_s=0.004)
    out = render([(0.0, BAR_S, {}), (2 * BAR_S, 4 * BAR_S, {})], src)
    assert abs((src.shape[1] - out.shape[1]) / SR - BAR_S) <= 1e-3
    np.testing.assert_array_equal(out[:, s2i(BAR_S) + XF :], src[:, s2i(2 * BAR_S) + XF :])
    np.testing.assert_array_equal(out[:, : s2i(BAR_S) - XF], src[:, : s2i(BAR_S) - XF])


def test_loop_repeats_the_bar_sample_exactly_apart_from_crossfades():
    src = drum_chord_mix(6.0, attack_s=0.004)
    spans = [(0.0, BAR_S, {}), (BAR_S, 2 * BAR_S, {}), (BAR_S, 2 * BAR_S, {}), (BAR_S, 2 * BAR_S, {}), (2 * BAR_S, 3 * BAR_S, {})]
    out = render(spans, src)
    assert out.shape[1] == src.shape[1] + 2 * s2i(BAR_S)
    bar = src[:, s2i(BAR_S) + XF : s2i(2 * BAR_S) - XF]
    for k in (1, 2, 3):
        np.testing.assert_array_equal(out[:, s2i(k * BAR_S) + XF : s2i((k + 1) * BAR_S) - XF], bar)
    # the splice itself is a blend of both sides, not a copy of either
    splice = out[:, s2i(2 * BAR_S) - XF // 4 : s2i(2 * BAR_S) + XF // 4]
    assert not np.array_equal(splice, src[:, s2i(2 * BAR_S) - XF // 4 : s2i(2 * BAR_S) + XF // 4])


def test_stutter_repeats_a_slice():
    src = drum_chord_mix(4.0, attack_s=0.004)
    slice_s = BEAT_S / 4
    spans = [(0.0, BEAT_S, {})] + [(BEAT_S, BEAT_S + slice_s, {"action": "STUTTER"})] * 4 + [(2 * BEAT_S, 4.0, {})]
    out = render(spans, src)
    want = src[:, s2i(BEAT_S) + XF : s2i(BEAT_S + slice_s) - XF - 1]
    for k in range(4):
        start = s2i(BEAT_S + k * slice_s) + XF  # slices are 5512 or 5513 samples (rounded positions)
        np.testing.assert_array_equal(out[:, start : start + want.shape[1]], want)
    assert out.shape == src.shape  # four slices fill the beat they replace


def test_reverse_plays_the_span_backwards():
    src = drum_chord_mix(4.0, attack_s=0.004)
    out = render([(0.0, 1.0, {}), (1.0, 2.0, {"reverse": True}), (2.0, 4.0, {})], src)
    assert out.shape == src.shape
    want = src[:, s2i(1.0) : s2i(2.0)][:, ::-1]
    np.testing.assert_array_equal(out[:, s2i(1.0) + XF : s2i(2.0) - XF], want[:, XF:-XF])


def test_contiguous_reversed_segments_join_like_one_reversed_span():
    src = noise(3.0)
    one = render([(0.0, 0.5, {}), (0.5, 1.5, {"reverse": True}), (1.5, 3.0, {})], src)
    two = render([(0.0, 0.5, {}), (1.0, 1.5, {"reverse": True}), (0.5, 1.0, {"reverse": True}), (1.5, 3.0, {})], src)
    np.testing.assert_array_equal(one, two)


def test_silence_is_zeros_of_the_same_length():
    src = noise(3.0)
    out = render([(0.0, 1.0, {}), (1.0, 2.0, {"mute": True}), (2.0, 3.0, {})], src)
    assert out.shape == src.shape
    assert not interior(out, 1.0, 2.0).any()
    assert rms(interior(out, 0.0, 1.0)) > 0.09


def test_fade_in_and_out_are_linear_gain_ramps():
    src = noise(3.0)
    out = render([(0.0, 1.0, {"fade_in_s": 0.5}), (1.0, 2.0, {}), (2.0, 3.0, {"fade_out_s": 0.5})], src)
    n = s2i(0.5)
    ramp = np.arange(n) / n
    np.testing.assert_allclose(out[:, :n], src[:, :n] * ramp, atol=1e-6)
    np.testing.assert_array_equal(out[:, n + XF : s2i(1.0) - XF], src[:, n + XF : s2i(1.0) - XF])
    end = s2i(3.0)
    np.testing.assert_allclose(out[:, end - n :], src[:, end - n :] * ramp[::-1], atol=1e-6)
    assert out[:, -1].tolist() == [0.0, 0.0]


# ----------------------------------------------------------------- level, pitch, speed


def test_gain_plus_6_db_doubles_rms():
    src = noise(3.0)
    out = render([(0.0, 1.0, {}), (1.0, 2.0, {"gain_db": 6.0}), (2.0, 3.0, {})], src)
    ratio = rms(interior(out, 1.0, 2.0)) / rms(interior(src, 1.0, 2.0))
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_pitch_plus_2_moves_a_440_hz_sine_two_semitones_and_keeps_length():
    src = sine(440.0, 3.0)
    out = render([(0.0, 1.0, {}), (1.0, 2.0, {"pitch_semitones": 2.0}), (2.0, 3.0, {})], src)
    assert out.shape == src.shape
    shifted = peak_hz(interior(out, 1.0, 2.0, margin=s2i(0.1))[0])
    assert 12 * np.log2(shifted / 440.0) == pytest.approx(2.0, abs=0.2)
    assert 12 * np.log2(peak_hz(interior(out, 2.0, 3.0, margin=s2i(0.1))[0]) / 440.0) == pytest.approx(0.0, abs=0.05)


def test_speed_1_25_plays_in_0_8_of_the_time_at_the_same_pitch():
    # tone bursts 0.25 s apart: their spacing in the output measures the speed
    sr = SR
    src = np.zeros((1, s2i(4.0)), dtype=np.float32)
    burst = sine(440.0, 0.05, n_channels=1)[0] * np.hanning(s2i(0.05))
    onsets_s = [1.0 + 0.25 * k for k in range(8)]
    for t in onsets_s:
        src[0, s2i(t) : s2i(t) + len(burst)] += burst
    tone = sine(440.0, 4.0, n_channels=1) * 0.2
    out_bursts = render([(0.0, 1.0, {}), (1.0, 3.0, {"rate": 1.25}), (3.0, 4.0, {})], src)
    out_tone = render([(0.0, 1.0, {}), (1.0, 3.0, {"rate": 1.25}), (3.0, 4.0, {})], tone)
    assert out_bursts.shape[1] == s2i(1.0) + s2i(2.0 / 1.25) + s2i(1.0)

    envelope = np.convolve(np.abs(out_bursts[0]), np.ones(s2i(0.01)) / s2i(0.01), mode="same")
    found = []
    for k in range(8):  # each burst's envelope peak near where a 0.8x timeline puts it
        guess = s2i(1.0 + 0.8 * (onsets_s[k] - 1.0) + 0.02)
        window = envelope[guess - s2i(0.08) : guess + s2i(0.08)]
        found.append((guess - s2i(0.08) + int(np.argmax(window))) / sr)
    spacing = np.diff(found).mean()
    assert spacing / 0.25 == pytest.approx(0.8, rel=0.01)
    pitch = peak_hz(interior(out_tone, 1.0, 1.0 + 2.0 / 1.25, margin=s2i(0.1))[0])
    assert 12 * np.log2(pitch / 440.0) == pytest.approx(0.0, abs=0.1)


# ----------------------------------------------------------------- effects


def one_effect(src: np.ndarray, effect: Effect) -> tuple[np.ndarray, np.ndarray]:
    """(dry, wet) output interiors of the middle second, effect on that second only."""
    out = render([(0.0, 1.0, {}), (1.0, 2.0, {"effects": [effect]}), (2.0, 3.0, {})], src)
    return interior(src, 1.0, 2.0, margin=s2i(0.05)), interior(out, 1.0, 2.0, margin=s2i(0.05))


def test_lowpass_lowers_and_highpass_raises_the_spectral_centroid():
    src = drum_chord_mix(3.0, attack_s=0.004)
    dry, low = one_effect(src, Effect("lowpass", {"cutoff_hz": 800.0}))
    _, high = one_effect(src, Effect("highpass", {"cutoff_hz": 2500.0}))
    assert centroid_hz(low[0]) < 0.5 * centroid_hz(dry[0])
    assert centroid_hz(high[0]) > 1.2 * centroid_hz(dry[0])


@pytest.mark.parametrize(("name", "lo_hz", "hi_hz"), [("bass", 20.0, 120.0), ("treble", 8000.0, 20000.0)])
def test_bass_and_treble_shelves_move_their_band_the_right_way(name, lo_hz, hi_hz):
    src = noise(3.0)
    dry, up = one_effect(src, Effect(name, {"gain_db": 6.0}))
    _, down = one_effect(src, Effect(name, {"gain_db": -6.0}))
    base = band_energy(dry[0], lo_hz, hi_hz)
    assert band_energy(up[0], lo_hz, hi_hz) > 2.5 * base  # +6 dB ~ 4x power
    assert band_energy(down[0], lo_hz, hi_hz) < 0.4 * base
    # the other end of the spectrum is left nearly alone
    other = (8000.0, 20000.0) if name == "bass" else (20.0, 120.0)
    assert band_energy(up[0], *other) == pytest.approx(band_energy(dry[0], *other), rel=0.2)


@pytest.mark.parametrize(
    "effect",
    [Effect("reverb", {"room_size": 0.7, "wet": 0.35}), Effect("delay", {"delay_s": 0.25, "feedback": 0.45, "mix": 0.3})],
    ids=["reverb", "delay"],
)
def test_reverb_and_delay_tails_ring_into_what_follows(effect):
    # a noise burst, then silence in the source: energy after the segment is the tail
    src = noise(4.0)
    src[:, s2i(1.0) :] = 0.0
    src[:, : s2i(0.2)] = 0.0
    dry = render([(0.0, 1.0, {}), (1.0, 4.0, {})], src)
    wet = render([(0.0, 1.0, {"effects": [effect]}), (1.0, 4.0, {})], src)
    after = slice(s2i(1.0) + XF, s2i(1.5))
    assert rms(dry[:, after]) == 0.0
    assert rms(wet[:, after]) > 0.005
    # the tail decays: the first half second holds more energy than the next, and it ends by MAX_TAIL_S
    assert rms(wet[:, s2i(1.0) : s2i(1.5)]) > rms(wet[:, s2i(1.5) : s2i(2.0)]) > 0
    assert not wet[:, s2i(1.0 + MAX_TAIL_S) + XF :].any()
    # no chop: the tail's level changes smoothly across the segment end
    before = rms(wet[:, s2i(1.0) - s2i(0.05) : s2i(1.0) - XF])
    just_after = rms(wet[:, s2i(1.0) + XF : s2i(1.0) + s2i(0.05)])
    assert just_after > 0.3 * before


def test_tail_is_added_to_the_following_segment_not_replacing_it():
    src = noise(4.0)
    follow = render([(0.0, 1.0, {}), (2.0, 4.0, {})], src)
    wet = render([(0.0, 1.0, {"effects": [Effect("reverb", {"room_size": 0.9, "wet": 0.5})]}), (2.0, 4.0, {})], src)
    region = slice(s2i(1.0) + XF, s2i(1.5))
    assert rms(wet[:, region]) > rms(follow[:, region])
    np.testing.assert_array_equal(wet[:, s2i(1.0 + MAX_TAIL_S) + XF :], follow[:, s2i(1.0 + MAX_TAIL_S) + XF :])


def test_distortion_adds_harmonics():
    src = sine(440.0, 3.0, amp=0.4)
    dry, wet = one_effect(src, Effect("distortion", {"drive_db": 20.0}))
    assert thd(dry[0], 440.0) < 0.01
    assert thd(wet[0], 440.0) > 0.1


def test_compress_lowers_the_crest_factor():
    src = drum_chord_mix(3.0, attack_s=0.004)
    dry, wet = one_effect(src, Effect("compress", {"threshold_db": -30.0, "ratio": 10.0}))

    def crest(x: np.ndarray) -> float:
        return float(np.abs(x).max() / rms(x))

    assert crest(wet) < 0.85 * crest(dry)


def test_width_zero_makes_mono_and_two_widens_the_side():
    src = noise(3.0)
    dry, mono = one_effect(src, Effect("width", {"width": 0.0}))
    _, wide = one_effect(src, Effect("width", {"width": 2.0}))
    np.testing.assert_allclose(mono[0], mono[1], atol=1e-7)
    np.testing.assert_allclose(mono[0] + mono[1], dry[0] + dry[1], atol=1e-6)  # mid kept
    side_dry, side_wide = rms(dry[0] - dry[1]), rms(wide[0] - wide[1])
    assert side_wide / side_dry == pytest.approx(2.0, rel=1e-3)
    mono_src = noise(3.0, n_channels=1)
    assert np.array_equal(Width(0.0)(mono_src, SR), mono_src)


def test_effect_chain_runs_in_order():
    reverb = Effect("reverb", {"room_size": 0.5, "wet": 0.5})
    width = Effect("width", {"width": 0.0})
    x = noise(1.0)
    mono_last = build_chain([reverb, Effect("lowpass", {"cutoff_hz": 5000.0}), width], SR)(x, SR)
    reverb_last = build_chain([width, reverb], SR)(x, SR)
    np.testing.assert_allclose(mono_last[0], mono_last[1], atol=1e-6)
    assert rms(reverb_last[0] - reverb_last[1]) > 0.1 * rms(reverb_last)  # the reverb decorrelates L/R
    assert build_chain([Effect("lowpass", {"cutoff_hz": 500.0})], SR).tail_s == 0.0
    assert build_chain([reverb], SR).tail_s > 0.0
    assert build_chain([Effect("delay", {"delay_s": 0.5, "feedback": 0.9, "mix": 0.5})], SR).tail_s == MAX_TAIL_S


# ----------------------------------------------------------------- clicks


def splice_step_ratios(out: np.ndarray, src: np.ndarray, segments: list[Segment], *, reference: str) -> np.ndarray:
    """Largest output step within +-5 ms of each splice over a source reference.

    reference "p99": the 99th-percentile step of the 50 ms of source around
    both ends of the splice (the outgoing end and the incoming start).
    reference "local_max": the largest step of the source within +-5 ms of
    those two points (no step larger than the source already has there).
    """
    w5, w25 = s2i(0.005), s2i(0.025)
    ratios = []
    for a, b in zip(segments, segments[1:]):
        if abs(a.src_end_s - b.src_start_s) < 1e-9:
            continue
        p = s2i(b.dst_start_s)
        step = np.abs(np.diff(out[:, p - w5 : p + w5], axis=1)).max()
        ends = (s2i(a.src_end_s), s2i(b.src_start_s))
        if reference == "p99":
            steps = [np.abs(np.diff(src[:, max(q - w25, 0) : q + w25], axis=1)) for q in ends]
            ref = np.percentile(np.concatenate(steps, axis=1), 99)
        else:
            ref = max(np.abs(np.diff(src[:, max(q - w5, 0) : q + w5], axis=1)).max() for q in ends)
        ratios.append(step / ref)
    return np.array(ratios)


def random_cuts_and_loops(rng: np.random.Generator, duration_s: float, *, n_ops: int, on_beats: bool) -> list[Segment]:
    """``n_ops`` random KEEP/CUT-jump/LOOP pieces of 1-2 beats; off-beat starts when not ``on_beats``."""
    spans = []
    n_beats = int(duration_s / BEAT_S)
    for _ in range(n_ops):
        beat = int(rng.integers(0, n_beats - 3))
        start = beat * BEAT_S + (0.0 if on_beats else float(rng.uniform(0.0, BEAT_S / 3)))
        end = start + int(rng.integers(1, 3)) * BEAT_S
        repeats = int(rng.integers(2, 4)) if rng.random() < 0.4 else 1
        spans += [(start, end, {})] * repeats
    return timeline(spans)


@pytest.mark.parametrize("freq_hz", [55.0, 110.0, 440.0, 2000.0])
def test_no_clicks_at_random_splices_of_a_pure_sine(freq_hz):
    src = sine(freq_hz, 12.0)
    segments = random_cuts_and_loops(np.random.default_rng(int(freq_hz)), 12.0, n_ops=50, on_beats=False)
    out = render_plan(make_plan(segments, src), src, SR)
    ratios = splice_step_ratios(out, src, segments, reference="p99")
    assert len(ratios) >= 40
    assert ratios.max() <= 1.5


def test_no_clicks_at_beat_splices_of_music():
    # 15 ms drum attacks: soft enough that the source itself meets the p99 rule
    # around its onsets (sharper ones: the next test)
    src = drum_chord_mix(12.0, attack_s=0.015)
    segments = random_cuts_and_loops(np.random.default_rng(1), 12.0, n_ops=50, on_beats=True)
    out = render_plan(make_plan(segments, src), src, SR)
    ratios = splice_step_ratios(out, src, segments, reference="p99")
    assert len(ratios) >= 40
    assert ratios.max() <= 1.5


def test_no_step_larger_than_the_source_has_at_splices_of_sharp_drums():
    # sharp 4 ms drum attacks: the source itself exceeds the p99 rule at its
    # onsets, so here no splice may make a step larger than the source's own
    src = drum_chord_mix(12.0, attack_s=0.004)
    for on_beats in (True, False):
        segments = random_cuts_and_loops(np.random.default_rng(2), 12.0, n_ops=50, on_beats=on_beats)
        out = render_plan(make_plan(segments, src), src, SR)
        ratios = splice_step_ratios(out, src, segments, reference="local_max")
        assert ratios.max() <= 1.1


@pytest.mark.parametrize(
    "spans",
    [
        [(0.0, 1.0, {}), (0.0, 1.0, {}), (1.0, 3.0, {})],  # back to the source's first sample: nothing before it
        [(0.0, 1.0, {}), (2.0, 3.0, {}), (0.0, 1.0, {}), (1.0, 2.0, {})],  # from its last sample to its first
    ],
    ids=["loop_to_start", "end_to_start"],
)
def test_splices_at_the_source_edges_borrow_what_exists_and_do_not_click(spans):
    src = drum_chord_mix(3.0, attack_s=0.004)
    segments = timeline(spans)
    out = render_plan(make_plan(segments, src), src, SR)
    assert out.shape[1] == sum(s2i(b) - s2i(a) for a, b, _ in spans)
    ratios = splice_step_ratios(out, src, segments, reference="local_max")
    assert ratios.max() <= 1.1
    if len(spans) == 3:  # the restart fades in over its own first samples, then plays exactly
        np.testing.assert_array_equal(out[:, s2i(1.0) + XF : s2i(2.0) - XF], src[:, XF : s2i(1.0) - XF])


def test_crossfade_keeps_the_level_of_a_looped_sine():
    # in-phase material must not bump +3 dB across a splice
    src = sine(440.0, 3.0)  # 440 Hz: a whole number of periods per 0.5 s, so both sides are in phase
    out = render([(0.0, 1.0, {}), (0.5, 1.5, {}), (1.5, 3.0, {})], src)
    around = out[0, s2i(1.0) - XF : s2i(1.0) + XF]
    assert np.abs(around).max() <= 0.5 * 1.01


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("segment", "words"),
    [
        (Segment(0.0, 1.0, 0.0, effects=[Effect("chorus", {})]), "unknown effect"),
        (Segment(0.0, 1.0, 0.0, effects=[Effect("lowpass", {})]), "missing"),
        (Segment(0.0, 1.0, 0.0, effects=[Effect("lowpass", {"cutoff_hz": 500.0, "q": 1.0})]), "unknown"),
        (Segment(0.0, 1.0, 0.0, effects=[Effect("lowpass", {"cutoff_hz": 30_000.0})]), "outside"),
        (Segment(0.0, 1.0, 0.0, effects=[Effect("reverb", {"room_size": float("nan"), "wet": 0.2})]), "finite"),
        (Segment(1.0, 0.5, 0.0), "not after"),
        (Segment(0.0, 9.0, 0.0), "outside"),
        (Segment(0.0, 1.0, 0.0, rate=0.0), "rate"),
    ],
)
def test_bad_segments_raise_bad_input(segment, words):
    src = noise(3.0)
    with pytest.raises(BadInput, match=words):
        render_plan(make_plan([segment], src), src, SR)


def test_a_plan_at_the_edges_of_the_contract_ranges_loads_and_renders():
    """engine.actions holds the one table of ranges: what load_plan accepts, the renderer plays."""
    assert set(EFFECTS) == set(EFFECT_RANGES)
    src = noise(3.0)
    segments = []
    for edge in (0, 1):
        effects = [
            Effect(name, {k: CUTOFF_MAX_FRACTION * SR if k == "cutoff_hz" and edge else r[edge] for k, r in ranges.items()})
            for name, ranges in EFFECT_RANGES.items()
        ]
        segments.append(Segment(0.0, 0.2, 0.0, rate=RATE_RANGE[edge], pitch_semitones=PITCH_RANGE_SEMITONES[edge], effects=effects))
    for seg in segments:
        plan = plan_from_dict(plan_to_dict(make_plan([seg], src)))  # validates as load_plan does
        assert render_plan(plan, src, SR).shape[0] == 2


def test_overlapping_segments_raise_bad_input():
    src = noise(3.0)
    segments = [Segment(0.0, 1.0, 0.0), Segment(1.0, 2.0, 0.5)]
    with pytest.raises(BadInput, match="overlap"):
        render_plan(make_plan(segments, src), src, SR)


def test_gap_in_the_timeline_is_silence():
    src = noise(3.0)
    out = render_plan(make_plan([Segment(0.0, 1.0, 0.0), Segment(1.0, 2.0, 1.5)], src), src, SR)
    assert out.shape[1] == s2i(2.5)
    assert not out[:, s2i(1.0) + XF : s2i(1.5) - XF].any()


# ----------------------------------------------------------------- files
# (the ``editorbot render`` command: tests/bridge/test_cli_render.py)


@pytest.fixture
def song_and_plan(tmp_path):
    """A 4 s stereo wav and a saved plan for it: first beat twice, -3 dB, one beat cut."""
    from editorbot.engine.audio import sha256_file, write_audio
    from editorbot.engine.plan import save_plan

    src = drum_chord_mix(4.0, attack_s=0.004)
    wav = tmp_path / "song.wav"
    write_audio(wav, src, SR)
    segments = timeline([(0.0, BEAT_S, {}), (0.0, BEAT_S, {}), (BEAT_S, BAR_S, {"gain_db": -3.0}), (BAR_S + BEAT_S, 4.0, {})])
    plan = EditPlan(
        source=Source("song.wav", sha256_file(wav), SR, 2, src.shape[1] / SR),
        grid=Grid(120.0, [i * BEAT_S for i in range(8)], [0, 4]),
        segments=segments,
    )
    plan_path = tmp_path / "song.plan.json"
    save_plan(plan, plan_path)
    return src, wav, plan, plan_path


def test_render_to_file_writes_the_rendered_audio(song_and_plan, tmp_path):
    from editorbot.engine.audio import load_audio
    from editorbot.engine.render import render_to_file

    src, wav, plan, _ = song_and_plan
    out = tmp_path / "edit.wav"
    result = render_to_file(plan, out, source_path=wav)
    written = load_audio(out)
    assert written.sample_rate == SR and written.samples.shape == (2, round(plan.duration_s * SR))
    np.testing.assert_allclose(written.samples, render_plan(plan, src, SR), atol=1e-6)
    assert result.duration_s == pytest.approx(plan.duration_s, abs=1 / SR)
    assert result.n_segments == 4


def test_render_to_file_never_writes_over_its_source_or_a_changed_source(song_and_plan):
    from editorbot.engine.render import render_to_file

    _, wav, plan, _ = song_and_plan
    before = wav.read_bytes()
    with pytest.raises(BadInput, match="overwrite"):
        render_to_file(plan, wav, source_path=wav)
    assert wav.read_bytes() == before
    plan.source.sha256 = "f" * 64
    with pytest.raises(BadInput, match="changed"):
        render_to_file(plan, wav.with_name("x.wav"), source_path=wav)


def test_render_to_file_checks_the_source_matches_the_plan(song_and_plan, tmp_path):
    from editorbot.engine.render import render_to_file

    _, wav, plan, _ = song_and_plan
    plan.source.channels = 1
    with pytest.raises(BadInput, match="channels"):
        render_to_file(plan, tmp_path / "x.wav", source_path=wav)
    assert not (tmp_path / "x.wav").exists()
