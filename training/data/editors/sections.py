"""Song structure as the editor styles read it: sections, phrases and the song context.

Structure comes from the synthesizer's ground truth when it is known
(``training.data.synth.Section``, through ``known_sections``) and is
inferred from the grid's phrases and the per-beat loudness otherwise
(``infer_sections``). Every position is a beat index; every length is a
number of beats.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine.plan import beat_spans

if TYPE_CHECKING:
    from editorbot.engine.analysis import GriddedSong
    from editorbot.training.data.editors.measure import BarMeasures

#: Section names the styles know; anything else is treated as a verse.
SECTION_NAMES: tuple[str, ...] = ("intro", "verse", "chorus", "bridge", "outro")


@dataclass(frozen=True)
class SectionSpan:
    """One section of a song, in beats.

    Attributes
    ----------
    name : str
        One of ``SECTION_NAMES``.
    start_beat : int
        Index of the section's first beat.
    n_beats : int
        Length in beats (>= 1).
    energy : float
        Loudness/fullness in 0..1 (from the synthesizer, or normalised RMS).
    """

    name: str
    start_beat: int
    n_beats: int
    energy: float

    @property
    def end_beat(self) -> int:
        """Index one past the section's last beat."""
        return self.start_beat + self.n_beats

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"name", "start_beat", "n_beats", "energy"}``."""
        return {"name": self.name, "start_beat": self.start_beat, "n_beats": self.n_beats, "energy": self.energy}


@dataclass(frozen=True)
class SectionView:
    """A section as a style sees it: its span, its place in the song and its phrases.

    Attributes
    ----------
    span : SectionSpan
        The section.
    index : int
        Position among all sections (0 = first).
    n_sections : int
        How many sections the song has.
    ordinal : int
        Position among sections with the same name (0 = first verse).
    count : int
        How many sections have this name.
    phrases : tuple of (int, int)
        ``(start_beat, n_beats)`` of each phrase inside the section, in
        order, covering it exactly.
    next_name : str or None
        Name of the section after this one (None for the last).
    """

    span: SectionSpan
    index: int
    n_sections: int
    ordinal: int
    count: int
    phrases: tuple[tuple[int, int], ...]
    next_name: str | None = None

    @property
    def name(self) -> str:
        """The section's name (``span.name``)."""
        return self.span.name

    @property
    def n_beats(self) -> int:
        """The section's length in beats (``span.n_beats``)."""
        return self.span.n_beats

    @property
    def is_first(self) -> bool:
        """True for the song's first section."""
        return self.index == 0

    @property
    def is_last(self) -> bool:
        """True for the song's last section."""
        return self.index == self.n_sections - 1


def song_beats(analysis: GriddedSong) -> int:
    """Number of beats a plan of ``analysis`` walks over (beats starting inside the audio).

    Parameters
    ----------
    analysis : engine.analysis.Analysis or alike
        Needs ``audio`` (``samples``, ``sample_rate`` Hz, optional
        ``duration_s``) and ``grid`` (``beat_times`` s, ``tempo_bpm``).

    Returns
    -------
    int
        The count of beats ``engine.plan.beat_spans`` keeps.
    """
    audio = analysis.audio
    duration_s = float(getattr(audio, "duration_s", np.asarray(audio.samples).shape[-1] / audio.sample_rate))
    starts, _ = beat_spans(analysis.grid.beat_times, duration_s, tempo_bpm=float(analysis.grid.tempo_bpm))
    return int(starts.size)


def _beat_energy(analysis: GriddedSong, n_beats: int) -> np.ndarray | None:
    """``(n_beats,)`` per-beat RMS from the analysis features, or None without them."""
    names = getattr(analysis, "feature_names", None)
    features = getattr(analysis, "features", None)
    if names is None or features is None or "rms" not in names:
        return None
    rms = np.asarray(features, dtype=np.float64)[:, list(names).index("rms")]
    if rms.shape[0] < n_beats:
        return None
    return rms[:n_beats]


