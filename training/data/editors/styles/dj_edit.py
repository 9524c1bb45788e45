"""``dj_edit``: phrase ends decorated; a filtered or looped intro, an echoed or filtered outro.

Phrase ends get stutters, echo outs (DELAY or REVERB), filter sweeps
(HIGHPASS rising, LOWPASS closing), loops, reversed bars and drop gaps
(SILENCE). The intro is looped, filtered in or faded in; the outro echoes
out, filters out or fades out.

Drawn (``DjChoices``): whether a phrase end is decorated, with what and
how long, is drawn per phrase from the style's weights; the phrase before
a chorus is decorated more often, half the time with a rising highpass
(the build into the drop).

Persona (``DjPersona``): what decorates a phrase end follows what comes
next. The persona ranks the decorations by its weights and, at each phrase
end, uses its favourite of those that fit the moment: into a chorus a
build (highpass sweep, stutter, gap or reverse); out of a chorus an echo
(delay, reverb, gap or stutter); into anything else a wind-down (lowpass,
loop or reverse). Inside a section of several phrases every second phrase
end gets a fill (stutter, loop or reverse); the others are kept. Sizes
follow the section: longer tails in long sections, echoes and gaps longer
in loud ones. Intro and outro are the persona's own (loop, filter or
fade), sized by rule.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import (
    LONG_BEATS,
    LOUD_ENERGY,
    draw_amount,
    draw_choice,
    draw_sweep,
    rule_sweep,
    top,
)
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import ChoiceProgram, Choices, EditorStyle, Params
from editorbot.training.data.editors.walk import Piece, Walk, fit, keep_then

DJ_DECORATIONS: tuple[str, ...] = ("stutter", "delay", "reverb", "highpass", "lowpass", "loop", "reverse", "gap")
#: Dirichlet concentration of each decoration's weight (higher: more common on average).
DJ_ALPHA: tuple[float, ...] = (3.0, 3.0, 1.0, 2.5, 2.5, 2.0, 3.5, 4.0)


def draw_params(rng: np.random.Generator) -> Params:
    """The style's settings for one song: decoration weights (sum 1), intro and outro, favourite amounts."""
    return {
        "decorate_p": float(np.round(rng.uniform(0.5, 1.0), 3)),
        "weights": [float(x) for x in np.round(rng.dirichlet(DJ_ALPHA), 4)],
        "intro": str(draw_choice(rng, ("loop", "filter_in", "fade_in"))),
        "intro_filter": str(draw_choice(rng, ("LOWPASS", "HIGHPASS"))),
        "outro": str(draw_choice(rng, ("echo_out", "filter_out", "fade_out"))),
        "stutter_amount": draw_amount(rng),
        "echo_amount": draw_amount(rng),
        "loop_amount": draw_amount(rng),
    }


class DjChoices(Choices):
    """``dj_edit``'s choices as the style's population makes them: drawn per phrase."""

    def intro_loop_beats(self, n: int) -> int:
        """Wanted length in beats of the looped intro of an ``n``-beat first phrase."""
        return int(draw_choice(self.rng, (8, 16)))

    def loop_amount(self) -> str:
        """Amount of the intro's loop."""
        return draw_amount(self.rng, self.p["loop_amount"])

    def sweep(self, n_steps: int, *, rising: bool) -> list[str]:
        """Amounts of an ``n_steps``-bar filter sweep, in walk order."""
        return draw_sweep(self.rng, n_steps, rising=rising)

    def echo_type(self) -> str:
        """The outro's echo: ``"DELAY"`` or ``"REVERB"``."""
        return str(draw_choice(self.rng, ("DELAY", "REVERB"), (0.7, 0.3)))

    def echo_amount(self) -> str:
        """Amount of the outro's echo."""
        return draw_amount(self.rng, self.p["echo_amount"])

    def phrase_tail(self, sec: SectionView, k: int, n: int, *, section_end: bool) -> list[Piece]:
        """The decoration ending phrase ``k`` (``n`` beats) of ``sec``; empty to keep the phrase.

        ``section_end``: the phrase ends the section (and the section does
        not end the song).
        """
        p, rng = self.p, self.rng
        into_chorus = section_end and sec.next_name == "chorus"
        if rng.random() >= (max(p["decorate_p"], 0.9) if into_chorus else p["decorate_p"]):
            return []
        kind = draw_choice(rng, DJ_DECORATIONS, p["weights"])
        if into_chorus and rng.random() < 0.5:
            kind = "highpass"
        if kind == "stutter":
            shape = draw_choice(rng, ("bar", "two_bars", "beats"))
            if shape == "beats":
                return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL", "NEG_LARGE")]
            if shape == "two_bars":
                return [("STUTTER", 4, "POS_LARGE"), ("STUTTER", 4, draw_amount(rng, p["stutter_amount"]))]
            return [("STUTTER", 4, draw_amount(rng, p["stutter_amount"]))]
        if kind in ("delay", "reverb"):
            return [(kind.upper(), int(draw_choice(rng, (4, 8))), draw_amount(rng, p["echo_amount"]))]
        if kind in ("highpass", "lowpass"):
            bars = int(draw_choice(rng, (2, 4)))
            # A highpass opens upwards into the drop; a lowpass closes down (or opens up).
            rising = kind == "highpass" or rng.random() < 0.5
            return [(kind.upper(), 4, a) for a in draw_sweep(rng, bars, rising=rising)]
        if kind == "loop":
            return [("LOOP", int(draw_choice(rng, (1, 4, 8))), draw_amount(rng, p["loop_amount"]))]
        if kind == "reverse":
            return [("REVERSE", int(draw_choice(rng, (1, 4, 8), (0.1, 0.5, 0.4))), "NEUTRAL")]
        return [("SILENCE", int(draw_choice(rng, (1, 4, 8), (0.2, 0.5, 0.3))), "NEUTRAL")]  # gap


