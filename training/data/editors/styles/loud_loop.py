"""``loud_loop``: loop the song's loudest bars (a relational style).

The editor listens to the whole song, ranks its bars by RMS level
(``measure.BarMeasures.rms_db``) and loops the ``n_loops`` loudest: the
loudest gets the larger repeat (``amount``), the runners-up one step less.
Every other bar is kept. No choice reads the section names, so the rule
is the same on a synthetic and on a real song.

Drawn: ``n_loops`` (1-3) and ``amount`` per song. Persona: the same, drawn
once; the program never reads the generator, so the style is its own
persona form.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import AMOUNT_CHOICES
from editorbot.training.data.editors.measure import walk_bars
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import EditorStyle, Params
from editorbot.training.data.editors.walk import Walk


def draw_params(rng: np.random.Generator) -> Params:
    """How many bars to loop (1-3) and the loudest one's LOOP amount (POS_SMALL or POS_LARGE)."""
    return {"n_loops": int(rng.integers(1, 4)), "amount": str(AMOUNT_CHOICES[int(rng.integers(2, 4))])}


def decide(song: SongContext, p: Params) -> dict[int, tuple[str, str]]:
    """``{bar's first beat: (type, amount)}``: the ``n_loops`` loudest bars, ties to the earlier bar."""
    bars = song.bars
    order = np.lexsort((bars.starts, -bars.rms_db))[: int(p["n_loops"])]
    lesser = AMOUNT_CHOICES[max(AMOUNT_CHOICES.index(p["amount"]) - 1, 0)]
    return {int(bars.starts[k]): ("LOOP", p["amount"] if r == 0 else lesser) for r, k in enumerate(order.tolist())}


def program(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """Edit one section: its bars among the song's loudest are looped, the rest kept."""
    walk_bars(w, sec, decide(song, p))


STYLE = EditorStyle(
    "loud_loop",
    "loops the song's loudest bars (ranked over the whole song)",
    draw_params,
    program,
    persona_section=program,
)