def infer_sections(
    n_beats: int, phrase_starts: Sequence[int], energy: np.ndarray | None = None
) -> list[SectionSpan]:
    """Sections of a song whose structure is unknown, from its phrases and loudness.

    Each phrase (from one phrase start to the next; beats before the first
    one join the first phrase) gets a name: the first is the intro and the
    last the outro when the song has at least three phrases; of the rest,
    those louder than the median phrase are choruses and the others verses.
    Neighbouring phrases with the same name are merged.

    Parameters
    ----------
    n_beats : int
        Beats in the song.
    phrase_starts : sequence of int
        Beat indices of phrase starts (``engine.grid.Grid``).
    energy : np.ndarray or None
        ``(n_beats,)`` per-beat loudness (any unit, e.g. RMS), or None:
        then every middle phrase is a verse.

    Returns
    -------
    list of SectionSpan
        Sections covering beats ``0 .. n_beats - 1`` exactly, in order;
        energies normalised to 0..1 over the song's phrases.
    """
    if n_beats < 1:
        return []
    starts = sorted({int(p) for p in phrase_starts if 0 <= int(p) < n_beats})
    cuts = starts[1:]  # beats before the first phrase start join the first phrase
    bounds = [0, *cuts, n_beats]
    spans = list(itertools.pairwise(bounds))
    if energy is not None:
        level = np.array([float(np.mean(energy[a:b])) for a, b in spans])
        lo, hi = float(level.min()), float(level.max())
        norm = (level - lo) / (hi - lo) if hi > lo else np.full(level.shape, 0.5)
    else:
        norm = np.full(len(spans), 0.5)
    middle = norm[1:-1] if len(spans) >= 3 else norm
    median = float(np.median(middle)) if middle.size else 0.5
    names = []
    for k in range(len(spans)):
        if len(spans) >= 3 and k == 0:
            names.append("intro")
        elif len(spans) >= 3 and k == len(spans) - 1:
            names.append("outro")
        elif energy is not None and norm[k] > median:
            names.append("chorus")
        else:
            names.append("verse")
    out: list[SectionSpan] = []
    for (a, b), name, e in zip(spans, names, norm, strict=True):
        if out and out[-1].name == name:
            prev = out[-1]
            merged_energy = (prev.energy * prev.n_beats + float(e) * (b - a)) / (prev.n_beats + b - a)
            out[-1] = SectionSpan(name, prev.start_beat, prev.n_beats + b - a, round(merged_energy, 3))
        else:
            out.append(SectionSpan(name, a, b - a, round(float(e), 3)))
    return out


def known_sections(sections: Iterable[Any], n_beats: int) -> list[SectionSpan]:
    """``SectionSpan``s from known sections, covering every beat of the song.

    Sections are clipped to ``n_beats``; a gap before the first or between
    sections joins the section before it (the first section starts at beat
    0). An unknown name becomes ``"verse"``.

    Parameters
    ----------
    sections : iterable
        Anything with ``name``, ``start_beat``, ``n_beats`` and (optional,
        default 0.5) ``energy`` in 0..1, e.g. ``training.data.synth.Section``.
    n_beats : int
        Beats in the song.

    Returns
    -------
    list of SectionSpan
        In order of start beat.

    Raises
    ------
    ValueError
        No section starts inside the song.
    """
    raw = sorted(
        (int(s.start_beat), int(s.n_beats), str(s.name), float(getattr(s, "energy", 0.5))) for s in sections
    )
    raw = [r for r in raw if r[0] < n_beats and r[1] > 0]
    if not raw:
        raise ValueError(f"no section starts inside the song's {n_beats} beats")
    out: list[SectionSpan] = []
    for k, (start, _, name, energy) in enumerate(raw):
        begin = 0 if k == 0 else start
        end = raw[k + 1][0] if k + 1 < len(raw) else n_beats
        if end > begin:
            out.append(SectionSpan(name if name in SECTION_NAMES else "verse", begin, end - begin, energy))
    return out


