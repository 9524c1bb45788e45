"""Editor styles: programs that edit a song the way one kind of editor would.

The synthetic data generator needs (raw, edited) pairs with exact labels.
An editor style turns a song's beat grid and structure into a walk of
factored actions (``engine.actions``) and so into an ``EditPlan``
(``engine.plan.plan_from_actions``); the plan is the label, its rendering
is the desired output.

A style is a small program run section by section. Every section is
covered by actions whose sizes add up to exactly its length in beats, so
the walk covers every beat of the song and each beat has one action
covering it (``beat_labels``). Styles:

- ``radio_edit``: short intro (the rest of it cut, sometimes faded in),
  one verse (sometimes the bridge) dropped, a louder last chorus, a fade at
  the end and the tail cut.
- ``extended_mix``: intro and outro phrases looped (DJ-friendly), fades in
  and out, a looped bar at the end of choruses.
- ``dj_edit``: phrase ends decorated with stutters, echo outs (DELAY or
  REVERB), filter sweeps (HIGHPASS rising, LOWPASS closing), loops,
  reversed bars and drop gaps (SILENCE); a filtered or looped intro and an
  echoed or filtered outro.
- ``fx_heavy``: pitch, speed, reverb and distortion on choruses; width,
  reverb, delay and gain on verses; reversed bars into choruses.
- ``mastering``: a treatment per section role (gain, compression, bass,
  treble, width), phrase by phrase.
- ``mixed``: each section edited by one of the styles above, drawn per
  section.

Studio styles (``STUDIO_STYLES``, outside ``STYLES``): ``studio`` and
``studio_edits`` walk as ``mixed`` does, and the editor then runs a fixed
studio chain no plan effect expresses (``studio_chain``: ladder low-pass,
chorus, saturation) over the whole edit or over the edited spans only
(``apply_studio``). The plan is the label; the chain is the editor's sound.

Persona styles (``PERSONA_STYLES``, outside ``STYLES``; any ``BASE@N`` is
found by ``get_style``): ``radio_edit@1``, ``extended_mix@1``,
``dj_edit@1``, ``fx_heavy@1`` and ``mastering@1`` are one editor each, with
fixed taste. The styles above draw their params per song and flip coins per
section, choices no audio reveals, so no policy can learn them beat for
beat; a persona draws the base style's params once (``persona_params``,
from its own seed, the same for every song) and replaces every per-section
draw with a rule on what a listener hears: the section's role, its ordinal,
its length, its energy, its place in the song and what comes next. It never
reads the generator it is given, so the same song always gets the same edit.

Every random choice comes from the ``np.random.Generator`` passed in, in a
fixed order, so the same generator state gives the same plan.

Song structure comes from the synthesizer's ground truth when it is known
(``training.data.synth.Section``) and is inferred from the grid's phrases
and the per-beat loudness otherwise (``infer_sections``).
"""

from __future__ import annotations

import copy
import functools
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import actions as vocab
from engine.plan import EditPlan, beat_spans, plan_from_actions

log = logging.getLogger(__name__)

#: The four amounts an amount type allows, NEG_LARGE .. POS_LARGE.
AMOUNT_CHOICES: tuple[str, ...] = ("NEG_LARGE", "NEG_SMALL", "POS_SMALL", "POS_LARGE")
#: Section names the styles know; anything else is treated as a verse.
SECTION_NAMES: tuple[str, ...] = ("intro", "verse", "chorus", "bridge", "outro")
_SIZE_BY_BEATS: dict[int, str] = {b: vocab.SIZES[i] for i, b in enumerate(vocab.SIZE_BEATS)}

Triple = tuple[str, str, str]


# --------------------------------------------------------------------------
# Song structure


@dataclass(frozen=True)
class SectionSpan:
    """One section of a song, in beats.

    Attributes:
        name: one of ``SECTION_NAMES``.
        start_beat: index of the section's first beat.
        n_beats: length in beats (>= 1).
        energy: 0..1 loudness/fullness (from the synthesizer or from RMS).
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
        """JSON-ready form."""
        return {"name": self.name, "start_beat": self.start_beat, "n_beats": self.n_beats, "energy": self.energy}


@dataclass(frozen=True)
class SectionView:
    """A section as a style sees it: its span, its place in the song and its phrases.

    Attributes:
        span: the section.
        index: position among all sections (0 = first).
        n_sections: how many sections the song has.
        ordinal: position among sections with the same name (0 = first verse).
        count: how many sections have this name.
        phrases: ``(start_beat, n_beats)`` of each phrase inside the section,
            in order, covering it exactly.
        next_name: name of the section after this one (None for the last).
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
        return self.span.name

    @property
    def n_beats(self) -> int:
        return self.span.n_beats

    @property
    def is_first(self) -> bool:
        return self.index == 0

    @property
    def is_last(self) -> bool:
        return self.index == self.n_sections - 1


def song_beats(analysis: Any) -> int:
    """Number of beats a plan of ``analysis`` walks over (beats starting inside the audio)."""
    audio = analysis.audio
    duration_s = float(getattr(audio, "duration_s", np.asarray(audio.samples).shape[-1] / audio.sample_rate))
    starts, _ = beat_spans(analysis.grid.beat_times, duration_s, tempo_bpm=float(analysis.grid.tempo_bpm))
    return int(starts.size)


