"""The rules an edit keeps, at the plan, renderer, writer and plot level:
no sliver of lead-in or tail, one marker per run of cuts, no tail after a
closing fade-out, gain staged to the peak ceiling and recorded in the plan,
splice steps, digital silence, the source's sample format with TPDF dither,
and marker names that never overprint; and engine.sanity's checks fail when
they should."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from editorbot.engine.audio import output_subtype, source_subtype, tpdf_dither, write_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import beat_spans, plan_from_actions
from editorbot.engine.render import (
    PEAK_CEILING_DB,
    peak_dbfs,
    render_plan,
    render_to_file,
    stage_gain,
)
from editorbot.engine.sanity import check_edit

SR = 8000
BEAT_S = 0.5


def _song(duration_s: float = 20.0, lead_s: float = 0.023, sr: int = SR, level: float = 0.9, noise: float = 0.1):
    """A stand-in Analysis over a (noisy) chord: a 120 bpm grid from ``lead_s``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(duration_s * sr)) / sr
    x = level * (0.6 * np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 331 * t) + noise * rng.standard_normal(t.size))
    x = (level * x / np.abs(x).max()).astype(np.float32)
    samples = np.vstack([x, 0.9 * x])
    beat_times = np.arange(lead_s, duration_s - BEAT_S / 2, BEAT_S)
    audio = SimpleNamespace(samples=samples, sample_rate=sr, path="song.wav", duration_s=samples.shape[1] / sr)
    grid = SimpleNamespace(tempo_bpm=120.0, beat_times=beat_times, downbeats=np.arange(0, beat_times.size, 4))
    return SimpleNamespace(audio=audio, sha256="0" * 64, grid=grid)


def _check(an, plan, rendered=None, **kw):
    rendered = render_plan(plan, an.audio.samples, SR) if rendered is None else rendered
    return check_edit(plan, an.audio.samples, rendered, SR, **kw)


def test_a_lead_in_or_tail_shorter_than_a_beat_goes_with_its_beat() -> None:
    starts, ends = beat_spans([0.023, 0.523, 1.023], 1.6, fold_edges=True)
    assert starts.tolist() == [0.0, 0.523, 1.023] and ends[-1] == 1.6
    starts, ends = beat_spans([0.8, 1.3], 2.4, fold_edges=True)  # both longer than a beat: untouched
    assert starts[0] == 0.8 and ends[-1] == pytest.approx(1.8)
    an = _song()
    plan = plan_from_actions(an, [("CUT", "TWO_BARS", "NEUTRAL"), ("FADE_IN", "BAR", "NEUTRAL")])
    assert plan.segments[0].action == "FADE_IN" and plan.segments[0].dst_start_s == 0.0  # the 23 ms went with the cut
    check = _check(an, plan)
    assert check.counts["fragment"] == 0 and check.counts["fade"] == 0, check.details
    # the old behaviour, a lone lead-in, is what the check catches
    lone = plan_from_actions(_song(lead_s=0.6), [("CUT", "TWO_BARS", "NEUTRAL")])
    assert lone.segments[0].length_s == pytest.approx(0.6)  # over a beat: kept, and long enough
    assert plan.grid.beat_times[0] == pytest.approx(0.023)  # the grid itself is unchanged


def test_a_loop_or_stutter_on_beat_zero_repeats_the_grid_span() -> None:
    an = _song(lead_s=0.2)
    loop = plan_from_actions(an, [("LOOP", "BAR", "NEG_LARGE")])  # plays twice
    first, second = loop.segments[:2]
    assert (first.src_start_s, first.src_end_s) == pytest.approx((0.0, 2.2))
    assert (second.src_start_s, second.src_end_s) == pytest.approx((0.2, 2.2))  # on the grid
    stutter = plan_from_actions(an, [("STUTTER", "BEAT", "POS_LARGE")])
    assert all(s.src_start_s == pytest.approx(0.2) for s in stutter.segments if s.action == "STUTTER")