@dataclass(frozen=True)
class SongContext:
    """What every style program reads: beats, phrases and sections.

    Attributes
    ----------
    n_beats : int
        Beats the walk covers.
    beat_s : float
        Median beat period in seconds.
    phrase_starts : tuple of int
        Beat indices of phrase starts (the first is 0).
    sections : tuple of SectionSpan
        The song's sections, covering every beat.
    source : engine.analysis.Analysis or alike, or None
        The analysis the context was built from (its audio and grid), for
        the styles that measure the whole song (``bars``); None when built
        without one.
    """

    n_beats: int
    beat_s: float
    phrase_starts: tuple[int, ...]
    sections: tuple[SectionSpan, ...]
    source: Any = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def bars(self) -> BarMeasures:
        """Every bar's loudness and timbre measured on the source audio (``measure.measure_bars``), once.

        Raises
        ------
        ValueError
            The context has no source analysis.
        """
        from editorbot.training.data.editors.measure import measure_bars

        if self.source is None:
            raise ValueError("this song context has no audio to measure (built without a source analysis)")
        return measure_bars(self, self.source)

    def views(self) -> list[SectionView]:
        """A ``SectionView`` per section, in order, with ordinals and phrases filled in."""
        counts: dict[str, int] = {}
        for s in self.sections:
            counts[s.name] = counts.get(s.name, 0) + 1
        seen: dict[str, int] = {}
        out = []
        for k, s in enumerate(self.sections):
            cuts = [p for p in self.phrase_starts if s.start_beat < p < s.end_beat]
            bounds = [s.start_beat, *cuts, s.end_beat]
            phrases = tuple((a, b - a) for a, b in itertools.pairwise(bounds))
            nxt = self.sections[k + 1].name if k + 1 < len(self.sections) else None
            out.append(SectionView(s, k, len(self.sections), seen.get(s.name, 0), counts[s.name], phrases, nxt))
            seen[s.name] = seen.get(s.name, 0) + 1
        return out

    def last_chorus_index(self) -> int:
        """Index of the song's last chorus section (-1 if none)."""
        idx = [k for k, s in enumerate(self.sections) if s.name == "chorus"]
        return idx[-1] if idx else -1


def song_context(analysis: GriddedSong, sections: Iterable[Any] | None = None) -> SongContext:
    """Build the ``SongContext`` of an analysis, with known or inferred sections.

    Parameters
    ----------
    analysis : engine.analysis.Analysis or alike
        Anything with ``audio`` and ``grid`` (``tempo_bpm``, ``beat_times``
        s, ``phrase_starts``); ``features`` / ``feature_names`` (optional)
        give the loudness used to infer sections.
    sections : iterable or None
        Known sections (e.g. the synthesizer's), or None to infer them.

    Returns
    -------
    SongContext

    Raises
    ------
    ValueError
        The song has no beat inside its audio.
    """
    n_beats = song_beats(analysis)
    if n_beats < 1:
        raise ValueError("the song has no beats to edit")
    grid = analysis.grid
    bt = np.asarray(grid.beat_times, dtype=np.float64)[:n_beats]
    beat_s = float(np.median(np.diff(bt))) if n_beats >= 2 else 60.0 / float(grid.tempo_bpm)
    phrase_starts = getattr(grid, "phrase_starts", None)
    if phrase_starts is None:
        phrase_starts = np.arange(0, n_beats, 16)
    starts = sorted({int(p) for p in phrase_starts if 0 <= int(p) < n_beats})
    # Beats before the first phrase start (a pickup) join the first phrase.
    phrase_starts = (0, *starts[1:])
    if sections is None:
        spans = infer_sections(n_beats, phrase_starts, _beat_energy(analysis, n_beats))
    else:
        spans = known_sections(sections, n_beats)
    return SongContext(
        n_beats=n_beats, beat_s=beat_s, phrase_starts=phrase_starts, sections=tuple(spans), source=analysis
    )
