"""Editing a song with a style: the walk, then the plan (``engine.plan.plan_from_actions``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine.plan import EditPlan, plan_from_actions
from editorbot.training.data.editors.registry import get_style
from editorbot.training.data.editors.sections import SongContext, song_context
from editorbot.training.data.editors.style import EditorStyle, Params, jsonable

if TYPE_CHECKING:
    from editorbot.engine.analysis import GriddedSong

log = logging.getLogger(__name__)


@dataclass
class StyledEdit:
    """An edit and how it was made.

    Attributes
    ----------
    plan : EditPlan
        The plan; its walk covers every beat.
    style : str
        The style's name.
    params : Params
        The parameters the style drew (JSON-ready).
    song : SongContext
        The context the style read (sections used).
    """

    plan: EditPlan
    style: str
    params: Params
    song: SongContext


def edit_song(
    style: str | EditorStyle, analysis: GriddedSong, sections: Iterable[Any] | None, rng: np.random.Generator
) -> StyledEdit:
    """Edit a song with a style and keep the params and structure it used.

    Parameters and the walk as in ``edit``.

    Returns
    -------
    StyledEdit
    """
    st = get_style(style)
    song = song_context(analysis, sections)
    walk, params = st.walk(song, rng)
    plan = plan_from_actions(analysis, walk)
    log.debug("%s: %d actions over %d beats, %d segments", st.name, len(walk), song.n_beats, len(plan.segments))
    return StyledEdit(plan=plan, style=st.name, params=jsonable(params), song=song)


def edit(
    style: str | EditorStyle, analysis: GriddedSong, sections: Iterable[Any] | None, rng: np.random.Generator
) -> EditPlan:
    """Edit a song the way ``style`` does.

    Parameters
    ----------
    style : str or EditorStyle
        A name ``get_style`` knows (``STYLES``, studio and persona styles)
        or an ``EditorStyle``.
    analysis : engine.analysis.Analysis or alike
        Anything with ``audio``, ``sha256`` and ``grid`` (``tempo_bpm``,
        ``beat_times`` s, ``downbeats``, ``phrase_starts``), as
        ``plan_from_actions`` takes.
    sections : iterable or None
        The known structure (``training.data.synth.Section`` list), or None
        to infer it from the phrases and the per-beat RMS.
    rng : np.random.Generator
        Every random choice is drawn from it.

    Returns
    -------
    EditPlan
        The plan; its walk covers every beat.

    Examples
    --------
    >>> from training.data.pairs import editor_rng, synth_structure
    >>> st = synth_structure(1, duration_s=20.0)
    >>> plan = edit("radio_edit@1", st.analysis(), st.sections, editor_rng(1, "radio_edit@1"))
    >>> plan.actions[0].beat
    0
    """
    return edit_song(style, analysis, sections, rng).plan