class DjPersona(DjChoices):
    """``dj_edit``'s choices by one editor: rules on the section; the generator is not read."""

    persona = True

    def intro_loop_beats(self, n: int) -> int:
        """A phrase-long loop (16 beats) when the first phrase has room, else two bars."""
        return 16 if n >= 16 else 8

    def loop_amount(self) -> str:
        """The persona's loop amount."""
        return str(self.p["loop_amount"])

    def sweep(self, n_steps: int, *, rising: bool) -> list[str]:
        """An even sweep (``rule_sweep``); none for no bars."""
        return rule_sweep(n_steps, rising=rising) if n_steps else []

    def echo_type(self) -> str:
        """The persona's favourite of delay and reverb."""
        return top(self.p["weights"], DJ_DECORATIONS, ("delay", "reverb")).upper()

    def echo_amount(self) -> str:
        """The persona's echo amount."""
        return str(self.p["echo_amount"])

    def phrase_tail(self, sec: SectionView, k: int, n: int, *, section_end: bool) -> list[Piece]:
        """The persona's favourite decoration for the moment (build, echo, wind-down or fill), or none."""
        weights = self.p["weights"]
        if section_end and sec.next_name == "chorus":
            kind = top(weights, DJ_DECORATIONS, ("highpass", "stutter", "gap", "reverse"))
        elif section_end and sec.name == "chorus":
            kind = top(weights, DJ_DECORATIONS, ("delay", "reverb", "gap", "stutter"))
        elif section_end:
            kind = top(weights, DJ_DECORATIONS, ("lowpass", "loop", "reverse"))
        elif k % 2 == 1:
            kind = top(weights, DJ_DECORATIONS, ("stutter", "loop", "reverse"))
        else:
            return []
        return self._tail(kind, sec)

    def _tail(self, kind: str, sec: SectionView) -> list[Piece]:
        """The decoration ``kind`` on a phrase end of ``sec``, sized by the section: longer in long sections."""
        p = self.p
        long = sec.n_beats >= LONG_BEATS
        loud = sec.span.energy >= LOUD_ENERGY
        if kind == "stutter":
            if long:
                return [("STUTTER", 4, "POS_LARGE"), ("STUTTER", 4, p["stutter_amount"])]
            return [("STUTTER", 4, p["stutter_amount"])]
        if kind in ("delay", "reverb"):
            return [(kind.upper(), 8 if loud else 4, p["echo_amount"])]
        if kind in ("highpass", "lowpass"):
            # A highpass opens upwards into the drop; a lowpass closes down.
            return [(kind.upper(), 4, a) for a in rule_sweep(4 if long else 2, rising=kind == "highpass")]
        if kind == "loop":
            return [("LOOP", 8 if long else 4, p["loop_amount"])]
        if kind == "reverse":
            return [("REVERSE", 8 if long else 4, "NEUTRAL")]
        return [("SILENCE", 4 if loud else 1, "NEUTRAL")]  # gap


def _intro(w: Walk, n: int, c: DjChoices) -> None:
    """The first phrase (``n`` beats) of an intro: looped, filtered in or faded in."""
    p = c.p
    if p["intro"] == "loop":
        loop = fit(n, c.intro_loop_beats(n))
        w.add("LOOP", loop, c.loop_amount())
        w.keep(n - loop)
    elif p["intro"] == "filter_in":
        bars = min(4, n // 4)
        # Opening up: a lowpass rises, a highpass falls.
        for a in c.sweep(bars, rising=p["intro_filter"] == "LOWPASS"):
            w.add(p["intro_filter"], 4, a)
        w.keep(n - 4 * bars)
    else:
        fade = fit(n, 16)
        w.add("FADE_IN", fade)
        w.keep(n - fade)


def _outro(w: Walk, n: int, c: DjChoices) -> None:
    """The last phrase (``n`` beats) of the song: echoed out, filtered out or faded out."""
    p = c.p
    if p["outro"] == "echo_out":
        echo = fit(n, 8)
        w.keep(n - echo)
        w.add(c.echo_type(), echo, c.echo_amount())
    elif p["outro"] == "filter_out":
        bars = min(4, n // 4)
        w.keep(n - 4 * bars)
        for a in c.sweep(bars, rising=False):
            w.add("LOWPASS", 4, a)
    else:
        fade = fit(n, 16)
        w.keep(n - fade)
        w.add("FADE_OUT", fade)


def program(w: Walk, song: SongContext, sec: SectionView, c: DjChoices) -> None:
    """Edit one section phrase by phrase: the song's intro and outro phrases, decorated phrase ends between."""
    phrases = list(sec.phrases)
    if sec.is_first and sec.name == "intro" and phrases:
        _, n = phrases.pop(0)
        _intro(w, n, c)
    last = phrases.pop() if sec.is_last and phrases else None
    for k, (_, n) in enumerate(phrases):
        section_end = k == len(phrases) - 1 and last is None
        keep_then(w, n, c.phrase_tail(sec, k, n, section_end=section_end))
    if last is not None:
        _outro(w, last[1], c)


STYLE = EditorStyle(
    "dj_edit",
    "loops, filter sweeps, echo outs and stutters at phrase ends",
    draw_params,
    ChoiceProgram(program, DjChoices),
    persona_section=ChoiceProgram(program, DjPersona),
)
