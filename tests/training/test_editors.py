"""Editor styles: valid plans, full beat coverage, determinism, style semantics, corpus coverage."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json

import numpy as np
import pytest

from editorbot.engine import actions as vocab
from editorbot.engine.plan import plan_to_dict, validate_plan
from editorbot.training.data.editors import (
    PERSONA_PROGRAMS,
    PERSONA_STYLES,
    RELATIONAL_STYLES,
    STUDIO_STYLES,
    STYLES,
    SectionSpan,
    TruthLabels,
    edit,
    edit_song,
    format_coverage,
    get_style,
    infer_sections,
    label_coverage,
    parse_persona,
    persona_params,
    song_context,
    truth_labels,
)
from editorbot.training.data.pairs import SynthStructure, editor_rng, synth_structure

CORPUS_SIZE = 200


@functools.cache
def _structure(seed: int, duration_s: float | None = None) -> SynthStructure:
    return synth_structure(seed, duration_s=duration_s)


def _check_labels(plan, labels: TruthLabels) -> None:
    """Labels cover every beat and agree with the plan's actions and the amount mask."""
    n = len(plan.grid.beat_times)
    assert labels.n_beats == n
    covered = sum(min(vocab.SIZE_BEATS[vocab.size_index(a.size)], n - a.beat) for a in plan.actions)
    assert covered == n, "the walk must cover every beat exactly once"
    assert vocab.AMOUNT_MASK[labels.type_idx, labels.amount_idx].all()
    for a in plan.actions:
        assert labels.type_idx[a.beat] == vocab.type_index(a.type)
        assert labels.size_idx[a.beat] == vocab.size_index(a.size)
        assert labels.amount_idx[a.beat] == vocab.amount_index(a.amount)


@pytest.mark.parametrize("style", [*STYLES, *PERSONA_STYLES])
@pytest.mark.parametrize("seed,duration_s", [(1, 20.0), (2, None), (7, 180.0)])
def test_style_plans_are_valid_and_cover_every_beat(style: str, seed: int, duration_s: float | None) -> None:
    st = _structure(seed, duration_s)
    plan = edit(style, st.analysis(), st.sections, editor_rng(seed, style))
    validate_plan(plan)
    _check_labels(plan, truth_labels(plan))
    assert plan.segments, "a plan always has output"


@pytest.mark.parametrize("style", list(STYLES))
def test_same_generator_state_same_plan(style: str) -> None:
    st = _structure(11)
    a = plan_to_dict(edit(style, st.analysis(), st.sections, editor_rng(11, style)))
    b = plan_to_dict(edit(style, st.analysis(), st.sections, editor_rng(11, style)))
    assert a == b
    others = [plan_to_dict(edit(style, st.analysis(), st.sections, editor_rng(s, style)))["actions"] for s in (12, 13, 14)]
    assert any(o != a["actions"] for o in others), "the editor's choices must depend on its seed"


def test_radio_edit_shortens_and_fades_out() -> None:
    for seed in range(20, 26):
        st = _structure(seed)
        plan = edit("radio_edit", st.analysis(), st.sections, editor_rng(seed, "radio_edit"))
        types = [a.type for a in plan.actions]
        assert plan.duration_s < st.duration_s
        assert "FADE_OUT" in types
        # After the fade only cut beats follow: the song ends on the fade.
        assert set(types[types.index("FADE_OUT") + 1 :]) <= {"CUT"}


def test_extended_mix_lengthens_with_loops() -> None:
    for seed in range(30, 36):
        st = _structure(seed)
        plan = edit("extended_mix", st.analysis(), st.sections, editor_rng(seed, "extended_mix"))
        assert plan.duration_s > st.duration_s
        assert plan.actions[0].type in ("FADE_IN", "LOOP"), "the intro is faded in or looped"


def test_mastering_keeps_length_and_uses_only_mastering_tools() -> None:
    st = _structure(40)
    plan = edit("mastering", st.analysis(), st.sections, editor_rng(40, "mastering"))
    assert abs(plan.duration_s - st.duration_s) < 1e-6
    assert {a.type for a in plan.actions} <= {"KEEP", "GAIN", "COMPRESS", "BASS", "TREBLE", "WIDTH"}


