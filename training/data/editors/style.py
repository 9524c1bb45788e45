"""What an editor style is: its params, its section program, and its persona form.

A style draws its params once per song (``draw_params``) and runs its
section program over each section in turn; the program appends actions
covering exactly the section's beats to the walk. Every random choice
comes from the ``np.random.Generator`` passed in, in a fixed order, so the
same generator state gives the same walk.

A style's persona form is the same section program with the persona's
choices in place of the drawn ones (``training.data.editors.choices``):
``EditorStyle.persona(n)`` is the style ``BASE@N``, one editor whose params
are drawn once from a generator of its own and whose choices follow the
song, so the same song always gets the same edit.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.walk import Triple, Walk

#: A style's params for one song: JSON-ready after ``jsonable``.
Params = dict[str, Any]
#: ``(walk, song, section, params, rng) -> None``: appends actions covering
#: exactly the section's beats to ``walk``.
SectionProgram = Callable[[Walk, SongContext, SectionView, Params, np.random.Generator], None]

#: Separator of a persona style's name: ``BASE@N`` is persona ``N`` of style ``BASE``.
PERSONA_SEP = "@"
#: First word of every persona's taste generator, so a persona's draw shares no
#: stream with ``training.data.pairs.editor_rng`` (whose first word differs).
PERSONA_STREAM = 0x5E_75_0A
#: The persona that ``PERSONA_STYLES`` lists (``radio_edit@1`` etc.).
DEFAULT_PERSONA = 1

C = TypeVar("C")


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars and tuples turned into plain JSON types (dict keys as str)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


class Choices:
    """Base of a style's choices: the song's params ``p`` and, for drawn choices, the generator ``rng``.

    A style's drawn choices subclass this; its persona's choices subclass
    the drawn ones with ``persona = True`` and replace every method. A
    persona keeps no generator, so a drawn method it failed to replace
    raises AttributeError instead of drawing.
    """

    persona: ClassVar[bool] = False

    def __init__(self, p: Params, rng: np.random.Generator) -> None:
        self.p = p
        if not self.persona:
            self.rng = rng


@dataclass(frozen=True)
class ChoiceProgram(Generic[C]):
    """A ``SectionProgram`` made of a style's section skeleton and one way of choosing.

    Attributes
    ----------
    skeleton : callable
        ``(walk, song, section, choices) -> None``: the style's program,
        asking ``choices`` at every decision point.
    choices : callable
        ``(params, rng) -> choices``: the drawn choices (which read ``rng``)
        or a persona's (which never do).
    """

    skeleton: Callable[[Walk, SongContext, SectionView, C], None]
    choices: Callable[[Params, np.random.Generator], C]

    def __call__(
        self, w: Walk, song: SongContext, sec: SectionView, params: Params, rng: np.random.Generator
    ) -> None:
        """Run the skeleton over ``sec`` with choices made from ``params`` and ``rng``."""
        self.skeleton(w, song, sec, self.choices(params, rng))


@dataclass(frozen=True)
class EditorStyle:
    """An editor style: how to draw its parameters and how to edit one section.

    Attributes
    ----------
    name : str
        Its name (``STYLES`` key, ``BASE@N`` for a persona).
    summary : str
        One line for ``--help`` and the dataset card.
    draw_params : callable
        ``rng -> params``: the style's random settings for one song.
    section : SectionProgram
        ``(walk, song, section, params, rng) -> None``; appends actions
        covering exactly the section's beats to ``walk``.
    persona_section : SectionProgram or None
        The same program with a persona's choices (never reads ``rng``);
        None for a style with no persona form.
    persona_taste : callable or None
        ``prng -> params``: taste the style draws per section rather than
        per song, which a persona fixes once (added to its params).
    """

    name: str
    summary: str
    draw_params: Callable[[np.random.Generator], Params]
    section: SectionProgram
    persona_section: SectionProgram | None = None
    persona_taste: Callable[[np.random.Generator], Params] | None = None

    def walk(self, song: SongContext, rng: np.random.Generator) -> tuple[list[Triple], Params]:
        """The style's walk over ``song`` and the params it drew.

        Params are drawn first, then each section runs in order, all from
        ``rng``.

        Returns
        -------
        walk : list of Triple
            Actions covering every beat of ``song``.
        params : Params
            As drawn (not yet ``jsonable``).
        """
        params = self.draw_params(rng)
        w = Walk()
        for view in song.views():
            self.section(w, song, view, params, rng)
            if w.n != view.span.end_beat:
                raise AssertionError(
                    f"style {self.name}: section {view.index} ({view.name}) ends at beat {w.n}, "
                    f"expected {view.span.end_beat}"
                )
        return w.actions, params

    def persona_params(self, persona: int) -> Params:
        """The taste of persona ``persona``: this style's params, drawn once (JSON-ready).

        The draw comes from a generator of its own (``PERSONA_STREAM``, the
        persona number, the crc32 of the style's name), so it is the same for
        every song and every run; ``persona_taste`` draws after
        ``draw_params`` from the same generator.

        Raises
        ------
        ValueError
            The style has no persona form, or ``persona`` < 0.
        """
        if self.persona_section is None:
            raise ValueError(f"style {self.name!r} has no persona form")
        if int(persona) < 0:
            raise ValueError(f"persona must be >= 0, got {persona}")
        prng = np.random.default_rng([PERSONA_STREAM, int(persona), zlib.crc32(self.name.encode("utf-8"))])
        params = self.draw_params(prng)
        if self.persona_taste is not None:
            params.update(self.persona_taste(prng))
        return jsonable(params)

    def persona(self, persona: int = DEFAULT_PERSONA) -> EditorStyle:
        """Style ``BASE@N``: one editor of this style with fixed taste whose choices follow the song.

        Its params are ``persona_params(persona)`` for every song (a fresh
        copy each time), and its section program is ``persona_section``:
        the base program with every per-section draw replaced by a rule on
        what a listener can hear. The generator passed to it is never read,
        so a persona's edit of a song does not depend on the pair's seed.
        """
        params = self.persona_params(persona)
        assert self.persona_section is not None  # persona_params refused a style without one

        def draw(rng: np.random.Generator) -> Params:
            return copy.deepcopy(params)

        name = f"{self.name}{PERSONA_SEP}{int(persona)}"
        return EditorStyle(name, f"{self.summary}; one editor, choices follow the song", draw, self.persona_section)