def test_cuts_in_a_row_make_one_marker() -> None:
    an = _song()
    walk = [("KEEP", "BAR", "NEUTRAL")] + [("CUT", "BEAT", "NEUTRAL")] * 3 + [("GAIN", "BAR", "NEG_SMALL")]
    walk += [("CUT", "BAR", "NEUTRAL"), ("CUT", "BAR", "NEUTRAL")]
    plan = plan_from_actions(an, walk)
    cuts = [m for m in plan.markers if m.name == "CUT"]
    assert len(cuts) == 2 and cuts[0].time_s != cuts[1].time_s
    assert _check(an, plan).counts["marker"] == 0


def test_a_closing_fade_out_ends_the_song() -> None:
    an = _song(duration_s=20.0)
    n = len(an.grid.beat_times)
    tail_song = _song(duration_s=22.0)  # the same grid, then 2 s without beats
    tail_song.grid.beat_times = an.grid.beat_times
    walk = [("KEEP", "BEAT", "NEUTRAL")] * (n - 6) + [("FADE_OUT", "BAR", "NEUTRAL"), ("CUT", "BEAT", "NEUTRAL"), ("CUT", "BEAT", "NEUTRAL")]
    plan = plan_from_actions(tail_song, walk)
    assert plan.segments[-1].action == "FADE_OUT"  # no tail jumping back up after it
    assert _check(tail_song, plan).counts["fade"] == 0
    kept = plan_from_actions(tail_song, walk[:-2] + [("FADE_IN", "BEAT", "NEUTRAL"), ("KEEP", "BEAT", "NEUTRAL")])
    assert kept.segments[-1].src_end_s == pytest.approx(22.0)  # faded back in: the tail stays


def test_fade_check_catches_a_jump_back_up() -> None:
    an = _song()
    plan = plan_from_actions(an, [("KEEP", "BAR", "NEUTRAL"), ("FADE_OUT", "BAR", "NEUTRAL"), ("FADE_OUT", "BEAT", "NEUTRAL")])
    check = _check(an, plan)
    assert check.counts["fade"] == 2, check.details  # FADE_OUT -> FADE_OUT, FADE_OUT -> KEEP


def test_gain_is_staged_to_the_ceiling_and_recorded_in_the_plan(tmp_path) -> None:
    an = _song(level=0.95)
    plan = plan_from_actions(an, [("GAIN", "TWO_BARS", "POS_LARGE"), ("KEEP", "BAR", "NEUTRAL")])
    loud = render_plan(plan, an.audio.samples, SR)
    assert peak_dbfs(loud) > 5.0
    staged, gain_db = stage_gain(plan, loud)
    assert gain_db < 0 and peak_dbfs(staged) <= PEAK_CEILING_DB
    assert peak_dbfs(staged) > PEAK_CEILING_DB - 0.02  # turned down no more than needed
    again = render_plan(plan, an.audio.samples, SR)  # the plan now says it
    assert np.allclose(again, staged, atol=1e-5)
    vol = next(a for a in plan.automation if a.parameter == "volume_db")
    assert max(v for _, v in vol.points) == pytest.approx(6.0 + gain_db)
    assert stage_gain(plan, again)[1] == 0.0  # staged once
    # render_to_file of an unstaged plan writes under the ceiling too
    src = tmp_path / "song.wav"
    sf.write(src, an.audio.samples.T, SR, subtype="PCM_24")
    from editorbot.engine.audio import sha256_file

    raw = plan_from_actions(an, [("GAIN", "TWO_BARS", "POS_LARGE")])
    raw.source.path, raw.source.sha256 = str(src), sha256_file(src)
    out = tmp_path / "out.wav"
    render_to_file(raw, out)
    y, _ = sf.read(out, always_2d=True)
    assert sf.info(out).subtype == "PCM_24" and 20 * math.log10(np.abs(y).max()) <= PEAK_CEILING_DB + 1e-3


