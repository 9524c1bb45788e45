"""``radio_edit``: short intro, a verse dropped, a louder last chorus, a fade at the end.

The intro is cut to a few beats (sometimes faded in), one verse (and
sometimes the bridge) is dropped, the last chorus is lifted, the section
before the last chorus may break into it, and the song fades out with its
tail cut.

Drawn (``RadioChoices``): which verse goes, whether the bridge goes, the
last chorus's gain and the break are the params drawn per song; the
break's shape is drawn from the generator.

Persona (``RadioPersona``): the same intro, verse and ending every time.
With two verses or more the persona's verse is dropped (its
``drop_verse``-th, or the last one when the song has fewer); a bridge is cut
if the persona cuts bridges; the last chorus is lifted (GAIN, larger when
it is not already loud); the section before the last chorus breaks into it
(the persona's break, or a gap after a bridge and a stutter after anything
else, shaped by the section).
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import draw_build, draw_choice, rule_build
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import ChoiceProgram, Choices, EditorStyle, Params
from editorbot.training.data.editors.walk import Piece, Walk, fit, keep_then


def draw_params(rng: np.random.Generator) -> Params:
    """The style's settings for one song (beats for lengths, amount names for gains)."""
    return {
        "intro_keep_beats": int(draw_choice(rng, (0, 4, 8, 16), (0.2, 0.3, 0.3, 0.2))),
        "intro_fade_in": bool(rng.random() < 0.7),
        "break_before_last_chorus": str(draw_choice(rng, ("", "gap", "stutter"), (0.4, 0.35, 0.25))),
        "drop_verse": int(rng.integers(0, 3)),  # ordinal of the verse cut (0 = first)
        "cut_bridge": bool(rng.random() < 0.5),
        "last_chorus_gain": str(draw_choice(rng, ("", "POS_SMALL", "POS_LARGE"), (0.4, 0.4, 0.2))),
        "outro_keep_beats": int(draw_choice(rng, (0, 4, 8))),
        "fade_out_beats": int(draw_choice(rng, (8, 16, 32))),
    }


class RadioChoices(Choices):
    """``radio_edit``'s choices as the style's population makes them: the params, and the break's shape drawn."""

    def drops(self, sec: SectionView) -> bool:
        """Whether the section (a verse or a bridge) is cut."""
        verse = sec.name == "verse" and sec.ordinal == self.p["drop_verse"] and sec.count > 1
        return verse or (sec.name == "bridge" and bool(self.p["cut_bridge"]))

    def last_chorus_gain(self, sec: SectionView) -> str:
        """The GAIN amount on the last chorus, or ``""`` to leave it."""
        return str(self.p["last_chorus_gain"])

    def break_kind(self, sec: SectionView) -> str:
        """How the section before the last chorus breaks into it (``"gap"``, ``"stutter"``), or ``""``."""
        return str(self.p["break_before_last_chorus"])

    def build(self, kind: str, sec: SectionView) -> list[Piece]:
        """The break's pieces."""
        return draw_build(self.rng, kind)


class RadioPersona(RadioChoices):
    """``radio_edit``'s choices by one editor: rules on the section; the generator is not read."""

    persona = True

    def drops(self, sec: SectionView) -> bool:
        """The persona's verse (clamped to the song's verses) and, if it cuts them, the bridge."""
        verse = sec.name == "verse" and sec.count > 1 and sec.ordinal == min(self.p["drop_verse"], sec.count - 1)
        return verse or (sec.name == "bridge" and bool(self.p["cut_bridge"]))

    def last_chorus_gain(self, sec: SectionView) -> str:
        """Always lifted: a little when the chorus is already loud (energy >= 0.9), more when not."""
        return "POS_SMALL" if sec.span.energy >= 0.9 else "POS_LARGE"

    def break_kind(self, sec: SectionView) -> str:
        """The persona's break, or a gap after a bridge and a stutter after anything else."""
        return str(self.p["break_before_last_chorus"]) or ("gap" if sec.name == "bridge" else "stutter")

    def build(self, kind: str, sec: SectionView) -> list[Piece]:
        """The break shaped by the section (``rule_build``)."""
        return rule_build(kind, sec)


def program(w: Walk, song: SongContext, sec: SectionView, c: RadioChoices) -> None:
    """Edit one section: ending, intro, dropped sections, last chorus, break, or keep."""
    p = c.p
    n = sec.n_beats
    if sec.is_last:
        keep = min(p["outro_keep_beats"], n - 1)
        fade = fit(n - keep, p["fade_out_beats"])
        w.keep(keep)
        w.add("FADE_OUT", fade)
        w.fill("CUT", n - keep - fade)
    elif sec.is_first and sec.name == "intro":
        keep = min(p["intro_keep_beats"], n)
        w.fill("CUT", n - keep)
        if keep and p["intro_fade_in"]:
            w.add("FADE_IN", fit(keep, keep))
            w.keep(keep - fit(keep, keep))
        else:
            w.keep(keep)
    elif c.drops(sec):
        w.fill("CUT", n)
    elif sec.name == "chorus" and sec.ordinal == sec.count - 1 and (gain := c.last_chorus_gain(sec)):
        w.fill("GAIN", n, gain)
    elif (
        sec.next_name == "chorus"
        and sec.index == song.last_chorus_index() - 1
        and (kind := c.break_kind(sec))
    ):
        keep_then(w, n, c.build(kind, sec))
    else:
        w.keep(n)


STYLE = EditorStyle(
    "radio_edit",
    "short intro, a verse dropped, fade at the end",
    draw_params,
    ChoiceProgram(program, RadioChoices),
    persona_section=ChoiceProgram(program, RadioPersona),
)
