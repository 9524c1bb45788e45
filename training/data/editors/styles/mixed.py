"""``mixed``: each section edited by one of the other styles, drawn per section.

The params hold one draw of every other style's params and the weights
of the per-section draw; ``section_styles`` records, in order, which style
edited each section. It has no persona form.
"""

from __future__ import annotations

import numpy as np

from editorbot.training.data.editors.choices import draw_choice
from editorbot.training.data.editors.sections import SectionView, SongContext
from editorbot.training.data.editors.style import EditorStyle, Params
from editorbot.training.data.editors.styles import dj_edit, extended_mix, fx_heavy, mastering, radio_edit
from editorbot.training.data.editors.walk import Walk

#: The styles ``mixed`` draws from, by name, in draw order.
MIXED_STYLES: dict[str, EditorStyle] = {
    s.STYLE.name: s.STYLE for s in (radio_edit, extended_mix, dj_edit, fx_heavy, mastering)
}
MIXED_FROM: tuple[str, ...] = tuple(MIXED_STYLES)


def draw_params(rng: np.random.Generator) -> Params:
    """Per-section style weights (sum 1), then every style's params, in ``MIXED_FROM`` order."""
    weights = rng.dirichlet(np.full(len(MIXED_FROM), 1.5))
    return {
        "weights": [float(x) for x in np.round(weights, 4)],
        "styles": {name: MIXED_STYLES[name].draw_params(rng) for name in MIXED_FROM},
        "section_styles": [],
    }


def section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """Edit one section with a style drawn by ``p["weights"]`` (recorded in ``p["section_styles"]``)."""
    name = draw_choice(rng, MIXED_FROM, p["weights"])
    p["section_styles"].append(name)
    MIXED_STYLES[name].section(w, song, sec, p["styles"][name], rng)


STYLE = EditorStyle("mixed", "each section edited by another style", draw_params, section)
