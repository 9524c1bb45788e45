"""Relational personas (loud_loop, repeat_cut, quiet_filter): each bar's choice compares it with the whole song."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from editorbot.bridge.cli import main
from editorbot.engine.audio import Audio, write_audio
from editorbot.engine.plan import plan_to_dict
from editorbot.training.data.editors import RELATIONAL_STYLES, edit, get_style, persona_params, truth_labels
from editorbot.training.data.pairs import PairAnalysis, read_label_doc, true_grid
from editorbot.training.data.synth import synth_song

SR = 22050
TEMPO = 120.0  # a beat is exactly 11025 samples: every bar has the same length
BAR_S = 4 * 60.0 / TEMPO
N_BARS = 16


def _song(bars: list[np.ndarray]) -> PairAnalysis:
    """A song of the given bars (each ``(BAR_S * SR,)`` mono) on a true 120 bpm grid."""
    x = np.concatenate(bars).astype(np.float32)
    beats = np.arange(4 * len(bars)) * 60.0 / TEMPO
    return PairAnalysis(audio=Audio(np.stack([x, x]), SR), sha256="0" * 64, grid=true_grid(TEMPO, beats))


def _tone(level: float, root: int = 0) -> np.ndarray:
    """One bar of a major triad on ``root`` semitones above A3 at peak ``level``, the same samples every time."""
    t = np.arange(int(BAR_S * SR)) / SR
    f = [220.0 * 2 ** ((root + k) / 12.0) for k in (0, 4, 7)]
    return level * sum(np.sin(2 * np.pi * fk * t) for fk in f) / 3.0


def _edited_bars(style: str, song: PairAnalysis) -> dict[int, tuple[str, str]]:
    """``{bar: (type, amount)}`` of the bars the style did not keep."""
    plan = edit(style, song, None, np.random.default_rng(0))
    return {a.beat // 4: (a.type, a.amount) for a in plan.actions if a.type != "KEEP"}


def test_loud_loop_loops_the_loudest_bar_wherever_it_is() -> None:
    p = persona_params("loud_loop", 1)
    for loud in (5, 11):
        levels = [0.1 + 0.001 * k for k in range(N_BARS)]  # distinct, so the ranking is strict
        levels[loud] = 0.6
        edited = _edited_bars("loud_loop@1", _song([_tone(v) for v in levels]))
        assert edited[loud] == ("LOOP", p["amount"])
        assert len(edited) == p["n_loops"] and {t for t, _ in edited.values()} == {"LOOP"}
        # The runners-up are the next loudest bars: the last ones of the rising ramp.
        assert set(edited) - {loud} == set(sorted(set(range(N_BARS)) - {loud})[::-1][: p["n_loops"] - 1])


def test_quiet_filter_depends_on_the_rest_of_the_song() -> None:
    p = persona_params("quiet_filter", 1)
    levels = [0.2] * N_BARS
    levels[3] = levels[12] = 0.05
    edited = _edited_bars("quiet_filter@1", _song([_tone(v) for v in levels]))
    assert set(edited) == {3, 12} and {t for t, _ in edited.values()} == {p["filter"]}
    # The same bar at the same level is not filtered once half the song is quieter.
    levels[8:] = [0.005 + 0.001 * k for k in range(8)]
    levels[12] = 0.2
    edited = _edited_bars("quiet_filter@1", _song([_tone(v) for v in levels]))
    assert 3 not in edited and edited and set(edited) <= set(range(8, 16))
    assert edited[8] == (p["filter"], "NEG_LARGE")


def test_repeat_cut_cuts_the_repeats_and_keeps_the_first_occurrence() -> None:
    p = persona_params("repeat_cut", 1)
    assert min(int(p["cut_share"] * N_BARS), N_BARS // 2) == 4  # this persona cuts 4 of 16 bars
    roots = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 8, 9, 10, 11]  # bars 8-11 repeat bars 0-3
    edited = _edited_bars("repeat_cut@1", _song([_tone(0.3, r) for r in roots]))
    assert edited == {b: ("CUT", "NEUTRAL") for b in (8, 9, 10, 11)}


@pytest.mark.parametrize("style", [f"{b}@1" for b in RELATIONAL_STYLES])
def test_relational_personas_are_deterministic_and_read_no_generator(style: str) -> None:
    song = _song([_tone(0.1 + 0.02 * (k % 5), k % 7) for k in range(N_BARS)])
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    plan = edit(style, song, None, rng)
    assert rng.bit_generator.state == state
    assert plan_to_dict(edit(style, song, None, np.random.default_rng(6))) == plan_to_dict(plan)
    labels = truth_labels(plan)
    assert labels.n_beats == 4 * N_BARS
    assert len({a.type for a in plan.actions}) <= 5
    assert get_style(style).name == style


def test_data_pair_accepts_the_relational_personas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    song = synth_song(12, duration_s=16.0)
    good = tmp_path / "good.wav"
    write_audio(good, song.samples, song.sample_rate)
    out = tmp_path / "pairs"
    for style in ("loud_loop@1", "repeat_cut@2", "quiet_filter@1"):
        assert main(["data", "pair", str(good), "--style", style, "--out", str(out), "--quiet"]) == 0
        doc = read_label_doc(out / "labels" / f"good_{style}_s0.json")
        assert doc["style"] == style and doc["grid"]["source"] == "analysis"
    doc = read_label_doc(out / "labels" / "good_loud_loop@1_s0.json")
    assert "LOOP" in {a["type"] for a in doc["plan"]["actions"]}
    capsys.readouterr()
    assert main(["data", "pair", str(good), "--style", "loud_loop@x", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--style" in err[0] and "loud_loop@x" in err[0]
