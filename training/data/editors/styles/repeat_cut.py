"""``repeat_cut``: cut the bars that repeat an earlier bar (a relational style).

The editor compares every bar with every bar at least ``min_gap`` bars
before it (chroma and band energies, ``measure.repeat_similarity``) and
cuts the closest repeats: bars whose best match is at least ``min_sim``
and among the song's ``cut_share`` closest. The first occurrence is never
cut (a bar is only cut for matching an earlier one, and the song's first
``min_gap`` bars have none). At most half the bars go.

Drawn: ``cut_share`` and ``min_sim`` per song. Persona: the same, drawn
once; the program never reads the generator.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.measure import repeat_similarity, walk_bars
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import EditorStyle, Params
from editorbot.training.data.editors.walk import Walk

#: Smallest distance in bars between a repeat and the bar it repeats.
MIN_GAP_BARS = 4


def draw_params(rng: np.random.Generator) -> Params:
    """Share of bars cut at most (0.15-0.35) and the similarity a repeat needs (0.6-0.85)."""
    return {
        "cut_share": float(np.round(rng.uniform(0.15, 0.35), 2)),
        "min_sim": float(np.round(rng.uniform(0.6, 0.85), 2)),
        "min_gap": MIN_GAP_BARS,
    }


def decide(song: SongContext, p: Params) -> dict[int, tuple[str, str]]:
    """``{bar's first beat: ("CUT", "NEUTRAL")}`` for the closest repeats; ties to the earlier bar."""
    bars = song.bars
    sim, _ = repeat_similarity(bars.timbre, int(p["min_gap"]))
    n_cut = min(int(np.floor(float(p["cut_share"]) * bars.n_bars)), bars.n_bars // 2)
    order = np.lexsort((bars.starts, -sim))[:n_cut]
    return {int(bars.starts[k]): ("CUT", "NEUTRAL") for k in order.tolist() if sim[k] >= float(p["min_sim"])}


def program(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """Edit one section: its bars among the song's closest repeats are cut, the rest kept."""
    walk_bars(w, sec, decide(song, p))


STYLE = EditorStyle(
    "repeat_cut",
    "cuts the bars that most closely repeat an earlier bar (compared over the whole song)",
    draw_params,
    program,
    persona_section=program,
)