def test_splice_check_catches_a_hard_splice_and_passes_the_crossfaded_one() -> None:
    an = _song()
    t = np.arange(an.audio.samples.shape[1]) / SR
    an.audio.samples = np.vstack([0.5 * np.sin(2 * np.pi * 53 * t)] * 2).astype(np.float32)  # half a cycle off per beat
    plan = plan_from_actions(an, [("KEEP", "BEAT", "NEUTRAL"), ("CUT", "BEAT", "NEUTRAL")] * 8)
    assert _check(an, plan).counts["click"] == 0
    hard = render_plan(plan, an.audio.samples, SR, crossfade_s=0.0)
    assert _check(an, plan, hard).counts["click"] > 0


def test_silence_check_tells_chosen_silence_from_a_dropout() -> None:
    an = _song()
    plan = plan_from_actions(an, [("KEEP", "BAR", "NEUTRAL"), ("SILENCE", "BEAT", "NEUTRAL")])
    rendered = render_plan(plan, an.audio.samples, SR)
    assert _check(an, plan, rendered).counts["silence"] == 0  # a SILENCE chose it
    rendered[:, 5 * SR : 5 * SR + SR // 4] = 0.0  # a quarter second dropout in kept music
    check = _check(an, plan, rendered)
    assert check.counts["silence"] == 1 and check.silence_s == pytest.approx(0.25, abs=0.01)


def test_kept_share_check() -> None:
    an = _song()
    plan = plan_from_actions(an, [("KEEP", "BAR", "NEUTRAL")] + [("CUT", "PHRASE", "NEUTRAL")] * 3)
    assert _check(an, plan).counts["kept"] == 1
    assert _check(an, plan, min_keep=None).counts["kept"] == 0  # a target set the length


def test_written_format_follows_the_source_with_tpdf_dither(tmp_path) -> None:
    src = tmp_path / "in16.wav"
    sf.write(src, np.zeros((100, 2)), SR, subtype="PCM_16")
    assert source_subtype(src) == "PCM_16"
    assert output_subtype(tmp_path / "o.wav", "PCM_16") == "PCM_16"
    assert output_subtype(tmp_path / "o.flac", "FLOAT") == "PCM_24"
    assert output_subtype(tmp_path / "o.ogg", "PCM_16") is None
    lsb = 2.0**-15
    x = np.zeros((1, 40000), np.float32)
    x[0, 20000:] = 0.3 * lsb  # under half an LSB: plain rounding would write zeros
    out = tmp_path / "d.wav"
    write_audio(out, x, SR, subtype="PCM_16")
    y, _ = sf.read(out, dtype="float32")
    assert sf.info(out).subtype == "PCM_16"
    assert np.all(y[:20000] == 0.0)  # digital silence stays silent
    assert np.mean(y[20000:]) == pytest.approx(0.3 * lsb, rel=0.1)  # the dither keeps the level
    noise = tpdf_dither(np.full((1, 100000), 0.5, np.float32), 16) - 0.5
    assert np.abs(noise).max() <= 2 * lsb and abs(float(np.std(noise)) - lsb / math.sqrt(6)) < 0.1 * lsb
    with pytest.raises(BadInput, match="cannot store FLOAT"):
        write_audio(tmp_path / "f.flac", x, SR, subtype="FLOAT")


def test_marker_names_never_overprint() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from editorbot.engine.plot import marker_labels

    fig = Figure(figsize=(16, 9), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.05, 0.08, 0.78, 0.34))
    ax.set_xlim(0, 60)
    items = [(0.2 * i, f"GAIN +{i % 7} dB") for i in range(250)] + [(3.0, "CUT"), (3.0, "CUT")]
    texts = marker_labels(fig, ax, items)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert len(texts) > 20
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert any("more markers not named" in t.get_text() for t in texts)