def _beat_energy(analysis: Any, n_beats: int) -> np.ndarray | None:
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

    Parameters:
        n_beats: beats in the song.
        phrase_starts: beat indices of phrase starts (``engine.grid.Grid``).
        energy: ``(n_beats,)`` per-beat loudness (any unit, e.g. RMS), or
            None: then every middle phrase is a verse.

    Returns:
        Sections covering beats ``0 .. n_beats - 1`` exactly, in order.
    """
    if n_beats < 1:
        return []
    starts = sorted({int(p) for p in phrase_starts if 0 <= int(p) < n_beats})
    cuts = starts[1:]  # beats before the first phrase start join the first phrase
    bounds = [0, *cuts, n_beats]
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
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
    """``SectionSpan``s from known sections (anything with ``name``, ``start_beat``, ``n_beats``, ``energy``).

    Sections are clipped to ``n_beats``; a gap before the first or between
    sections joins the section before it (the first section starts at beat 0),
    so the result covers every beat.

    Raises:
        ValueError: no section starts inside the song.
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

    Attributes:
        n_beats: beats the walk covers.
        beat_s: median beat period in seconds.
        phrase_starts: beat indices of phrase starts.
        sections: the song's sections, covering every beat.
    """

    n_beats: int
    beat_s: float
    phrase_starts: tuple[int, ...]
    sections: tuple[SectionSpan, ...]

    def views(self) -> list[SectionView]:
        """A ``SectionView`` per section, with ordinals and phrases filled in."""
        counts: dict[str, int] = {}
        for s in self.sections:
            counts[s.name] = counts.get(s.name, 0) + 1
        seen: dict[str, int] = {}
        out = []
        for k, s in enumerate(self.sections):
            cuts = [p for p in self.phrase_starts if s.start_beat < p < s.end_beat]
            bounds = [s.start_beat, *cuts, s.end_beat]
            phrases = tuple((a, b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
            nxt = self.sections[k + 1].name if k + 1 < len(self.sections) else None
            out.append(SectionView(s, k, len(self.sections), seen.get(s.name, 0), counts[s.name], phrases, nxt))
            seen[s.name] = seen.get(s.name, 0) + 1
        return out


def song_context(analysis: Any, sections: Iterable[Any] | None = None) -> SongContext:
    """Build the ``SongContext`` of an analysis, with known or inferred sections.

    Parameters:
        analysis: an ``engine.analysis.Analysis`` or anything with ``audio``
            and ``grid`` (``tempo_bpm``, ``beat_times`` s, ``phrase_starts``);
            ``features`` / ``feature_names`` (optional) give the loudness
            used to infer sections.
        sections: known sections (e.g. the synthesizer's), or None to infer.
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
    return SongContext(n_beats=n_beats, beat_s=beat_s, phrase_starts=phrase_starts, sections=tuple(spans))


# --------------------------------------------------------------------------
# Building a walk


class Walk:
    """A walk of actions built section by section; ``n`` beats covered so far."""

    def __init__(self) -> None:
        self.actions: list[Triple] = []
        self.n = 0

    def add(self, type_name: str, n_beats: int, amount: str = "NEUTRAL") -> None:
        """One action of exactly ``n_beats`` beats (a size in ``SIZE_BEATS``)."""
        if n_beats not in _SIZE_BY_BEATS:
            raise ValueError(f"{n_beats} beats is not an action size")
        self.actions.append((type_name, _SIZE_BY_BEATS[n_beats], amount))
        self.n += n_beats

    def fill(self, type_name: str, n_beats: int, amount: str = "NEUTRAL", *, max_beats: int = 32) -> None:
        """Cover ``n_beats`` beats with ``type_name`` actions, largest sizes first (at most ``max_beats``)."""
        left = n_beats
        for size in sorted(vocab.SIZE_BEATS, reverse=True):
            if size > max_beats:
                continue
            while left >= size:
                self.add(type_name, size, amount)
                left -= size

    def keep(self, n_beats: int) -> None:
        """Leave ``n_beats`` beats untouched."""
        self.fill("KEEP", n_beats)


def _jsonable(x: Any) -> Any:
    """``x`` with numpy scalars and tuples turned into plain JSON types."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _fit(n_beats: int, wanted: int) -> int:
    """The largest action size <= min(wanted, n_beats) (0 if ``n_beats`` is 0)."""
    limit = min(wanted, n_beats)
    fits = [b for b in vocab.SIZE_BEATS if b <= limit]
    return max(fits) if fits else 0


def _amount(rng: np.random.Generator, favourite: str | None = None, p_favourite: float = 0.6) -> str:
    """An amount for an amount type: ``favourite`` with probability ``p_favourite``, else any of the four."""
    if favourite is not None and rng.random() < p_favourite:
        return favourite
    return AMOUNT_CHOICES[int(rng.integers(len(AMOUNT_CHOICES)))]


def _choose(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None) -> Any:
    """One of ``options`` (any objects), optionally weighted by ``p``."""
    if p is not None:
        w = np.asarray(p, dtype=np.float64)
        return options[int(rng.choice(len(options), p=w / w.sum()))]
    return options[int(rng.integers(len(options)))]


def _sweep(rng: np.random.Generator, n_steps: int, *, rising: bool) -> list[str]:
    """``n_steps`` amounts in ascending (``rising``) or descending order, for a filter sweep."""
    replace = n_steps > len(AMOUNT_CHOICES)
    idx = np.sort(rng.choice(len(AMOUNT_CHOICES), size=n_steps, replace=replace))
    names = [AMOUNT_CHOICES[int(i)] for i in idx]
    return names if rising else names[::-1]


def _build_into_chorus(rng: np.random.Generator, kind: str) -> list[tuple[str, int, str]]:
    """The last beats of a section before a chorus: ``(type, beats, amount)`` pieces.

    kinds: ``stutter`` (slices getting finer, sometimes ending on a silent
    beat), ``reverse`` (a reversed bar or beat), ``gap`` (silence: a beat,
    two, a bar or two bars).
    """
    if kind == "stutter":
        shape = _choose(rng, ("beats", "beats_gap", "bar", "two_bars"))
        if shape == "beats":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL", "NEG_LARGE")]
        if shape == "beats_gap":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL")] + [("SILENCE", 1, "NEUTRAL")]
        if shape == "bar":
            return [("STUTTER", 4, _amount(rng))]
        return [("STUTTER", 4, "POS_SMALL"), ("STUTTER", 4, "NEG_SMALL")]
    if kind == "reverse":
        return [("REVERSE", int(_choose(rng, (1, 4), (0.3, 0.7))), "NEUTRAL")]
    return [("SILENCE", b, "NEUTRAL") for b in _choose(rng, ((1,), (1, 1), (4,), (8,)), (0.2, 0.2, 0.4, 0.2))]


def _keep_then(w: Walk, n: int, tail: list[tuple[str, int, str]]) -> None:
    """KEEP the first beats of an ``n``-beat span and end it with ``tail`` (trimmed from its front to fit)."""
    length = sum(b for _, b, _ in tail)
    while tail and length > n:
        length -= tail[0][1]
        tail = tail[1:]
    w.keep(n - length)
    for t, b, a in tail:
        w.add(t, b, a)


# --------------------------------------------------------------------------
# Styles


Params = dict[str, Any]
SectionProgram = Callable[[Walk, SongContext, SectionView, Params, np.random.Generator], None]


@dataclass(frozen=True)
class EditorStyle:
    """An editor style: how to draw its parameters and how to edit one section.

    Attributes:
        name: key in ``STYLES``.
        summary: one line for ``--help`` and the dataset card.
        draw_params: ``rng -> params``, the style's random settings for one song.
        section: ``(walk, song, section, params, rng) -> None``; appends
            actions covering exactly the section's beats to ``walk``.
    """

    name: str
    summary: str
    draw_params: Callable[[np.random.Generator], Params]
    section: SectionProgram

    def walk(self, song: SongContext, rng: np.random.Generator) -> tuple[list[Triple], Params]:
        """The style's walk over ``song`` and the params it drew (params first, then sections, from ``rng``)."""
        params = self.draw_params(rng)
        w = Walk()
        for view in song.views():
            self.section(w, song, view, params, rng)
            if w.n != view.span.end_beat:
                raise AssertionError(
                    f"style {self.name}: section {view.index} ({view.name}) ends at beat {w.n}, "
                    f"expected {view.span.end_beat}"
                )
        return w.actions, params


# -- radio_edit


def _radio_params(rng: np.random.Generator) -> Params:
    return {
        "intro_keep_beats": int(_choose(rng, (0, 4, 8, 16), (0.2, 0.3, 0.3, 0.2))),
        "intro_fade_in": bool(rng.random() < 0.7),
        "break_before_last_chorus": str(_choose(rng, ("", "gap", "stutter"), (0.4, 0.35, 0.25))),
        "drop_verse": int(rng.integers(0, 3)),  # ordinal of the verse cut (0 = first)
        "cut_bridge": bool(rng.random() < 0.5),
        "last_chorus_gain": str(_choose(rng, ("", "POS_SMALL", "POS_LARGE"), (0.4, 0.4, 0.2))),
        "outro_keep_beats": int(_choose(rng, (0, 4, 8))),
        "fade_out_beats": int(_choose(rng, (8, 16, 32))),
    }


def _radio_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    n = sec.n_beats
    if sec.is_last:
        keep = min(p["outro_keep_beats"], n - 1)
        fade = _fit(n - keep, p["fade_out_beats"])
        w.keep(keep)
        w.add("FADE_OUT", fade)
        w.fill("CUT", n - keep - fade)
    elif sec.is_first and sec.name == "intro":
        keep = min(p["intro_keep_beats"], n)
        w.fill("CUT", n - keep)
        if keep and p["intro_fade_in"]:
            w.add("FADE_IN", _fit(keep, keep))
            w.keep(keep - _fit(keep, keep))
        else:
            w.keep(keep)
    elif sec.name == "verse" and sec.ordinal == p["drop_verse"] and sec.count > 1:
        w.fill("CUT", n)
    elif sec.name == "bridge" and p["cut_bridge"]:
        w.fill("CUT", n)
    elif sec.name == "chorus" and sec.ordinal == sec.count - 1 and p["last_chorus_gain"]:
        w.fill("GAIN", n, p["last_chorus_gain"])
    elif sec.next_name == "chorus" and p["break_before_last_chorus"] and sec.index == _last_chorus_index(song) - 1:
        _keep_then(w, n, _build_into_chorus(rng, p["break_before_last_chorus"]))
    else:
        w.keep(n)


def _last_chorus_index(song: SongContext) -> int:
    """Index of the song's last chorus section (-1 if none)."""
    idx = [k for k, s in enumerate(song.sections) if s.name == "chorus"]
    return idx[-1] if idx else -1


# -- extended_mix


def _extended_params(rng: np.random.Generator) -> Params:
    return {
        "intro_fade_in_beats": int(_choose(rng, (0, 4, 8, 16), (0.1, 0.2, 0.3, 0.4))),
        "intro_loop_beats": int(_choose(rng, (4, 8, 16))),
        "intro_loop_amount": _amount(rng),
        "outro_loop_beats": int(_choose(rng, (4, 8, 16))),
        "outro_loop_amount": _amount(rng),
        "outro_fade_out_beats": int(_choose(rng, (0, 8, 16), (0.3, 0.35, 0.35))),
        "chorus_loop_p": float(np.round(rng.uniform(0.2, 0.8), 3)),
        "chorus_loop_beats": int(_choose(rng, (1, 4, 8))),
        "build_p": float(np.round(rng.uniform(0.2, 0.8), 3)),
    }


def _extended_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    n = sec.n_beats
    if sec.is_first and sec.name == "intro":
        fade = _fit(n, p["intro_fade_in_beats"]) if p["intro_fade_in_beats"] else 0
        if fade:
            w.add("FADE_IN", fade)
        w.fill("LOOP", n - fade, p["intro_loop_amount"], max_beats=p["intro_loop_beats"])
    elif sec.is_last:
        fade = _fit(n, p["outro_fade_out_beats"]) if p["outro_fade_out_beats"] else 0
        loop = _fit(n - fade, p["outro_loop_beats"])
        w.keep(n - fade - loop)
        if loop:
            w.add("LOOP", loop, p["outro_loop_amount"])
        if fade:
            w.add("FADE_OUT", fade)
    elif sec.name == "chorus" and rng.random() < p["chorus_loop_p"]:
        loop = _fit(n, p["chorus_loop_beats"])
        w.keep(n - loop)
        w.add("LOOP", loop, _amount(rng, "NEG_LARGE"))
    elif sec.next_name == "chorus" and rng.random() < p["build_p"]:
        _keep_then(w, n, _build_into_chorus(rng, _choose(rng, ("stutter", "reverse"), (0.7, 0.3))))
    else:
        w.keep(n)


# -- dj_edit

DJ_DECORATIONS: tuple[str, ...] = ("stutter", "delay", "reverb", "highpass", "lowpass", "loop", "reverse", "gap")
#: Dirichlet concentration of each decoration's weight (higher: more common on average).
DJ_ALPHA: tuple[float, ...] = (3.0, 3.0, 1.0, 2.5, 2.5, 2.0, 3.5, 4.0)


def _dj_params(rng: np.random.Generator) -> Params:
    return {
        "decorate_p": float(np.round(rng.uniform(0.5, 1.0), 3)),
        "weights": [float(x) for x in np.round(rng.dirichlet(DJ_ALPHA), 4)],
        "intro": str(_choose(rng, ("loop", "filter_in", "fade_in"))),
        "intro_filter": str(_choose(rng, ("LOWPASS", "HIGHPASS"))),
        "outro": str(_choose(rng, ("echo_out", "filter_out", "fade_out"))),
        "stutter_amount": _amount(rng),
        "echo_amount": _amount(rng),
        "loop_amount": _amount(rng),
    }


def _dj_decorate(w: Walk, n: int, p: Params, rng: np.random.Generator, *, into_chorus: bool = False) -> None:
    """One phrase of ``n`` beats: KEEP, then (maybe) a decoration on its last beats.

    The phrase before a chorus is decorated more often, half the time with a
    rising highpass (the build into the drop).
    """
    if rng.random() >= (max(p["decorate_p"], 0.9) if into_chorus else p["decorate_p"]):
        w.keep(n)
        return
    kind = _choose(rng, DJ_DECORATIONS, p["weights"])
    if into_chorus and rng.random() < 0.5:
        kind = "highpass"
    tail: list[tuple[str, int, str]] = []
    if kind == "stutter":
        shape = _choose(rng, ("bar", "two_bars", "beats"))
        if shape == "beats":
            tail = [("STUTTER", 1, "POS_LARGE"), ("STUTTER", 1, "POS_SMALL"), ("STUTTER", 1, "NEG_SMALL"), ("STUTTER", 1, "NEG_LARGE")]
        elif shape == "two_bars":
            tail = [("STUTTER", 4, "POS_LARGE"), ("STUTTER", 4, _amount(rng, p["stutter_amount"]))]
        else:
            tail = [("STUTTER", 4, _amount(rng, p["stutter_amount"]))]
    elif kind in ("delay", "reverb"):
        tail = [(kind.upper(), int(_choose(rng, (4, 8))), _amount(rng, p["echo_amount"]))]
    elif kind in ("highpass", "lowpass"):
        bars = int(_choose(rng, (2, 4)))
        # A highpass opens upwards into the drop; a lowpass closes down (or opens up).
        rising = kind == "highpass" or rng.random() < 0.5
        tail = [(kind.upper(), 4, a) for a in _sweep(rng, bars, rising=rising)]
    elif kind == "loop":
        tail = [("LOOP", int(_choose(rng, (1, 4, 8))), _amount(rng, p["loop_amount"]))]
    elif kind == "reverse":
        tail = [("REVERSE", int(_choose(rng, (1, 4, 8), (0.1, 0.5, 0.4))), "NEUTRAL")]
    else:  # gap
        tail = [("SILENCE", int(_choose(rng, (1, 4, 8), (0.2, 0.5, 0.3))), "NEUTRAL")]
    _keep_then(w, n, tail)


def _dj_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    phrases = list(sec.phrases)
    if sec.is_first and sec.name == "intro" and phrases:
        _, n = phrases.pop(0)
        if p["intro"] == "loop":
            loop = _fit(n, int(_choose(rng, (8, 16))))
            w.add("LOOP", loop, _amount(rng, p["loop_amount"]))
            w.keep(n - loop)
        elif p["intro"] == "filter_in":
            bars = min(4, n // 4)
            # Opening up: a lowpass rises, a highpass falls.
            for a in _sweep(rng, bars, rising=p["intro_filter"] == "LOWPASS"):
                w.add(p["intro_filter"], 4, a)
            w.keep(n - 4 * bars)
        else:
            fade = _fit(n, 16)
            w.add("FADE_IN", fade)
            w.keep(n - fade)
    last = phrases.pop() if sec.is_last and phrases else None
    for k, (_, n) in enumerate(phrases):
        into_chorus = sec.next_name == "chorus" and k == len(phrases) - 1
        _dj_decorate(w, n, p, rng, into_chorus=into_chorus)
    if last is not None:
        _, n = last
        if p["outro"] == "echo_out":
            echo = _fit(n, 8)
            w.keep(n - echo)
            w.add(str(_choose(rng, ("DELAY", "REVERB"), (0.7, 0.3))), echo, _amount(rng, p["echo_amount"]))
        elif p["outro"] == "filter_out":
            bars = min(4, n // 4)
            w.keep(n - 4 * bars)
            for a in _sweep(rng, bars, rising=False):
                w.add("LOWPASS", 4, a)
        else:
            fade = _fit(n, 16)
            w.keep(n - fade)
            w.add("FADE_OUT", fade)


# -- fx_heavy

FX_CHORUS: tuple[str, ...] = ("PITCH", "SPEED", "REVERB", "DISTORTION")
FX_CHORUS_P: tuple[float, ...] = (0.25, 0.25, 0.15, 0.35)
FX_VERSE: tuple[str, ...] = ("WIDTH", "DELAY", "GAIN")


def _fx_params(rng: np.random.Generator) -> Params:
    picks = rng.choice(len(FX_CHORUS), size=2, replace=False, p=FX_CHORUS_P)
    chorus = [FX_CHORUS[int(i)] for i in picks]
    return {
        "chorus_fx": chorus,
        "fx_beats": int(_choose(rng, (4, 8, 16))),
        "chorus_keep_p": float(np.round(rng.uniform(0.0, 0.3), 3)),
        "verse_fx_p": float(np.round(rng.uniform(0.3, 0.8), 3)),
        "verse_fx": str(_choose(rng, FX_VERSE, (0.3, 0.5, 0.2))),
        "intro_swell_beats": int(_choose(rng, (0, 8, 16))),
        "chorus_phrase_end": [float(x) for x in np.round(rng.dirichlet((2.0, 2.0, 2.0)), 4)],
        "into_chorus_p": float(np.round(rng.uniform(0.3, 0.9), 3)),
        "into_chorus": [float(x) for x in np.round(rng.dirichlet((2.0, 2.0, 2.0)), 4)],
        "favourite": {t: _amount(rng) for t in dict.fromkeys((*FX_CHORUS, *FX_VERSE))},
    }


def _fx_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    fav = p["favourite"]
    if sec.name == "chorus" or (sec.is_last and sec.name == "outro"):
        k = 0
        for _, n in sec.phrases:
            # Each phrase may end on a reversed bar or a silent beat or bar.
            end = _choose(rng, ("none", "reverse", "gap"), p["chorus_phrase_end"])
            tail = 0 if end == "none" or n < 8 else int(_choose(rng, (1, 4))) if end == "gap" else 4
            left = n - tail
            while left > 0:
                size = _fit(left, p["fx_beats"])
                if rng.random() < p["chorus_keep_p"]:
                    w.add("KEEP", size)
                else:
                    t = p["chorus_fx"][k % len(p["chorus_fx"])]
                    w.add(t, size, _amount(rng, fav.get(t)))
                    k += 1
                left -= size
            if tail:
                w.add("REVERSE" if end == "reverse" else "SILENCE", tail)
        return
    n = sec.n_beats
    swell = 0
    if sec.is_first and sec.name == "intro" and p["intro_swell_beats"]:
        swell = _fit(n, p["intro_swell_beats"])
        w.add("FADE_IN", swell)
        n -= swell
    tail: list[tuple[str, int, str]] = []
    if sec.next_name == "chorus" and rng.random() < p["into_chorus_p"]:
        tail = _build_into_chorus(rng, _choose(rng, ("stutter", "reverse", "gap"), p["into_chorus"]))
        while tail and sum(b for _, b, _ in tail) > n:
            tail = tail[1:]
    body = n - sum(b for _, b, _ in tail)
    if sec.name == "bridge":
        t = str(_choose(rng, ("SPEED", "PITCH", "REVERSE", "LOWPASS")))
        size = _fit(body, 8)
        if size:
            w.add(t, size, "NEUTRAL" if t == "REVERSE" else _amount(rng, fav.get(t)))
        w.keep(body - size)
    elif rng.random() < p["verse_fx_p"]:
        t = p["verse_fx"]
        size = _fit(body, int(_choose(rng, (8, 16, 32))))
        w.keep(body - size)
        if size:
            w.add(t, size, _amount(rng, fav.get(t)))
    else:
        w.keep(body)
    for t, b, a in tail:
        w.add(t, b, a)


# -- mastering

MASTER_TYPES: tuple[str, ...] = ("GAIN", "COMPRESS", "BASS", "TREBLE", "WIDTH")


def _master_params(rng: np.random.Generator) -> Params:
    roles = {}
    for role in SECTION_NAMES:
        picks = rng.choice(len(MASTER_TYPES), size=2, replace=False)
        roles[role] = [MASTER_TYPES[int(i)] for i in picks]
    return {
        "roles": roles,
        "amounts": {t: _amount(rng) for t in MASTER_TYPES},
        "keep_p": float(np.round(rng.uniform(0.0, 0.3), 3)),
        "span_beats": int(_choose(rng, (8, 16, 32))),
    }


def _master_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    treatments = p["roles"].get(sec.name, p["roles"]["verse"])
    k = 0
    for _, n in sec.phrases:
        left = n
        while left > 0:
            size = _fit(left, p["span_beats"])
            if rng.random() < p["keep_p"]:
                w.add("KEEP", size)
            else:
                t = treatments[k % len(treatments)]
                w.add(t, size, _amount(rng, p["amounts"][t], 0.8))
                k += 1
            left -= size


# -- mixed

MIXED_FROM: tuple[str, ...] = ("radio_edit", "extended_mix", "dj_edit", "fx_heavy", "mastering")


def _mixed_params(rng: np.random.Generator) -> Params:
    weights = rng.dirichlet(np.full(len(MIXED_FROM), 1.5))
    return {
        "weights": [float(x) for x in np.round(weights, 4)],
        "styles": {name: STYLES[name].draw_params(rng) for name in MIXED_FROM},
        "section_styles": [],
    }


def _mixed_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    name = _choose(rng, MIXED_FROM, p["weights"])
    p["section_styles"].append(name)
    STYLES[name].section(w, song, sec, p["styles"][name], rng)


STYLES: dict[str, EditorStyle] = {
    "radio_edit": EditorStyle(
        "radio_edit", "short intro, a verse dropped, fade at the end", _radio_params, _radio_section
    ),
    "extended_mix": EditorStyle(
        "extended_mix", "intro and outro phrases looped, fades in and out", _extended_params, _extended_section
    ),
    "dj_edit": EditorStyle(
        "dj_edit",
        "loops, filter sweeps, echo outs and stutters at phrase ends",
        _dj_params,
        _dj_section,
    ),
    "fx_heavy": EditorStyle(
        "fx_heavy", "pitch, speed, reverb and distortion on choruses", _fx_params, _fx_section
    ),
    "mastering": EditorStyle(
        "mastering", "gain, compression, bass, treble and width per section", _master_params, _master_section
    ),
    "mixed": EditorStyle("mixed", "each section edited by another style", _mixed_params, _mixed_section),
}


# -- studio: the same walk as ``mixed``, then a fixed chain outside the vocabulary

#: Where a studio style's chain runs: over the whole edited output ("all"), or
#: only over audio an action other than KEEP placed ("edits").
STUDIO_SCOPES: tuple[str, ...] = ("all", "edits")
#: Seconds over which the "edits" scope fades the chain in and out at segment edges.
STUDIO_RAMP_S = 0.010


def studio_chain() -> Any:
    """The fixed studio chain: a ``pedalboard.Pedalboard`` no EditPlan effect can express.

    A 12 dB/octave ladder low-pass at 2.5 kHz with some resonance, a slow
    light chorus and a little saturation, then -3 dB. Built fresh (no state)
    on every call.
    """
    import pedalboard

    return pedalboard.Pedalboard([
        pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF12, cutoff_hz=2500.0, resonance=0.3, drive=1.0),
        pedalboard.Chorus(rate_hz=0.8, depth=0.25, centre_delay_ms=7.0, feedback=0.0, mix=0.3),
        pedalboard.Distortion(drive_db=6.0),
        pedalboard.Gain(gain_db=-3.0),
    ])


def apply_studio(samples: np.ndarray, sample_rate: int, plan: EditPlan, scope: str = "all") -> np.ndarray:
    """Run ``studio_chain`` over a rendered edit.

    Parameters:
        samples: the plan's render, ``(n_channels, n_samples)`` float32.
        sample_rate: Hz.
        plan: the plan rendered (its segments place the edited spans).
        scope: ``"all"``: the whole output; ``"edits"``: only output spans
            of segments whose action is not KEEP, faded over ``STUDIO_RAMP_S``
            at their edges (KEEP spans stay bit-identical away from edges).

    Returns:
        ``(n_channels, n_samples)`` float32, the same length.
    """
    if scope not in STUDIO_SCOPES:
        raise ValueError(f"unknown studio scope {scope!r} (one of {', '.join(STUDIO_SCOPES)})")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    wet = np.asarray(studio_chain()(x, sample_rate, reset=True), dtype=np.float32)[:, : x.shape[1]]
    if scope == "all":
        return wet
    weight = np.zeros(x.shape[1], dtype=np.float32)
    for seg in plan.segments:
        if seg.action != "KEEP":
            a = max(0, round(seg.dst_start_s * sample_rate))
            weight[a : round((seg.dst_start_s + seg.length_s) * sample_rate)] = 1.0
    n_ramp = max(1, round(STUDIO_RAMP_S * sample_rate))
    weight = np.convolve(weight, np.full(n_ramp, 1.0 / n_ramp, dtype=np.float32), mode="same")
    return (x + weight * (wet - x)).astype(np.float32)


#: Studio styles, kept apart from ``STYLES``: ``training.data.pairs`` renders
#: plans only, so their pairs are written by ``training.supervised.make_studio_pairs``.
STUDIO_STYLES: dict[str, EditorStyle] = {
    "studio": EditorStyle("studio", "the mixed walk, then a fixed studio chain over the whole edit",
                          _mixed_params, _mixed_section),
    "studio_edits": EditorStyle("studio_edits", "the mixed walk, then a fixed studio chain over edited spans only",
                                _mixed_params, _mixed_section),
}
#: Where each studio style's chain runs.
STUDIO_SCOPE_OF: dict[str, str] = {"studio": "all", "studio_edits": "edits"}


# -- personas: one editor with fixed taste whose choices follow the song

#: Separator of a persona style's name: ``BASE@N`` is persona ``N`` of style ``BASE``.
PERSONA_SEP = "@"
#: First word of every persona's taste generator, so a persona's draw shares no
#: stream with ``training.data.pairs.editor_rng`` (whose first word differs).
PERSONA_STREAM = 0x5E_75_0A
#: The persona that ``PERSONA_STYLES`` lists (``radio_edit@1`` etc.).
DEFAULT_PERSONA = 1
#: Section energy from which a section counts as loud (synth choruses are
#: 0.85-1.0, verses 0.45-0.6; inferred sections are normalised to 0..1).
LOUD_ENERGY = 0.7


def _persona_sweep(n_steps: int, *, rising: bool) -> list[str]:
    """``_sweep`` without a draw: ``n_steps`` amounts spread evenly from NEG_LARGE to POS_LARGE."""
    idx = np.round(np.linspace(0, len(AMOUNT_CHOICES) - 1, max(1, n_steps))).astype(int)
    names = [AMOUNT_CHOICES[int(i)] for i in idx]
    return names if rising else names[::-1]


def _persona_build(kind: str, sec: SectionView) -> list[tuple[str, int, str]]:
    """``_build_into_chorus`` without a draw: the shape follows the section it ends.

    A long section (two phrases or more) builds longer: two stuttered bars, a
    two-bar gap. A verse's stutter is four beat slices; other sections end
    theirs on a silent beat. A reverse is a bar (a beat in a tiny section).
    """
    long = sec.n_beats >= 32
    if kind == "stutter":
        if long:
            return [("STUTTER", 4, "POS_SMALL"), ("STUTTER", 4, "NEG_SMALL")]
        if sec.name == "verse":
            return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL", "NEG_LARGE")]
        return [("STUTTER", 1, a) for a in ("POS_LARGE", "POS_SMALL", "NEG_SMALL")] + [("SILENCE", 1, "NEUTRAL")]
    if kind == "reverse":
        return [("REVERSE", 4 if sec.n_beats >= 8 else 1, "NEUTRAL")]
    return [("SILENCE", 8 if long else 4 if sec.n_beats >= 8 else 1, "NEUTRAL")]


def _top(weights: Sequence[float], options: Sequence[str], among: Sequence[str]) -> str:
    """The option of ``among`` with the highest weight (``weights`` aligned with ``options``; ties: first)."""
    return max(among, key=lambda o: (weights[options.index(o)], -among.index(o)))


def _radio_persona_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """``radio_edit`` by one editor: the same intro, verse and ending every time.

    Rules: the intro is cut to the persona's length (faded in if it likes);
    with two verses or more the persona's verse is dropped (its
    ``drop_verse``-th, or the last one when the song has fewer); a bridge is
    cut if the persona cuts bridges; the last chorus is lifted (GAIN, larger
    when it is not already loud); the section before the last chorus breaks
    into it (the persona's break, or a gap after a bridge and a stutter
    after anything else); the song fades out. ``rng`` is not read.
    """
    n = sec.n_beats
    if sec.is_last or (sec.is_first and sec.name == "intro"):
        _radio_section(w, song, sec, p, rng)  # neither branch draws from rng
    elif (sec.name == "verse" and sec.count > 1 and sec.ordinal == min(p["drop_verse"], sec.count - 1)) or (
        sec.name == "bridge" and p["cut_bridge"]
    ):
        w.fill("CUT", n)
    elif sec.name == "chorus" and sec.ordinal == sec.count - 1:
        w.fill("GAIN", n, "POS_SMALL" if sec.span.energy >= 0.9 else "POS_LARGE")
    elif sec.next_name == "chorus" and sec.index == _last_chorus_index(song) - 1:
        kind = p["break_before_last_chorus"] or ("gap" if sec.name == "bridge" else "stutter")
        _keep_then(w, n, _persona_build(kind, sec))
    else:
        w.keep(n)


def _extended_persona_section(
    w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator
) -> None:
    """``extended_mix`` by one editor.

    Rules: intro and outro as the persona always does them (looped, faded);
    a chorus followed by a verse or a bridge (a breakdown comes) loops its
    last beats, twice over when it is loud; a verse before a chorus builds
    into it, a stutter the first time and a reversed bar after that; a
    bridge before a chorus builds with a reversed bar. ``rng`` is not read.
    """
    n = sec.n_beats
    if sec.is_last or (sec.is_first and sec.name == "intro"):
        _extended_section(w, song, sec, p, rng)  # neither branch draws from rng
    elif sec.name == "chorus" and sec.next_name in ("verse", "bridge"):
        loop = _fit(n, p["chorus_loop_beats"])
        w.keep(n - loop)
        w.add("LOOP", loop, "NEG_SMALL" if sec.span.energy >= 0.9 else "NEG_LARGE")
    elif sec.next_name == "chorus" and sec.name in ("verse", "bridge"):
        kind = "stutter" if sec.name == "verse" and sec.ordinal == 0 else "reverse"
        _keep_then(w, n, _persona_build(kind, sec))
    else:
        w.keep(n)


def _dj_persona_tail(kind: str, sec: SectionView, p: Params) -> list[tuple[str, int, str]]:
    """The decoration ``kind`` on a phrase end of ``sec``, sized by the section: longer in long sections."""
    long = sec.n_beats >= 32
    loud = sec.span.energy >= LOUD_ENERGY
    if kind == "stutter":
        if long:
            return [("STUTTER", 4, "POS_LARGE"), ("STUTTER", 4, p["stutter_amount"])]
        return [("STUTTER", 4, p["stutter_amount"])]
    if kind in ("delay", "reverb"):
        return [(kind.upper(), 8 if loud else 4, p["echo_amount"])]
    if kind in ("highpass", "lowpass"):
        # A highpass opens upwards into the drop; a lowpass closes down.
        return [(kind.upper(), 4, a) for a in _persona_sweep(4 if long else 2, rising=kind == "highpass")]
    if kind == "loop":
        return [("LOOP", 8 if long else 4, p["loop_amount"])]
    if kind == "reverse":
        return [("REVERSE", 8 if long else 4, "NEUTRAL")]
    return [("SILENCE", 4 if loud else 1, "NEUTRAL")]  # gap


def _dj_persona_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """``dj_edit`` by one editor: what decorates a phrase end follows what comes next.

    The persona ranks the decorations by its weights and, at each phrase
    end, uses its favourite of those that fit the moment: into a chorus a
    build (highpass sweep, stutter, gap or reverse); out of a chorus an echo
    (delay, reverb, gap or stutter); into anything else a wind-down
    (lowpass, loop or reverse). Inside a section of several phrases every
    second phrase end gets a fill (stutter, loop or reverse); the others are
    kept. Sizes follow the section: longer tails in long sections, echoes
    and gaps longer in loud ones. Intro and outro are the persona's own
    (loop, filter or fade), sized by rule. ``rng`` is not read.
    """
    weights = p["weights"]
    phrases = list(sec.phrases)
    if sec.is_first and sec.name == "intro" and phrases:
        _, n = phrases.pop(0)
        if p["intro"] == "loop":
            loop = _fit(n, 16 if n >= 16 else 8)
            w.add("LOOP", loop, p["loop_amount"])
            w.keep(n - loop)
        elif p["intro"] == "filter_in":
            bars = min(4, n // 4)
            for a in _persona_sweep(bars, rising=p["intro_filter"] == "LOWPASS") if bars else []:
                w.add(p["intro_filter"], 4, a)
            w.keep(n - 4 * bars)
        else:
            fade = _fit(n, 16)
            w.add("FADE_IN", fade)
            w.keep(n - fade)
    last = phrases.pop() if sec.is_last and phrases else None
    for k, (_, n) in enumerate(phrases):
        section_end = k == len(phrases) - 1 and last is None
        if section_end and sec.next_name == "chorus":
            kind = _top(weights, DJ_DECORATIONS, ("highpass", "stutter", "gap", "reverse"))
        elif section_end and sec.name == "chorus":
            kind = _top(weights, DJ_DECORATIONS, ("delay", "reverb", "gap", "stutter"))
        elif section_end:
            kind = _top(weights, DJ_DECORATIONS, ("lowpass", "loop", "reverse"))
        elif k % 2 == 1:
            kind = _top(weights, DJ_DECORATIONS, ("stutter", "loop", "reverse"))
        else:
            w.keep(n)
            continue
        _keep_then(w, n, _dj_persona_tail(kind, sec, p))
    if last is not None:
        _, n = last
        if p["outro"] == "echo_out":
            echo = _fit(n, 8)
            w.keep(n - echo)
            w.add(_top(weights, DJ_DECORATIONS, ("delay", "reverb")).upper(), echo, p["echo_amount"])
        elif p["outro"] == "filter_out":
            bars = min(4, n // 4)
            w.keep(n - 4 * bars)
            for a in _persona_sweep(bars, rising=False) if bars else []:
                w.add("LOWPASS", 4, a)
        else:
            fade = _fit(n, 16)
            w.keep(n - fade)
            w.add("FADE_OUT", fade)


def _fx_persona_extra(prng: np.random.Generator) -> Params:
    """Taste ``_fx_params`` leaves to a per-section draw: the bridge's effect."""
    return {"bridge_fx": str(_choose(prng, ("SPEED", "PITCH", "REVERSE", "LOWPASS")))}


def _fx_persona_section(w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator) -> None:
    """``fx_heavy`` by one editor.

    Rules: a chorus (and a closing outro) alternates the persona's two
    chorus effects span by span, each at its favourite amount; an editor
    who leaves some of a chorus dry (``chorus_keep_p`` >= 0.15) keeps the
    first span of each phrase; the chorus's last phrase ends on the
    persona's favourite ending (reversed bar, gap or none). The intro swells
    in as the persona likes. A verse gets the persona's verse effect on its
    last half (at most 16 beats); a bridge gets the persona's bridge effect
    on its first 8 beats. Sections before a chorus build into it with the
    persona's favourite build: before every chorus when ``into_chorus_p`` >=
    0.5, else only before the last chorus. ``rng`` is not read.
    """
    fav = p["favourite"]
    if sec.name == "chorus" or (sec.is_last and sec.name == "outro"):
        end = _top(p["chorus_phrase_end"], ("none", "reverse", "gap"), ("none", "reverse", "gap"))
        k = 0
        for j, (_, n) in enumerate(sec.phrases):
            last_phrase = j == len(sec.phrases) - 1
            tail = 0 if end == "none" or n < 8 or not last_phrase else 4
            left = n - tail
            first = True
            while left > 0:
                size = _fit(left, p["fx_beats"])
                if first and p["chorus_keep_p"] >= 0.15 and size < n:
                    w.add("KEEP", size)
                else:
                    t = p["chorus_fx"][k % len(p["chorus_fx"])]
                    w.add(t, size, fav[t])
                    k += 1
                first = False
                left -= size
            if tail:
                w.add("REVERSE" if end == "reverse" else "SILENCE", tail)
        return
    n = sec.n_beats
    swell = 0
    if sec.is_first and sec.name == "intro" and p["intro_swell_beats"]:
        swell = _fit(n, p["intro_swell_beats"])
        w.add("FADE_IN", swell)
        n -= swell
    tail: list[tuple[str, int, str]] = []
    builds = p["into_chorus_p"] >= 0.5 or sec.index == _last_chorus_index(song) - 1
    if sec.next_name == "chorus" and builds:
        kind = _top(p["into_chorus"], ("stutter", "reverse", "gap"), ("stutter", "reverse", "gap"))
        tail = _persona_build(kind, sec)
        while tail and sum(b for _, b, _ in tail) > n:
            tail = tail[1:]
    body = n - sum(b for _, b, _ in tail)
    if sec.name == "bridge":
        t = p["bridge_fx"]
        size = _fit(body, 8)
        if size:
            w.add(t, size, "NEUTRAL" if t == "REVERSE" else fav.get(t, "POS_SMALL"))
        w.keep(body - size)
    elif sec.name == "verse":
        t = p["verse_fx"]
        size = _fit(body, min(16, max(1, body // 2)))
        w.keep(body - size)
        if size:
            w.add(t, size, fav[t])
    else:
        w.keep(body)
    for t, b, a in tail:
        w.add(t, b, a)


def _master_persona_section(
    w: Walk, song: SongContext, sec: SectionView, p: Params, rng: np.random.Generator
) -> None:
    """``mastering`` by one editor: the persona's treatments per section role, phrase by phrase.

    Rules: spans of the persona's length alternate its two treatments of the
    section's role; GAIN lifts quiet sections and trims loud ones, the other
    treatments use the persona's amount; an editor who leaves some spans
    alone (``keep_p`` >= 0.15) leaves the last span before a chorus dry, so
    the chorus's treatment stands out. ``rng`` is not read.
    """
    treatments = p["roles"].get(sec.name, p["roles"]["verse"])
    leave_last = p["keep_p"] >= 0.15 and sec.next_name == "chorus"
    k = 0
    for j, (_, n) in enumerate(sec.phrases):
        left = n
        while left > 0:
            size = _fit(left, p["span_beats"])
            if leave_last and j == len(sec.phrases) - 1 and left == size:
                w.add("KEEP", size)
            else:
                t = treatments[k % len(treatments)]
                if t == "GAIN":
                    amount = "NEG_SMALL" if sec.span.energy >= LOUD_ENERGY else "POS_SMALL"
                else:
                    amount = p["amounts"][t]
                w.add(t, size, amount)
                k += 1
            left -= size


#: Base styles that have a persona form, with its section program and the
#: extra taste (``prng -> params``) the base style draws per section instead.
PERSONA_PROGRAMS: dict[str, tuple[SectionProgram, Callable[[np.random.Generator], Params] | None]] = {
    "radio_edit": (_radio_persona_section, None),
    "extended_mix": (_extended_persona_section, None),
    "dj_edit": (_dj_persona_section, None),
    "fx_heavy": (_fx_persona_section, _fx_persona_extra),
    "mastering": (_master_persona_section, None),
}


def persona_params(base: str, persona: int) -> Params:
    """The taste of persona ``persona`` of style ``base``: the base style's params, drawn once.

    The draw comes from a generator of its own (``PERSONA_STREAM``, the
    persona number, the base name), so it is the same for every song and
    every run.
    """
    if base not in PERSONA_PROGRAMS:
        raise ValueError(f"style {base!r} has no persona form (one of {', '.join(PERSONA_PROGRAMS)})")
    if int(persona) < 0:
        raise ValueError(f"persona must be >= 0, got {persona}")
    prng = np.random.default_rng([PERSONA_STREAM, int(persona), zlib.crc32(base.encode("utf-8"))])
    params = STYLES[base].draw_params(prng)
    extra = PERSONA_PROGRAMS[base][1]
    if extra is not None:
        params.update(extra(prng))
    return _jsonable(params)


@functools.cache
def persona_style(base: str, persona: int = DEFAULT_PERSONA) -> EditorStyle:
    """Style ``BASE@N``: one editor of style ``base`` with fixed taste whose choices follow the song.

    Its params are ``persona_params(base, persona)`` for every song, and its
    section program replaces the base style's per-section draws with rules
    on what a listener can hear: the section's role, its ordinal among
    sections of that role, its length, its energy, its place in the song and
    the section after it. The generator passed to it is never read, so a
    persona's edit of a song does not depend on the pair's seed.
    """
    params = persona_params(base, persona)
    section = PERSONA_PROGRAMS[base][0]

    def draw(rng: np.random.Generator) -> Params:
        return copy.deepcopy(params)

    name = f"{base}{PERSONA_SEP}{int(persona)}"
    return EditorStyle(name, f"{STYLES[base].summary}; one editor, choices follow the song", draw, section)


#: The default persona of every style that has one, by name (``radio_edit@1``, ...).
#: Other persona numbers are found by ``get_style`` too.
PERSONA_STYLES: dict[str, EditorStyle] = {
    f"{base}{PERSONA_SEP}{DEFAULT_PERSONA}": persona_style(base, DEFAULT_PERSONA) for base in PERSONA_PROGRAMS
}


def parse_persona(style: str) -> tuple[str, int] | None:
    """``("radio_edit", 1)`` for ``"radio_edit@1"``; None for a name that is not of the form ``BASE@N``."""
    base, sep, number = style.partition(PERSONA_SEP)
    # One spelling per persona ("radio_edit@01" is refused): the name is the pair's file name.
    if not sep or base not in PERSONA_PROGRAMS or not number.isdigit() or str(int(number)) != number:
        return None
    return base, int(number)


def style_names() -> list[str]:
    """Every style name ``get_style`` lists: ``STYLES``, the studio styles and ``PERSONA_STYLES``."""
    return [*STYLES, *STUDIO_STYLES, *PERSONA_STYLES]


def get_style(style: str | EditorStyle) -> EditorStyle:
    """The style itself, or the one named ``style``; ValueError naming the choices if unknown.

    Names: those of ``STYLES`` and ``STUDIO_STYLES``, and ``BASE@N`` for
    persona ``N`` (>= 0) of a style in ``PERSONA_PROGRAMS`` (``persona_style``).
    """
    if isinstance(style, EditorStyle):
        return style
    if style in STUDIO_STYLES:
        return STUDIO_STYLES[style]
    persona = parse_persona(style)
    if persona is not None:
        return persona_style(*persona)
    if style not in STYLES:
        raise ValueError(
            f"unknown style {style!r} (one of {', '.join(style_names())}; "
            f"or BASE{PERSONA_SEP}N for any persona N >= 0 of {', '.join(PERSONA_PROGRAMS)})"
        )
    return STYLES[style]


# --------------------------------------------------------------------------
# Editing


@dataclass
class StyledEdit:
    """An edit and how it was made.

    Attributes:
        plan: the EditPlan.
        style: the style's name.
        params: the parameters the style drew (JSON-ready).
        song: the context the style read (sections used).
    """

    plan: EditPlan
    style: str
    params: Params
    song: SongContext


def edit_song(
    style: str | EditorStyle, analysis: Any, sections: Iterable[Any] | None, rng: np.random.Generator
) -> StyledEdit:
    """Edit a song with a style and keep the params and structure it used (see ``edit``)."""
    st = get_style(style)
    song = song_context(analysis, sections)
    walk, params = st.walk(song, rng)
    plan = plan_from_actions(analysis, walk)
    log.debug("%s: %d actions over %d beats, %d segments", st.name, len(walk), song.n_beats, len(plan.segments))
    return StyledEdit(plan=plan, style=st.name, params=_jsonable(params), song=song)


def edit(
    style: str | EditorStyle, analysis: Any, sections: Iterable[Any] | None, rng: np.random.Generator
) -> EditPlan:
    """Edit a song the way ``style`` does.

    Parameters:
        style: a name ``get_style`` knows (``STYLES``, studio and persona
            styles) or an ``EditorStyle``.
        analysis: ``engine.analysis.Analysis`` or anything with ``audio``,
            ``sha256`` and ``grid`` (``tempo_bpm``, ``beat_times`` s,
            ``downbeats``, ``phrase_starts``), as ``plan_from_actions`` takes.
        sections: the known structure (``training.data.synth.Section`` list),
            or None to infer it from the phrases and the per-beat RMS.
        rng: every random choice is drawn from it.

    Returns:
        The plan; its walk covers every beat.
    """
    return edit_song(style, analysis, sections, rng).plan


# --------------------------------------------------------------------------
# Per-beat labels and coverage


@dataclass
class BeatLabels:
    """The action covering each source beat, as factored indices.

    Attributes:
        type_idx, size_idx, amount_idx: ``(n_beats,)`` int64 indices into
            ``engine.actions.TYPES`` / ``SIZES`` / ``AMOUNTS``. Beats no
            action covers are KEEP / BEAT / NEUTRAL.
    """

    type_idx: np.ndarray
    size_idx: np.ndarray
    amount_idx: np.ndarray

    @property
    def n_beats(self) -> int:
        return int(self.type_idx.shape[0])

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready: ``{"type": [...], "size": [...], "amount": [...]}``."""
        return {
            "type": [int(v) for v in self.type_idx],
            "size": [int(v) for v in self.size_idx],
            "amount": [int(v) for v in self.amount_idx],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Sequence[int]]) -> BeatLabels:
        """Inverse of ``to_dict``; ValueError on ragged or out-of-range lists."""
        arrays = [np.asarray(d[k], dtype=np.int64).reshape(-1) for k in ("type", "size", "amount")]
        if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
            raise ValueError("beat labels: type, size and amount lists differ in length")
        for arr, limit, what in zip(arrays, (vocab.N_TYPES, vocab.N_SIZES, vocab.N_AMOUNTS), ("type", "size", "amount"), strict=True):
            if arr.size and (arr.min() < 0 or arr.max() >= limit):
                raise ValueError(f"beat labels: {what} index outside 0..{limit - 1}")
        return cls(*arrays)


def beat_labels(plan: EditPlan) -> BeatLabels:
    """Per-beat factored labels of a plan made by ``plan_from_actions``.

    Action ``k`` covers beats from its own beat up to the next action's beat
    (the last one: its size, clipped at the song's last beat).
    """
    n = len(plan.grid.beat_times)
    t = np.zeros(n, dtype=np.int64)
    s = np.zeros(n, dtype=np.int64)
    a = np.full(n, vocab.Amount.NEUTRAL, dtype=np.int64)
    acts = plan.actions
    for k, act in enumerate(acts):
        b0 = int(act.beat)
        b1 = int(acts[k + 1].beat) if k + 1 < len(acts) else b0 + vocab.SIZE_BEATS[vocab.size_index(act.size)]
        b1 = min(b1, n)
        t[b0:b1] = vocab.type_index(act.type)
        s[b0:b1] = vocab.size_index(act.size)
        a[b0:b1] = vocab.amount_index(act.amount)
    return BeatLabels(t, s, a)


def label_coverage(labels: Iterable[BeatLabels]) -> dict[str, dict[str, float]]:
    """Share of labelled beats per type, size and amount over a corpus.

    Returns:
        ``{"type": {name: share}, "size": {...}, "amount": {...}, "n_beats": {"total": n}}``;
        shares are fractions of all beats (0..1), every name present.
    """
    counts = {
        "type": np.zeros(vocab.N_TYPES, dtype=np.int64),
        "size": np.zeros(vocab.N_SIZES, dtype=np.int64),
        "amount": np.zeros(vocab.N_AMOUNTS, dtype=np.int64),
    }
    total = 0
    for lab in labels:
        counts["type"] += np.bincount(lab.type_idx, minlength=vocab.N_TYPES)
        counts["size"] += np.bincount(lab.size_idx, minlength=vocab.N_SIZES)
        counts["amount"] += np.bincount(lab.amount_idx, minlength=vocab.N_AMOUNTS)
        total += lab.n_beats
    names = {"type": vocab.TYPES, "size": vocab.SIZES, "amount": vocab.AMOUNTS}
    out: dict[str, dict[str, float]] = {
        k: {name: (float(c) / total if total else 0.0) for name, c in zip(names[k], counts[k], strict=True)}
        for k in counts
    }
    out["n_beats"] = {"total": float(total)}
    return out


def format_coverage(coverage: dict[str, dict[str, float]]) -> str:
    """The coverage table as text: one block per factor, a line per name with its share in %."""
    lines = [f"labelled beats: {int(coverage['n_beats']['total'])}"]
    for factor in ("type", "size", "amount"):
        lines.append(f"{factor:<11} share")
        for name, share in coverage[factor].items():
            lines.append(f"  {name:<11} {100.0 * share:6.2f} %")
    return "\n".join(lines)
