"""``extended_mix``: intro and outro phrases looped (DJ-friendly), fades in and out.

The intro fades in and loops, the outro loops and fades out, a chorus may
end on a looped bar, and a section before a chorus may build into it.

Drawn (``ExtendedChoices``): whether a chorus loops its end (and the
loop's amount) and whether a section builds into a chorus (and how) are
drawn per section.

Persona (``ExtendedPersona``): intro and outro as the persona always does
them; a chorus followed by a verse or a bridge (a breakdown comes) loops
its last beats, twice over when it is loud; a verse before a chorus builds
into it, a stutter the first time and a reversed bar after that; a bridge
before a chorus builds with a reversed bar.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import draw_amount, draw_build, draw_choice, rule_build
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import ChoiceProgram, Choices, EditorStyle, Params
from editorbot.training.data.editors.walk import Piece, Walk, fit, keep_then


def draw_params(rng: np.random.Generator) -> Params:
    """The style's settings for one song (lengths in beats, probabilities in 0..1)."""
    return {
        "intro_fade_in_beats": int(draw_choice(rng, (0, 4, 8, 16), (0.1, 0.2, 0.3, 0.4))),
        "intro_loop_beats": int(draw_choice(rng, (4, 8, 16))),
        "intro_loop_amount": draw_amount(rng),
        "outro_loop_beats": int(draw_choice(rng, (4, 8, 16))),
        "outro_loop_amount": draw_amount(rng),
        "outro_fade_out_beats": int(draw_choice(rng, (0, 8, 16), (0.3, 0.35, 0.35))),
        "chorus_loop_p": float(np.round(rng.uniform(0.2, 0.8), 3)),
        "chorus_loop_beats": int(draw_choice(rng, (1, 4, 8))),
        "build_p": float(np.round(rng.uniform(0.2, 0.8), 3)),
    }


class ExtendedChoices(Choices):
    """``extended_mix``'s choices as the style's population makes them: coins per section."""

    def chorus_loop(self, sec: SectionView) -> str | None:
        """The amount of the loop ending a chorus, or None for no loop."""
        if self.rng.random() < self.p["chorus_loop_p"]:
            return draw_amount(self.rng, "NEG_LARGE")
        return None

    def build(self, sec: SectionView) -> list[Piece] | None:
        """The build ending a section before a chorus, or None for none."""
        if self.rng.random() < self.p["build_p"]:
            return draw_build(self.rng, draw_choice(self.rng, ("stutter", "reverse"), (0.7, 0.3)))
        return None


class ExtendedPersona(ExtendedChoices):
    """``extended_mix``'s choices by one editor: rules on the section; the generator is not read."""

    persona = True

    def chorus_loop(self, sec: SectionView) -> str | None:
        """A loop before a breakdown (a verse or a bridge next): twice over when loud (energy >= 0.9)."""
        if sec.next_name in ("verse", "bridge"):
            return "NEG_SMALL" if sec.span.energy >= 0.9 else "NEG_LARGE"
        return None

    def build(self, sec: SectionView) -> list[Piece] | None:
        """A verse or bridge builds: the first verse with a stutter, later ones and bridges with a reverse."""
        if sec.name not in ("verse", "bridge"):
            return None
        kind = "stutter" if sec.name == "verse" and sec.ordinal == 0 else "reverse"
        return rule_build(kind, sec)


def program(w: Walk, song: SongContext, sec: SectionView, c: ExtendedChoices) -> None:
    """Edit one section: intro, outro, a chorus's loop, a build into a chorus, or keep."""
    p = c.p
    n = sec.n_beats
    if sec.is_first and sec.name == "intro":
        fade = fit(n, p["intro_fade_in_beats"]) if p["intro_fade_in_beats"] else 0
        if fade:
            w.add("FADE_IN", fade)
        w.fill("LOOP", n - fade, p["intro_loop_amount"], max_beats=p["intro_loop_beats"])
    elif sec.is_last:
        fade = fit(n, p["outro_fade_out_beats"]) if p["outro_fade_out_beats"] else 0
        loop = fit(n - fade, p["outro_loop_beats"])
        w.keep(n - fade - loop)
        if loop:
            w.add("LOOP", loop, p["outro_loop_amount"])
        if fade:
            w.add("FADE_OUT", fade)
    elif sec.name == "chorus" and (amount := c.chorus_loop(sec)) is not None:
        loop = fit(n, p["chorus_loop_beats"])
        w.keep(n - loop)
        w.add("LOOP", loop, amount)
    elif sec.next_name == "chorus" and (tail := c.build(sec)) is not None:
        keep_then(w, n, tail)
    else:
        w.keep(n)


STYLE = EditorStyle(
    "extended_mix",
    "intro and outro phrases looped, fades in and out",
    draw_params,
    ChoiceProgram(program, ExtendedChoices),
    persona_section=ChoiceProgram(program, ExtendedPersona),
)