def test_mixed_draws_several_styles_per_song() -> None:
    used = set()
    for seed in range(50, 56):
        st = _structure(seed)
        styled = edit_song("mixed", st.analysis(), st.sections, editor_rng(seed, "mixed"))
        assert len(styled.params["section_styles"]) == len(st.sections)
        used.update(styled.params["section_styles"])
    assert len(used) >= 3


def test_unknown_style_is_refused() -> None:
    st = _structure(1, 20.0)
    with pytest.raises(ValueError, match="unknown style 'house'"):
        edit("house", st.analysis(), st.sections, np.random.default_rng(0))


def test_infer_sections_from_phrases_and_energy() -> None:
    n = 16 * 6 + 3  # six phrases after a 3-beat pickup
    starts = [3 + 16 * k for k in range(6)]
    level = np.array([0.1, 0.4, 0.9, 0.4, 0.9, 0.1])
    energy = np.concatenate([np.full(3, 0.1)] + [np.full(16, v) for v in level])
    sections = infer_sections(n, starts, energy)
    assert [s.name for s in sections] == ["intro", "verse", "chorus", "verse", "chorus", "outro"]
    assert sections[0].start_beat == 0 and sections[0].n_beats == 19  # the pickup joins the intro
    assert sum(s.n_beats for s in sections) == n
    # Without loudness the middle is one verse; neighbours with one name merge.
    plain = infer_sections(n, starts, None)
    assert [s.name for s in plain] == ["intro", "verse", "outro"]
    assert plain[1] == SectionSpan("verse", 19, 64, 0.5)


