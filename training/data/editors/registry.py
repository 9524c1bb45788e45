"""Every editor style by name: ``STYLES``, the studio styles and the personas ``BASE@N``.

``get_style`` resolves a name: one of ``STYLES`` (populations of editors
that draw their settings per song and flip coins per section), one of
``STUDIO_STYLES`` or ``RELATIONAL_STYLES`` (choices that compare each bar
with the whole song's audio), or ``BASE@N``, persona ``N`` (>= 0) of a style with a
persona form (``PERSONA_PROGRAMS``): one editor with fixed taste whose
choices follow the song (``EditorStyle.persona``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from editorbot.training.data.editors.studio import STUDIO_STYLES
from editorbot.training.data.editors.style import DEFAULT_PERSONA, PERSONA_SEP, EditorStyle, Params, SectionProgram
from editorbot.training.data.editors.styles import (
    dj_edit,
    extended_mix,
    fx_heavy,
    loud_loop,
    mastering,
    mixed,
    quiet_filter,
    radio_edit,
    repeat_cut,
)

STYLES: dict[str, EditorStyle] = {
    s.STYLE.name: s.STYLE for s in (radio_edit, extended_mix, dj_edit, fx_heavy, mastering, mixed)
}

#: Relational styles, outside ``STYLES`` (``data synth`` draws from ``STYLES``
#: by default): every choice compares a bar with the rest of the song,
#: measured on the audio (``editors.measure``), so they edit real songs too.
RELATIONAL_STYLES: dict[str, EditorStyle] = {s.STYLE.name: s.STYLE for s in (loud_loop, repeat_cut, quiet_filter)}

_BASES: dict[str, EditorStyle] = {**STYLES, **RELATIONAL_STYLES}

#: Base styles that have a persona form, with its section program and the
#: extra taste (``prng -> params``) the base style draws per section instead.
PERSONA_PROGRAMS: dict[str, tuple[SectionProgram, Callable[[np.random.Generator], Params] | None]] = {
    name: (style.persona_section, style.persona_taste)
    for name, style in _BASES.items()
    if style.persona_section is not None
}


def persona_params(base: str, persona: int) -> Params:
    """The taste of persona ``persona`` of style ``base``: the base style's params, drawn once.

    See ``EditorStyle.persona_params``: the same for every song and every run.

    Raises
    ------
    ValueError
        ``base`` has no persona form, or ``persona`` < 0.
    """
    if base not in PERSONA_PROGRAMS:
        raise ValueError(f"style {base!r} has no persona form (one of {', '.join(PERSONA_PROGRAMS)})")
    return _BASES[base].persona_params(persona)


@functools.cache
def persona_style(base: str, persona: int = DEFAULT_PERSONA) -> EditorStyle:
    """Style ``BASE@N`` (``EditorStyle.persona``), built once per name.

    Raises
    ------
    ValueError
        ``base`` has no persona form, or ``persona`` < 0.
    """
    if base not in PERSONA_PROGRAMS:
        raise ValueError(f"style {base!r} has no persona form (one of {', '.join(PERSONA_PROGRAMS)})")
    return _BASES[base].persona(persona)


#: The default persona of every style that has one, by name (``radio_edit@1``, ...).
#: Other persona numbers are found by ``get_style`` too.
PERSONA_STYLES: dict[str, EditorStyle] = {
    f"{base}{PERSONA_SEP}{DEFAULT_PERSONA}": persona_style(base, DEFAULT_PERSONA) for base in PERSONA_PROGRAMS
}


def parse_persona(style: str) -> tuple[str, int] | None:
    """``("radio_edit", 1)`` for ``"radio_edit@1"``; None for a name that is not of the form ``BASE@N``."""
    base, sep, number = style.partition(PERSONA_SEP)
    # One spelling per persona ("radio_edit@01" is refused): the name is the pair's file name.
    if not sep or base not in PERSONA_PROGRAMS or not number.isdigit() or str(int(number)) != number:
        return None
    return base, int(number)


def style_names() -> list[str]:
    """Every style name ``get_style`` lists: ``STYLES``, the studio, relational and persona styles."""
    return [*STYLES, *STUDIO_STYLES, *RELATIONAL_STYLES, *PERSONA_STYLES]


def get_style(style: str | EditorStyle) -> EditorStyle:
    """The style itself, or the one named ``style``.

    Names: those of ``STYLES``, ``STUDIO_STYLES`` and ``RELATIONAL_STYLES``, and ``BASE@N`` for
    persona ``N`` (>= 0) of a style in ``PERSONA_PROGRAMS`` (``persona_style``).

    Raises
    ------
    ValueError
        An unknown name; the message lists the choices.
    """
    if isinstance(style, EditorStyle):
        return style
    if style in STUDIO_STYLES:
        return STUDIO_STYLES[style]
    if style in RELATIONAL_STYLES:
        return RELATIONAL_STYLES[style]
    persona = parse_persona(style)
    if persona is not None:
        return persona_style(*persona)
    if style not in STYLES:
        raise ValueError(
            f"unknown style {style!r} (one of {', '.join(style_names())}; "
            f"or BASE{PERSONA_SEP}N for any persona N >= 0 of {', '.join(PERSONA_PROGRAMS)})"
        )
    return STYLES[style]
