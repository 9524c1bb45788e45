"""Editor styles: programs that edit a song the way one kind of editor would.

The synthetic data generator needs (raw, edited) pairs with exact labels.
An editor style turns a song's beat grid and structure into a walk of
factored actions (``engine.actions``) and so into an ``EditPlan``
(``engine.plan.plan_from_actions``); the plan is the label, its rendering
is the desired output.

A style is a small program run section by section. Every section is
covered by actions whose sizes add up to exactly its length in beats, so
the walk covers every beat of the song and each beat has one action
covering it (``truth_labels``). Styles (``STYLES``, one module each in
``styles/``):

- ``radio_edit``: short intro (the rest of it cut, sometimes faded in),
  one verse (sometimes the bridge) dropped, a louder last chorus, a fade at
  the end and the tail cut.
- ``extended_mix``: intro and outro phrases looped (DJ-friendly), fades in
  and out, a looped bar at the end of choruses.
- ``dj_edit``: phrase ends decorated with stutters, echo outs (DELAY or
  REVERB), filter sweeps (HIGHPASS rising, LOWPASS closing), loops,
  reversed bars and drop gaps (SILENCE); a filtered or looped intro and an
  echoed or filtered outro.
- ``fx_heavy``: pitch, speed, reverb and distortion on choruses; width,
  reverb, delay and gain on verses; reversed bars into choruses.
- ``mastering``: a treatment per section role (gain, compression, bass,
  treble, width), phrase by phrase.
- ``mixed``: each section edited by one of the styles above, drawn per
  section.

Studio styles (``STUDIO_STYLES``, outside ``STYLES``; module ``studio``): ``studio``
and ``studio_edits`` walk as ``mixed`` does, and the editor then runs a
fixed studio chain no plan effect expresses over the whole edit or over
the edited spans only (``apply_studio``).

Persona styles (``PERSONA_STYLES``, outside ``STYLES``; any ``BASE@N`` is
found by ``get_style``): ``radio_edit@1``, ``extended_mix@1``,
``dj_edit@1``, ``fx_heavy@1`` and ``mastering@1`` are one editor each, with
fixed taste. The styles above draw their params per song and flip coins per
section, choices no audio reveals, so no policy can learn them beat for
beat. A persona is a parameter of its style (``EditorStyle.persona``): the
same section program, with the base style's params drawn once
(``persona_params``, from its own seed, the same for every song) and every
per-section draw replaced by a rule on what a listener hears
(``choices``): the section's role, its ordinal, its length, its energy, its
place in the song and what comes next. It never reads the generator it is
given, so the same song always gets the same edit.

Relational styles (``RELATIONAL_STYLES``, outside ``STYLES``; each with a
persona form ``BASE@N``): every choice compares a bar with all the song's
bars, measured on the audio (``measure``), not on synthesizer metadata, so
they edit real songs as they edit synthetic ones:

- ``loud_loop``: the loudest bars (ranked by RMS over the song) are looped.
- ``repeat_cut``: bars that most closely repeat a bar at least 4 bars
  earlier (chroma and band energies) are cut; the first occurrence stays.
- ``quiet_filter``: bars below a quantile of the song's bar levels are
  low- or high-passed, the quietest deeper.

Every random choice comes from the ``np.random.Generator`` passed in, in a
fixed order, so the same generator state gives the same plan.

Song structure comes from the synthesizer's ground truth when it is known
(``training.data.synth.Section``) and is inferred from the grid's phrases
and the per-beat loudness otherwise (``infer_sections``).

Modules: ``sections`` (song structure), ``measure`` (whole-song bar
measurements), ``walk`` (building a walk),
``choices`` (draws and rules), ``style`` (``EditorStyle`` and its persona
form), ``styles/`` (one module per style), ``studio``, ``registry``
(styles by name), ``edit`` (song -> plan), ``truth`` (per-beat truth
labels and their coverage).
"""

from __future__ import annotations

from editorbot.training.data.editors.choices import AMOUNT_CHOICES, LOUD_ENERGY
from editorbot.training.data.editors.edit import StyledEdit, edit, edit_song
from editorbot.training.data.editors.registry import (
    PERSONA_PROGRAMS,
    PERSONA_STYLES,
    RELATIONAL_STYLES,
    STYLES,
    get_style,
    parse_persona,
    persona_params,
    persona_style,
    style_names,
)
from editorbot.training.data.editors.sections import (
    SECTION_NAMES,
    SectionSpan,
    SectionView,
    SongContext,
    infer_sections,
    known_sections,
    song_beats,
    song_context,
)
from editorbot.training.data.editors.studio import (
    STUDIO_RAMP_S,
    STUDIO_SCOPE_OF,
    STUDIO_SCOPES,
    STUDIO_STYLES,
    apply_studio,
    studio_chain,
)
from editorbot.training.data.editors.style import (
    DEFAULT_PERSONA,
    PERSONA_SEP,
    PERSONA_STREAM,
    EditorStyle,
    Params,
    SectionProgram,
)
from editorbot.training.data.editors.styles.dj_edit import DJ_ALPHA, DJ_DECORATIONS
from editorbot.training.data.editors.styles.fx_heavy import FX_CHORUS, FX_CHORUS_P, FX_VERSE
from editorbot.training.data.editors.styles.mastering import MASTER_TYPES
from editorbot.training.data.editors.styles.mixed import MIXED_FROM
from editorbot.training.data.editors.truth import TruthLabels, format_coverage, label_coverage, truth_labels
from editorbot.training.data.editors.walk import Triple, Walk

__all__ = [
    "AMOUNT_CHOICES",
    "DEFAULT_PERSONA",
    "DJ_ALPHA",
    "DJ_DECORATIONS",
    "FX_CHORUS",
    "FX_CHORUS_P",
    "FX_VERSE",
    "LOUD_ENERGY",
    "MASTER_TYPES",
    "MIXED_FROM",
    "PERSONA_PROGRAMS",
    "PERSONA_SEP",
    "PERSONA_STREAM",
    "PERSONA_STYLES",
    "SECTION_NAMES",
    "STUDIO_RAMP_S",
    "STUDIO_SCOPES",
    "STUDIO_SCOPE_OF",
    "STUDIO_STYLES",
    "RELATIONAL_STYLES",
    "STYLES",
    "EditorStyle",
    "Params",
    "SectionProgram",
    "SectionSpan",
    "SectionView",
    "SongContext",
    "StyledEdit",
    "Triple",
    "TruthLabels",
    "Walk",
    "apply_studio",
    "edit",
    "edit_song",
    "format_coverage",
    "get_style",
    "infer_sections",
    "known_sections",
    "label_coverage",
    "parse_persona",
    "persona_params",
    "persona_style",
    "song_beats",
    "song_context",
    "studio_chain",
    "style_names",
    "truth_labels",
]
