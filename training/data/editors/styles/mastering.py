"""``mastering``: a treatment per section role (gain, compression, bass, treble, width), phrase by phrase.

Each phrase is covered by spans of one length that alternate the two
treatments of the section's role (unknown roles use the verse's).

Drawn (``MasterChoices``): each span may be left alone, and each
treatment's amount is drawn around the song's favourite.

Persona (``MasterPersona``): spans of the persona's length alternate its
two treatments of the section's role; GAIN lifts quiet sections and trims
loud ones, the other treatments use the persona's amount; an editor who
leaves some spans alone (``keep_p`` >= 0.15) leaves the last span before a
chorus dry, so the chorus's treatment stands out.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import LOUD_ENERGY, draw_amount, draw_choice
from editorbot.training.data.editors.sections import SECTION_NAMES, SectionView, SongContext
from editorbot.training.data.editors.style import ChoiceProgram, Choices, EditorStyle, Params
from editorbot.training.data.editors.walk import Walk, fit

MASTER_TYPES: tuple[str, ...] = ("GAIN", "COMPRESS", "BASS", "TREBLE", "WIDTH")


def draw_params(rng: np.random.Generator) -> Params:
    """The style's settings for one song: two treatments per role, favourite amounts, span length in beats."""
    roles = {}
    for role in SECTION_NAMES:
        picks = rng.choice(len(MASTER_TYPES), size=2, replace=False)
        roles[role] = [MASTER_TYPES[int(i)] for i in picks]
    return {
        "roles": roles,
        "amounts": {t: draw_amount(rng) for t in MASTER_TYPES},
        "keep_p": float(np.round(rng.uniform(0.0, 0.3), 3)),
        "span_beats": int(draw_choice(rng, (8, 16, 32))),
    }


class MasterChoices(Choices):
    """``mastering``'s choices as the style's population makes them: drawn per span."""

    def keeps_span(self, sec: SectionView, *, last_span: bool) -> bool:
        """Whether a span stays untreated (``last_span``: the section's last)."""
        return bool(self.rng.random() < self.p["keep_p"])

    def amount(self, t: str, sec: SectionView) -> str:
        """The amount of a treatment ``t`` on ``sec``: the favourite with probability 0.8, else any of the four."""
        return draw_amount(self.rng, self.p["amounts"][t], 0.8)


class MasterPersona(MasterChoices):
    """``mastering``'s choices by one editor: rules on the section; the generator is not read."""

    persona = True

    def keeps_span(self, sec: SectionView, *, last_span: bool) -> bool:
        """The last span before a chorus, for an editor who leaves some alone (``keep_p`` >= 0.15)."""
        return self.p["keep_p"] >= 0.15 and sec.next_name == "chorus" and last_span

    def amount(self, t: str, sec: SectionView) -> str:
        """GAIN trims a loud section and lifts a quiet one; others at the persona's amount."""
        if t == "GAIN":
            return "NEG_SMALL" if sec.span.energy >= LOUD_ENERGY else "POS_SMALL"
        return str(self.p["amounts"][t])


def program(w: Walk, song: SongContext, sec: SectionView, c: MasterChoices) -> None:
    """Edit one section: spans of ``span_beats`` alternating the role's two treatments."""
    p = c.p
    treatments = p["roles"].get(sec.name, p["roles"]["verse"])
    k = 0
    for j, (_, n) in enumerate(sec.phrases):
        left = n
        while left > 0:
            size = fit(left, p["span_beats"])
            if c.keeps_span(sec, last_span=j == len(sec.phrases) - 1 and left == size):
                w.add("KEEP", size)
            else:
                t = treatments[k % len(treatments)]
                w.add(t, size, c.amount(t, sec))
                k += 1
            left -= size


STYLE = EditorStyle(
    "mastering",
    "gain, compression, bass, treble and width per section",
    draw_params,
    ChoiceProgram(program, MasterChoices),
    persona_section=ChoiceProgram(program, MasterPersona),
)
