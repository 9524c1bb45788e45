"""``quiet_filter``: filter the song's quietest bars (a relational style).

The editor measures every bar's RMS level (``measure.BarMeasures.rms_db``)
and filters the bars below the song's ``quantile`` of bar levels with
``filter`` (LOWPASS or HIGHPASS): the quieter half of them deeply
(NEG_LARGE), the rest lightly (NEG_SMALL). Every other bar is kept.
Whether a bar is quiet depends on the whole song, not on the bar alone.

Drawn: ``quantile`` (0.15-0.25) and ``filter`` per song. Persona: the
same, drawn once; the program never reads the generator.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.measure import walk_bars
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import EditorStyle, Params
from editorbot.training.data.editors.walk import Walk


def draw_params(rng: np.random.Generator) -> Params:
    """The loudness quantile under which bars are filtered, and the filter."""
    return {
        "quantile": float(np.round(rng.uniform(0.15, 0.25), 2)),
        "filter": ("LOWPASS", "HIGHPASS")[int(rng.integers(2))],
    }


def decide(song: SongContext, p: Params) -> dict[int, tuple[str, str]]:
    """``{bar's first beat: (filter, amount)}`` for the bars below the song's loudness quantile."""
    bars = song.bars
    if bars.n_bars == 0:
        return {}
    level = bars.rms_db
    cut = float(np.quantile(level, float(p["quantile"])))
    quiet = np.flatnonzero(level < cut)
    deep = float(np.median(level[quiet])) if quiet.size else cut
    return {
        int(bars.starts[k]): (p["filter"], "NEG_LARGE" if level[k] <= deep else "NEG_SMALL") for k in quiet.tolist()
    }


def program(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """Edit one section: its bars among the song's quietest are filtered, the rest kept."""
    walk_bars(w, sec, decide(song, p))


STYLE = EditorStyle(
    "quiet_filter",
    "filters the song's quietest bars (below a quantile of its bar levels)",
    draw_params,
    program,
    persona_section=program,
)
