"""``fx_heavy``: pitch, speed, reverb and distortion on choruses; width, delay and gain on verses.

A chorus (and a closing outro) alternates two chorus effects span by span
and may end its phrases on a reversed bar or a gap; the intro may swell
in; a bridge gets one effect on its first bars; other sections may get the
verse effect on their end; sections before a chorus may build into it.

Drawn (``FxChoices``): every phrase ending, kept span, build, bridge
effect, verse effect length and amount is drawn per section.

Persona (``FxPersona``): a chorus (and a closing outro) alternates the
persona's two chorus effects span by span, each at its favourite amount;
an editor who leaves some of a chorus dry (``chorus_keep_p`` >= 0.15)
keeps the first span of each phrase; the chorus's last phrase ends on the
persona's favourite ending (reversed bar, gap or none). The intro swells
in as the persona likes. A verse gets the persona's verse effect on its
last half (at most 16 beats); a bridge gets the persona's bridge effect
(``bridge_fx``, taste the style draws per section) on its first 8 beats.
Sections before a chorus build into it with the persona's favourite build:
before every chorus when ``into_chorus_p`` >= 0.5, else only before the
last chorus.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import draw_amount, draw_build, draw_choice, rule_build, top
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import ChoiceProgram, Choices, EditorStyle, Params
from editorbot.training.data.editors.walk import Piece, Walk, fit

FX_CHORUS: tuple[str, ...] = ("PITCH", "SPEED", "REVERB", "DISTORTION")
FX_CHORUS_P: tuple[float, ...] = (0.25, 0.25, 0.15, 0.35)
FX_VERSE: tuple[str, ...] = ("WIDTH", "DELAY", "GAIN")
#: A bridge's effect choices.
FX_BRIDGE: tuple[str, ...] = ("SPEED", "PITCH", "REVERSE", "LOWPASS")
#: How a chorus phrase may end, and how a section may build into a chorus.
PHRASE_ENDS: tuple[str, ...] = ("none", "reverse", "gap")
BUILDS: tuple[str, ...] = ("stutter", "reverse", "gap")


def draw_params(rng: np.random.Generator) -> Params:
    """The style's settings for one song: effects, lengths in beats, probabilities, favourite amounts."""
    picks = rng.choice(len(FX_CHORUS), size=2, replace=False, p=FX_CHORUS_P)
    chorus = [FX_CHORUS[int(i)] for i in picks]
    return {
        "chorus_fx": chorus,
        "fx_beats": int(draw_choice(rng, (4, 8, 16))),
        "chorus_keep_p": float(np.round(rng.uniform(0.0, 0.3), 3)),
        "verse_fx_p": float(np.round(rng.uniform(0.3, 0.8), 3)),
        "verse_fx": str(draw_choice(rng, FX_VERSE, (0.3, 0.5, 0.2))),
        "intro_swell_beats": int(draw_choice(rng, (0, 8, 16))),
        "chorus_phrase_end": [float(x) for x in np.round(rng.dirichlet((2.0, 2.0, 2.0)), 4)],
        "into_chorus_p": float(np.round(rng.uniform(0.3, 0.9), 3)),
        "into_chorus": [float(x) for x in np.round(rng.dirichlet((2.0, 2.0, 2.0)), 4)],
        "favourite": {t: draw_amount(rng) for t in dict.fromkeys((*FX_CHORUS, *FX_VERSE))},
    }


def persona_taste(prng: np.random.Generator) -> Params:
    """Taste ``draw_params`` leaves to a per-section draw, fixed once for a persona: the bridge's effect."""
    return {"bridge_fx": str(draw_choice(prng, FX_BRIDGE))}


class FxChoices(Choices):
    """``fx_heavy``'s choices as the style's population makes them: drawn per phrase and span."""

    def amount(self, t: str) -> str:
        """The amount of an effect span of type ``t``."""
        return draw_amount(self.rng, self.p["favourite"].get(t))

    def phrase_end(self, n: int, *, last_phrase: bool) -> tuple[str, int]:
        """How an ``n``-beat chorus phrase ends (one of ``PHRASE_ENDS``) and the ending's length in beats."""
        end = draw_choice(self.rng, PHRASE_ENDS, self.p["chorus_phrase_end"])
        tail = 0 if end == "none" or n < 8 else int(draw_choice(self.rng, (1, 4))) if end == "gap" else 4
        return end, tail

    def keeps_chorus_span(self, size: int, n: int, *, first: bool) -> bool:
        """Whether a ``size``-beat span of an ``n``-beat chorus phrase stays dry."""
        return bool(self.rng.random() < self.p["chorus_keep_p"])

    def into_chorus(self, sec: SectionView, song: SongContext) -> list[Piece]:
        """The build ending a section before a chorus (empty for none)."""
        if self.rng.random() < self.p["into_chorus_p"]:
            return draw_build(self.rng, draw_choice(self.rng, BUILDS, self.p["into_chorus"]))
        return []

    def bridge_fx(self) -> str:
        """The bridge's effect (one of ``FX_BRIDGE``)."""
        return str(draw_choice(self.rng, FX_BRIDGE))

    def verse_fx_beats(self, sec: SectionView, body: int) -> int | None:
        """Wanted length in beats of the verse effect ending a ``body``-beat section, or None for none."""
        if self.rng.random() < self.p["verse_fx_p"]:
            return int(draw_choice(self.rng, (8, 16, 32)))
        return None


