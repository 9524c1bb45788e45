"""The rules every policy edit keeps (export.walk.WalkRules, the length
search's move set, edit_file's gain staging and sample format): against
policies that push the other way, and through the CLI on a PCM_16 file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from editorbot.engine.actions import N_AMOUNTS, N_SIZES, N_TYPES, TYPES
from editorbot.engine.errors import BadRequest
from editorbot.engine.plan import load_plan, plan_from_actions
from editorbot.engine.render import PEAK_CEILING_DB, render_plan
from editorbot.engine.sanity import check_edit
from editorbot.export.retime import retime
from editorbot.export.runtime import OnnxPolicy, SongInputs, song_logprobs
from editorbot.export.walk import policy_walk, walk_rules
from tests.export import scratch, song_analysis, song_file, tiny_model


class LeaningPolicy:
    """A policy whose type logits lean towards some types, plus seeded noise per call
    (the tiny model's spec, so the runtime builds its usual inputs)."""

    def __init__(self, lean: dict[str, float], seed: int = 0) -> None:
        self.spec = OnnxPolicy(tiny_model()[0], device="cpu").spec
        self.bias = np.zeros(N_TYPES + N_SIZES + N_AMOUNTS, np.float32)
        for name, v in lean.items():
            self.bias[TYPES.index(name)] = v
        self.seed = seed

    def run(self, inputs):
        b = len(inputs.cursors)
        # noise keyed by the cursor, so a cursor's log-probs do not depend on the batch it is in
        noise = np.stack([np.random.default_rng([self.seed, int(c)]).normal(0, 1.0, self.bias.shape) for c in inputs.cursors])
        return {
            "logits": (self.bias[None] + noise).astype(np.float32),
            "value": np.zeros(b, np.float32),
            "tempo": np.zeros(1, np.float32),
            "energy": np.zeros((b, 3), np.float32),
            "phrase_boundary": np.zeros((1, inputs.features.shape[1]), np.float32),
        }


def _edit(analysis, walk):
    plan = plan_from_actions(analysis, walk)
    return plan, render_plan(plan, analysis.audio.samples, analysis.audio.sample_rate)


@pytest.mark.parametrize("min_keep", [0.3, 0.6])
def test_min_keep_holds_against_a_policy_that_wants_to_cut(min_keep: float) -> None:
    analysis = song_analysis(11, 20.0)
    song = SongInputs.of(analysis)
    policy = LeaningPolicy({"CUT": 6.0, "SPEED": 3.0})
    free = plan_from_actions(analysis, policy_walk(policy, song).walk)
    assert free.duration_s < 0.2 * analysis.audio.duration_s  # without the rule this policy destroys the song
    for seed in (None, 1, 2):
        walk = policy_walk(policy, song, seed=seed, rules=walk_rules(analysis, min_keep)).walk
        plan = plan_from_actions(analysis, walk)
        assert plan.duration_s >= min_keep * analysis.audio.duration_s - 1e-6
        assert sum(a.type == "CUT" for a in walk) > 0  # it still cuts where the budget allows


def test_fades_lead_to_and_from_silence_whatever_the_policy_prefers() -> None:
    analysis = song_analysis(11, 20.0)
    song = SongInputs.of(analysis)
    fades = free_fade_errors = 0
    for seed in range(6):
        policy = LeaningPolicy({"FADE_OUT": 2.5, "FADE_IN": 2.0, "KEEP": 1.0, "GAIN": 1.0}, seed=seed)
        free_plan, free_render = _edit(analysis, policy_walk(policy, song, seed=seed).walk)
        free_fade_errors += check_edit(free_plan, analysis.audio.samples, free_render, analysis.audio.sample_rate).counts["fade"]
        walk = policy_walk(policy, song, seed=seed, rules=walk_rules(analysis, 0.3)).walk
        plan, rendered = _edit(analysis, walk)
        check = check_edit(plan, analysis.audio.samples, rendered, analysis.audio.sample_rate)
        assert check.counts["fade"] == 0 and check.counts["kept"] == 0, check.details
        assert check.counts["fragment"] == 0 and check.counts["marker"] == 0, check.details
        fades += sum(a.type in ("FADE_IN", "FADE_OUT") for a in walk)
    assert fades > 0  # the rules constrain fades, they do not ban them
    assert free_fade_errors > 0  # and without them this policy's fades jump


def test_min_keep_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(BadRequest, match="min_keep"):
        walk_rules(song_analysis(11, 20.0), 1.5)


def test_length_search_places_no_fade_or_silence_mid_song() -> None:
    analysis = song_analysis(11, 20.0)
    policy = LeaningPolicy({"FADE_OUT": 8.0, "SILENCE": 8.0, "FADE_IN": 8.0})
    lp = song_logprobs(policy, SongInputs.of(analysis))
    res = retime(analysis, 0.75 * analysis.audio.duration_s, logprobs=lp)
    types = [a.type for a in res.walk]
    assert "FADE_OUT" not in types and "SILENCE" not in types
    assert all(t != "FADE_IN" for t in types[1:])


def test_cli_edit_and_render_keep_pcm16_and_the_peak_ceiling() -> None:
    from editorbot.bridge.cli import main

    folder = scratch("pcm16")
    x, sr = sf.read(song_file(11, 20.0), always_2d=True, dtype="float32")
    src = folder / "song16.wav"
    sf.write(src, 0.999 * x / np.abs(x).max(), sr, subtype="PCM_16")  # a song peaking at 0 dBFS
    out = folder / "edit.wav"
    model = str(tiny_model()[0])
    assert main(["edit", str(src), "-o", str(out), "--model", model, "--quiet"]) == 0
    assert sf.info(out).subtype == "PCM_16"
    y, _ = sf.read(out, always_2d=True, dtype="float32")
    assert 20 * np.log10(np.abs(y).max()) <= PEAK_CEILING_DB + 1e-3
    plan = load_plan(folder / "edit.plan.json")
    again = folder / "again.flac"
    assert main(["render", str(folder / "edit.plan.json"), "-o", str(again), "--subtype", "PCM_24", "--quiet"]) == 0
    assert sf.info(again).subtype == "PCM_24"
    z, _ = sf.read(again, always_2d=True, dtype="float32")
    assert 20 * np.log10(np.abs(z).max()) <= PEAK_CEILING_DB + 1e-3
    source, _ = sf.read(src, always_2d=True, dtype="float32")
    check = check_edit(plan, source.T, y.T, sr)
    assert check.counts["peak"] == 0 and check.counts["click"] == 0, check.details
    assert main(["edit", str(src), "-o", str(folder / "x.wav"), "--model", model, "--min-keep", "2", "--quiet"]) == 2