def test_inferred_structure_on_an_irregular_grid() -> None:
    """Phrases of odd lengths (a real tracker's grid) still give valid, fully covered plans."""
    st = _structure(3)
    analysis = st.analysis()
    n = len(analysis.grid.beat_times)
    starts = np.array([2, 17, 35, 50, 66, 83, 99])[: max(1, n // 16)]
    analysis.grid = dataclasses.replace(analysis.grid, phrase_starts=starts)
    rms = np.abs(np.sin(np.arange(n) / 9.0)).astype(np.float32)[:, None]
    analysis.features, analysis.feature_names = rms, ["rms"]
    for style in [*STYLES, *PERSONA_STYLES]:
        plan = edit(style, analysis, None, editor_rng(3, style))
        validate_plan(plan)
        _check_labels(plan, truth_labels(plan))


def test_corpus_covers_all_20_types_at_least_1_percent() -> None:
    """200 plans on synthesizer ground truth (no audio), styles round robin as `data synth` does."""
    styles = list(STYLES)
    labels = []
    for seed in range(CORPUS_SIZE):
        style = styles[seed % len(styles)]
        st = _structure(seed)
        labels.append(truth_labels(edit(style, st.analysis(), st.sections, editor_rng(seed, style))))
    coverage = label_coverage(labels)
    print("\n" + format_coverage(coverage))
    shares = coverage["type"]
    assert set(shares) == set(vocab.TYPES)
    low = {t: round(100 * v, 2) for t, v in shares.items() if v < 0.01}
    assert not low, f"action types below 1% of labelled beats: {low}"
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert all(v > 0 for v in coverage["size"].values())
    assert all(v > 0 for v in coverage["amount"].values())


def test_random_grids_and_sections_give_valid_plans() -> None:
    """Any song length, phrase spacing and section layout (known or inferred) gives a valid, covering walk."""
    rng = np.random.default_rng(0)
    base = _structure(3, 200.0).analysis()
    names = ["intro", "verse", "chorus", "bridge", "outro", "drop"]
    for trial in range(40):
        n = int(rng.integers(1, len(base.grid.beat_times)))
        starts = np.cumsum(rng.integers(1, 24, size=40)) - int(rng.integers(0, 3))
        starts = starts[(starts >= 0) & (starts < n)]
        analysis = dataclasses.replace(base)
        analysis.grid = dataclasses.replace(
            base.grid, beat_times=base.grid.beat_times[:n], downbeats=np.arange(0, n, 4), phrase_starts=starts
        )
        sections = None
        if trial % 2:
            k = min(n - 1, int(rng.integers(0, 6)))
            cuts = sorted(int(c) for c in rng.choice(np.arange(1, n), size=k, replace=False)) if k else []
            bounds = [0, *cuts, n]
            sections = [
                SectionSpan(names[int(rng.integers(len(names)))], a, b - a, 0.5)
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        else:
            analysis.features, analysis.feature_names = rng.random((n, 1)).astype(np.float32), ["rms"]
        for style in [*STYLES, *PERSONA_STYLES]:
            if style.partition("@")[0] in RELATIONAL_STYLES and trial % 8 > 1:
                continue  # they measure every bar's audio (about 1 s a song): 10 of the 40 layouts
            plan = edit(style, analysis, sections, editor_rng(trial, style))
            validate_plan(plan)
            _check_labels(plan, truth_labels(plan))


# --------------------------------------------------------------------------
# Existing styles are pinned; persona styles


#: sha256 of the walks and params of every non-persona style over ``_pinned_walks``'
#: songs, generated from the code before persona styles were added: adding
#: styles must not change a single choice of the existing ones (same seed,
#: same plan), or every corpus made so far would silently change.
PINNED_WALKS: dict[str, str] = {
    "radio_edit": "803a94c92449e535f5f01e75da6ad74b652ba60e50f65045bbe8f26746dfd463",
    "extended_mix": "4187f0b7838d17aac1f49c231dbee5ec9df335fd2ff94e694c14e964417ebfbf",
    "dj_edit": "41b618351bdb2cefaecf52185d5c80316351aad26fc9631b34838295914939b9",
    "fx_heavy": "6fbce9e6d8258f856e080853c8825ac4861d2cef8178274db4e368885a399505",
    "mastering": "ef3b1ad29fd05644188d7f191decbfb56f94057df85bc42e9847648c1524f40e",
    "mixed": "49ce81dd1f2f5ff37b34ce27940d33b502d870fc67956470aee7e032ffef958c",
    "studio": "f2f0915739242c35c5eda84f51bfc1a894243325fd5c505b12fc642e8c7a333e",
    "studio_edits": "fc489e50e7926bbf91e6f584628d04770a78a5d18e3cd6195ce3a366044fcc2e",
}


def _pinned_walks(style: str) -> str:
    """sha256 of the style's (walk, params) on 12 songs of 4 lengths, with known and with inferred sections."""
    walks = []
    for seed in range(12):
        st = _structure(seed, (20.0, None, 180.0, 60.0)[seed % 4])
        for sections in (st.sections, None):
            song = song_context(st.analysis(), sections)
            walk, params = get_style(style).walk(song, editor_rng(seed, style))
            walks.append([walk, params])
    return hashlib.sha256(json.dumps(walks, sort_keys=True, default=str).encode()).hexdigest()


@pytest.mark.parametrize("style", [*STYLES, *STUDIO_STYLES])
def test_existing_styles_make_the_pinned_walks(style: str) -> None:
    assert _pinned_walks(style) == PINNED_WALKS[style]


def test_persona_names_resolve() -> None:
    assert set(PERSONA_STYLES) == {f"{b}@1" for b in PERSONA_PROGRAMS}
    assert parse_persona("dj_edit@12") == ("dj_edit", 12)
    assert get_style("dj_edit@12").name == "dj_edit@12"
    assert get_style("radio_edit@1") is PERSONA_STYLES["radio_edit@1"]
    for bad in ("mixed@1", "radio_edit@", "radio_edit@x", "radio_edit@-1", "radio_edit@01", "house@1"):
        assert parse_persona(bad) is None
        with pytest.raises(ValueError, match="unknown style"):
            get_style(bad)
    # Personas of one style differ in taste; a persona's taste is fixed.
    assert len({json.dumps(persona_params("radio_edit", n), sort_keys=True) for n in range(6)}) > 1
    assert persona_params("mastering", 3) == persona_params("mastering", 3)


#: Personas of the section styles (``STYLES``); the relational ones follow the audio
#: (tests/training/test_relational_styles.py).
SECTION_PERSONAS = [s for s in PERSONA_STYLES if s.split("@")[0] in STYLES]


@pytest.mark.parametrize("base", [b for b in PERSONA_PROGRAMS if b in STYLES])
def test_persona_is_its_style_with_every_choice_replaced(base: str) -> None:
    """A persona runs its style's own section program; its choices replace every drawn one and hold no generator."""
    style = STYLES[base]
    drawn, persona = style.section, style.persona_section
    assert persona.skeleton is drawn.skeleton
    assert PERSONA_STYLES[f"{base}@1"].section is persona
    assert issubclass(persona.choices, drawn.choices) and persona.choices.persona
    decisions = {n for n, v in vars(drawn.choices).items() if callable(v) and not n.startswith("__")}
    assert decisions, "the drawn choices should have decision methods"
    assert decisions <= set(vars(persona.choices)), f"not replaced: {decisions - set(vars(persona.choices))}"
    assert not hasattr(persona.choices(persona_params(base, 1), np.random.default_rng(0)), "rng")


@pytest.mark.parametrize("style", list(PERSONA_STYLES))
def test_persona_edit_depends_on_the_song_only(style: str) -> None:
    """The pair's seed changes nothing, and the generator is not even read."""
    st = _structure(11)
    rng = editor_rng(11, style)
    state = rng.bit_generator.state
    a = plan_to_dict(edit(style, st.analysis(), st.sections, rng))
    assert rng.bit_generator.state == state
    for seed in (12, 13):
        assert plan_to_dict(edit(style, st.analysis(), st.sections, editor_rng(seed, style))) == a


@pytest.mark.parametrize("style", SECTION_PERSONAS)
def test_persona_types_follow_the_section_layout(style: str) -> None:
    """Songs with the same sections (names and lengths) get the same action type on every beat,
    and the persona still edits: well under half of all beats are kept."""
    by_layout: dict[tuple, list[int]] = {}
    kept = total = 0
    for seed in range(100, 160):
        st = _structure(seed, 40.0)
        types = truth_labels(edit(style, st.analysis(), st.sections, editor_rng(seed, style))).type_idx
        layout = tuple((s.name, s.n_beats) for s in st.sections)
        assert by_layout.setdefault(layout, list(types)) == list(types), layout
        kept += int((types == vocab.ActionType.KEEP).sum())
        total += types.size
    assert len(by_layout) >= 3, "the songs should have several layouts"
    assert kept / total < 0.55


def test_persona_rules() -> None:
    """A few rules, on synthesizer songs of two verses and two choruses."""
    radio, ext = PERSONA_STYLES["radio_edit@1"], PERSONA_STYLES["extended_mix@1"]
    checked = 0
    for seed in range(100, 140):
        st = _structure(seed, 40.0)
        names = [s.name for s in st.sections]
        if names.count("verse") < 2 or names.count("chorus") < 2:
            continue
        checked += 1
        types = truth_labels(edit(radio, st.analysis(), st.sections, editor_rng(seed, radio.name))).type_idx
        verses = [s for s in st.sections if s.name == "verse"]
        dropped = [v for v in verses if (types[v.start_beat : v.start_beat + v.n_beats] == vocab.ActionType.CUT).all()]
        assert len(dropped) == 1, "the radio persona always drops exactly one of two verses"
        last_chorus = [s for s in st.sections if s.name == "chorus"][-1]
        assert (types[last_chorus.start_beat : last_chorus.start_beat + last_chorus.n_beats] == vocab.ActionType.GAIN).all()
        types = truth_labels(edit(ext, st.analysis(), st.sections, editor_rng(seed, ext.name))).type_idx
        for k, s in enumerate(st.sections[:-1]):
            if s.name == "chorus" and st.sections[k + 1].name in ("verse", "bridge"):
                assert types[s.start_beat + s.n_beats - 1] == vocab.ActionType.LOOP
    assert checked >= 5