class FxPersona(FxChoices):
    """``fx_heavy``'s choices by one editor: rules on the section; the generator is not read."""

    persona = True

    def amount(self, t: str) -> str:
        """The persona's favourite amount (POS_SMALL for a type it has none for)."""
        return str(self.p["favourite"].get(t, "POS_SMALL"))

    def phrase_end(self, n: int, *, last_phrase: bool) -> tuple[str, int]:
        """The persona's favourite ending, a bar long, on the last phrase of 8 beats or more only."""
        end = top(self.p["chorus_phrase_end"], PHRASE_ENDS, PHRASE_ENDS)
        return end, 0 if end == "none" or n < 8 or not last_phrase else 4

    def keeps_chorus_span(self, size: int, n: int, *, first: bool) -> bool:
        """An editor who leaves some dry (``chorus_keep_p`` >= 0.15) keeps a phrase's first span."""
        return first and self.p["chorus_keep_p"] >= 0.15 and size < n

    def into_chorus(self, sec: SectionView, song: SongContext) -> list[Piece]:
        """The persona's favourite build, before every chorus or only the last one (``into_chorus_p`` < 0.5)."""
        if self.p["into_chorus_p"] >= 0.5 or sec.index == song.last_chorus_index() - 1:
            return rule_build(top(self.p["into_chorus"], BUILDS, BUILDS), sec)
        return []

    def bridge_fx(self) -> str:
        """The persona's bridge effect."""
        return str(self.p["bridge_fx"])

    def verse_fx_beats(self, sec: SectionView, body: int) -> int | None:
        """A verse's last half (at most 16 beats); nothing on other sections."""
        return min(16, max(1, body // 2)) if sec.name == "verse" else None


def _chorus(w: Walk, sec: SectionView, c: FxChoices) -> None:
    """A chorus (or closing outro): the two chorus effects alternate span by span, phrase ends decorated."""
    p = c.p
    k = 0
    for j, (_, n) in enumerate(sec.phrases):
        end, tail = c.phrase_end(n, last_phrase=j == len(sec.phrases) - 1)
        left = n - tail
        first = True
        while left > 0:
            size = fit(left, p["fx_beats"])
            if c.keeps_chorus_span(size, n, first=first):
                w.add("KEEP", size)
            else:
                t = p["chorus_fx"][k % len(p["chorus_fx"])]
                w.add(t, size, c.amount(t))
                k += 1
            first = False
            left -= size
        if tail:
            w.add("REVERSE" if end == "reverse" else "SILENCE", tail)


def program(w: Walk, song: SongContext, sec: SectionView, c: FxChoices) -> None:
    """Edit one section: a chorus's effects, or a swell, a bridge or verse effect and a build into a chorus."""
    p = c.p
    if sec.name == "chorus" or (sec.is_last and sec.name == "outro"):
        _chorus(w, sec, c)
        return
    n = sec.n_beats
    if sec.is_first and sec.name == "intro" and p["intro_swell_beats"]:
        swell = fit(n, p["intro_swell_beats"])
        w.add("FADE_IN", swell)
        n -= swell
    tail = c.into_chorus(sec, song) if sec.next_name == "chorus" else []
    while tail and sum(b for _, b, _ in tail) > n:
        tail = tail[1:]
    body = n - sum(b for _, b, _ in tail)
    if sec.name == "bridge":
        t = c.bridge_fx()
        size = fit(body, 8)
        if size:
            w.add(t, size, "NEUTRAL" if t == "REVERSE" else c.amount(t))
        w.keep(body - size)
    elif (wanted := c.verse_fx_beats(sec, body)) is not None:
        t = p["verse_fx"]
        size = fit(body, wanted)
        w.keep(body - size)
        if size:
            w.add(t, size, c.amount(t))
    else:
        w.keep(body)
    for t, b, a in tail:
        w.add(t, b, a)


STYLE = EditorStyle(
    "fx_heavy",
    "pitch, speed, reverb and distortion on choruses",
    draw_params,
    ChoiceProgram(program, FxChoices),
    persona_section=ChoiceProgram(program, FxPersona),
    persona_taste=persona_taste,
)
