"""From an action walk over a song's beat grid to an EditPlan.

``plan_from_actions`` applies a walk of factored actions (``engine.actions``)
from beat 0: each action covers ``SIZE_BEATS[size]`` beats of source
(``beat_spans``) and places zero or more segments on the output timeline.
Neighbouring plain KEEP segments are merged, every non-KEEP action gets a
marker, and automation lanes restate the segments' levels and filter
cutoffs for DAWs that show them as envelopes.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.plan.model import Action, Automation, EditPlan, Effect, Grid, Marker, Segment, Source

if TYPE_CHECKING:
    from editorbot.engine.analysis import GriddedSong

log = logging.getLogger(__name__)

#: Level used for silence in a "volume_db" automation lane (a fade's start/end).
VOLUME_FLOOR_DB = -60.0
#: Points per fade in a "volume_db" lane (a linear-gain fade drawn in dB).
FADE_POINTS = 8
#: Open positions of the filter lanes outside LOWPASS / HIGHPASS spans, Hz.
LOWPASS_OPEN_HZ = 20000.0
HIGHPASS_OPEN_HZ = 20.0
#: Filter cutoffs are kept below this fraction of the sample rate.
MAX_CUTOFF_FRACTION = 0.45


def beat_spans(
    beat_times: Any, duration_s: float, *, tempo_bpm: float = 120.0, fold_edges: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Source span of every beat.

    Beat ``i`` spans ``[beat_times[i], beat_times[i + 1])``; the last beat
    lasts one beat period (the median beat interval, or ``60 / tempo_bpm``
    with a single beat), clipped at ``duration_s``. Beats at or after
    ``duration_s`` are dropped (they can only be at the end of the list).
    With ``fold_edges``, audio before the first beat (lead-in) or after the
    last beat's end (tail) that is shorter than one beat period belongs to
    the first / last beat: the first span starts at 0, the last ends at
    ``duration_s``. An edit then never keeps such a sliver on its own (a
    23 ms lead-in before a cut first bar was one).

    Parameters
    ----------
    beat_times : array_like
        ``(n,)`` seconds, finite, >= 0 and strictly increasing.
    duration_s : float
        The source's length in seconds.
    tempo_bpm : float
        Beats per minute, for the last beat's length when there is one beat.
    fold_edges : bool
        Fold a lead-in or tail shorter than a beat into the edge beats.

    Returns
    -------
    starts_s, ends_s : np.ndarray
        ``(n_beats,)`` float64 seconds, ``n_beats <= n``.

    Raises
    ------
    ValueError
        ``beat_times`` is not finite, >= 0 and strictly increasing.
    """
    bt = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if bt.size and (not np.all(np.isfinite(bt)) or np.any(np.diff(bt) <= 0) or bt[0] < 0):
        raise ValueError("beat_times must be finite, >= 0 and strictly increasing")
    n = int(np.searchsorted(bt, duration_s, side="left"))
    starts = bt[:n]
    if n == 0:
        return starts, starts.copy()
    if n >= 2:
        period = float(np.median(np.diff(starts)))
    else:
        period = 60.0 / tempo_bpm if tempo_bpm > 0 else duration_s - float(starts[0])
    last_end = min(duration_s, float(starts[-1]) + period)
    ends = np.append(starts[1:], last_end)
    if fold_edges:
        starts = starts.copy()
        if 0.0 < starts[0] < period:
            starts[0] = 0.0
        if 0.0 < duration_s - ends[-1] < period:
            ends[-1] = duration_s
    return starts, ends


#: Markers of actions the policy chose with a probability under this are low-confidence
#: (the Reaper scripts colour them); docs/daws.md.
LOW_CONFIDENCE = 0.5


def marker_name(label: str, confidence: float | None) -> str:
    """A marker's name: the action's label, with the policy's confidence when known.

    ``marker_name("LOOP x2", 0.62)`` is ``"LOOP x2 (62%)"``; without a
    confidence the label alone. A reader finds the percentage as the
    name's trailing ``(N%)``.
    """
    if confidence is None:
        return label
    return f"{label} ({int(round(100.0 * confidence))}%)"


_CONFIDENCE_SUFFIX = re.compile(r"\((\d+)%\)$")


def marker_confidence(name: str) -> float | None:
    """The confidence (0-1) a marker's name shows as its trailing ``(N%)``, or None (``marker_name``'s inverse)."""
    m = _CONFIDENCE_SUFFIX.search(name)
    return None if m is None else int(m.group(1)) / 100.0


def plan_from_actions(
    analysis: GriddedSong, actions: Iterable[Any], *, confidence: Sequence[float] | None = None
) -> EditPlan:
    """Turn an action walk over a song's beat grid into an EditPlan.

    Parameters
    ----------
    analysis : engine.analysis.Analysis or alike
        Anything with ``.audio`` (``samples (n_channels, n_samples)``,
        ``sample_rate`` Hz, ``path``, ``duration_s``), ``.sha256`` and
        ``.grid`` (``tempo_bpm``, ``beat_times (n_beats,)`` s,
        ``downbeats``).
    actions : iterable
        The walk, from beat 0: each a flat action index or a ``(type, size,
        amount)`` triple of names or indices. Each covers
        ``SIZE_BEATS[size]`` beats from the cursor, clipped at the last
        beat, and the cursor moves past it. Beats after the walk ends are
        kept; audio before the first beat and after the last beat's end is
        kept (lead-in and tail), except that one shorter than a beat goes
        with the first / last beat (``beat_spans(fold_edges=True)``) and
        the tail is left out when the walk ends faded out (a FADE_OUT
        followed by nothing but CUT and SILENCE).
    confidence : sequence of float, optional
        Per action, the probability (0-1) its chooser gave it: kept as each
        ``Action.confidence`` and shown in its marker's name
        (``marker_name``); a run of CUTs' one marker shows the lowest.

    Returns
    -------
    EditPlan
        ``actions`` (source spans), ``segments`` contiguous in output time,
        ``markers`` (a region per non-KEEP action, a point marker per run of CUTs)
        and ``automation`` (``volume_db``, ``lowpass_hz``, ``highpass_hz``
        lanes where used), all output times in seconds; ``model`` None.

    Raises
    ------
    ValueError
        An unknown action, an amount its type does not allow, or a walk
        that runs past the last beat (the message names the step).

    Examples
    --------
    Two bars of silence at 120 BPM: cut the first bar, loop the second
    (POS_SMALL: three extra times).

    >>> from types import SimpleNamespace
    >>> audio = SimpleNamespace(samples=np.zeros((2, 4 * 8000), np.float32), sample_rate=8000, path="song.wav")
    >>> grid = SimpleNamespace(tempo_bpm=120.0, beat_times=np.arange(8) * 0.5, downbeats=[0, 4])
    >>> song = SimpleNamespace(audio=audio, sha256="ab" * 32, grid=grid)
    >>> plan = plan_from_actions(song, [("CUT", "BAR", "NEUTRAL"), ("LOOP", "BAR", "POS_SMALL")])
    >>> [(s.src_start_s, s.src_end_s, s.dst_start_s) for s in plan.segments]
    [(2.0, 4.0, 0.0), (2.0, 4.0, 2.0), (2.0, 4.0, 4.0), (2.0, 4.0, 6.0)]
    >>> [(m.time_s, m.name, m.end_s) for m in plan.markers]
    [(0.0, 'CUT', None), (0.0, 'LOOP x3', 8.0)]
    """
    audio = analysis.audio
    sample_rate = int(audio.sample_rate)
    samples = np.asarray(audio.samples)
    channels = int(samples.shape[0])
    duration_s = float(getattr(audio, "duration_s", samples.shape[-1] / sample_rate))
    grid = analysis.grid
    tempo_bpm = float(grid.tempo_bpm)
    beat_times, beat_ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=tempo_bpm)
    starts, ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=tempo_bpm, fold_edges=True)
    n_beats = int(starts.size)
    tol_s = 0.5 / sample_rate
    timeline = _Timeline()
    if n_beats and starts[0] > tol_s:
        timeline.place(Segment(0.0, float(starts[0]), 0.0))
    spans = _Spans(starts, ends, beat_times, beat_ends)
    plan_actions, markers, cursor, faded = _walk(
        timeline, actions, spans, tol_s, MAX_CUTOFF_FRACTION * sample_rate, confidence=confidence
    )
    if cursor < n_beats:
        log.debug("walk ended at beat %d of %d: keeping the rest", cursor, n_beats)
        timeline.place(Segment(float(starts[cursor]), float(ends[-1]), 0.0, beat=cursor))
    tail_start = float(ends[-1]) if n_beats else 0.0
    if duration_s - tail_start > tol_s:
        if faded and cursor >= n_beats:  # the walk faded the song out: its tail would jump back up
            log.debug("walk ends faded out: the %.2f s tail is left out", duration_s - tail_start)
        else:
            timeline.place(Segment(tail_start, duration_s, 0.0, beat=max(n_beats - 1, 0)))

    segments = _merge_keeps(timeline.segments, tol_s=tol_s)
    return EditPlan(
        source=Source(
            path="" if audio.path is None else os.fspath(audio.path),
            sha256=str(analysis.sha256),
            sample_rate=sample_rate,
            channels=channels,
            duration_s=duration_s,
        ),
        grid=Grid(
            tempo_bpm=tempo_bpm,
            beat_times=[float(x) for x in beat_times],
            downbeats=[int(i) for i in grid.downbeats if 0 <= int(i) < n_beats],
        ),
        actions=plan_actions,
        segments=segments,
        markers=markers,
        automation=_automation_lanes(segments, sample_rate),
        model=None,
    )


class _Timeline:
    """Segments laid end to end on the output timeline; ``dst_s`` is where the next one starts (s)."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.dst_s = 0.0

    def place(self, seg: Segment) -> None:
        """Put ``seg`` at the end of the timeline."""
        seg.dst_start_s = self.dst_s
        self.dst_s += seg.length_s
        self.segments.append(seg)


@dataclass(frozen=True)
class _Spans:
    """A song's beats twice: as the edit plays them and as the grid has them.

    Attributes
    ----------
    starts, ends : np.ndarray
        ``(n_beats,)`` source span of every beat, seconds, a short lead-in and
        tail folded into the edge beats (``beat_spans(fold_edges=True)``):
        what an action plays once.
    grid_starts, grid_ends : np.ndarray
        ``(n_beats,)`` the grid's own spans, seconds: what a loop repeats, a
        stutter slices and an effect is timed by.
    """

    starts: np.ndarray
    ends: np.ndarray
    grid_starts: np.ndarray
    grid_ends: np.ndarray


def _walk(
    timeline: _Timeline,
    actions: Iterable[Any],
    spans: _Spans,
    tol_s: float,
    max_cutoff_hz: float,
    *,
    confidence: Sequence[float] | None = None,
) -> tuple[list[Action], list[Marker], int, bool]:
    """Apply the walk from beat 0: place each action's segments, note its source span and marker.

    Parameters
    ----------
    timeline : _Timeline
        Receives the segments.
    actions : iterable
        As ``plan_from_actions`` takes.
    spans : _Spans
        The beats' source spans, seconds.
    tol_s : float
        Half a sample, seconds.
    max_cutoff_hz : float
        Filter cutoffs are clipped to it.
    confidence : sequence of float, optional
        Per action, its chooser's probability (``plan_from_actions``).

    Returns
    -------
    actions : list of Action
    markers : list of Marker
    cursor : int
        The beat after the walk's last action.
    faded : bool
        The walk ends faded out (a FADE_OUT, then only CUT and SILENCE).
    """
    starts, ends = spans.starts, spans.ends
    n_beats = int(starts.size)
    plan_actions: list[Action] = []
    markers: list[Marker] = []
    marker_conf: float | None = None  # the confidence the last marker shows
    cursor = 0
    faded = False
    for step, raw in enumerate(actions):
        conf = None
        if confidence is not None:
            if step >= len(confidence):
                raise ValueError(f"actions[{step}]: no confidence given for it ({len(confidence)} given)")
            conf = float(confidence[step])
            if not 0.0 <= conf <= 1.0:
                raise ValueError(f"actions[{step}]: confidence must be 0-1, got {conf}")
        try:
            a = vocab.as_action(raw)
        except ValueError as err:
            raise ValueError(f"actions[{step}]: {err}") from None
        if cursor >= n_beats:
            raise ValueError(f"actions[{step}]: the walk has run past the last beat ({n_beats} beats)")
        b0, b1 = cursor, min(cursor + a.beats, n_beats)
        s0, s1 = float(starts[b0]), float(ends[b1 - 1])
        grid_span = (float(spans.grid_starts[b0]), float(spans.grid_ends[b1 - 1]))
        beat_s = float(spans.grid_ends[b0] - spans.grid_starts[b0])
        dst0 = timeline.dst_s
        for seg in _action_segments(a, b0, s0, s1, beat_s, grid_span=grid_span, tol_s=tol_s, max_cutoff_hz=max_cutoff_hz):
            timeline.place(seg)
        plan_actions.append(Action(b0, a.type, a.size, a.amount, s0, s1, confidence=conf))
        if a.type != "KEEP":
            dst = timeline.dst_s
            label = vocab.action_label(a.type, a.amount_idx)
            end_s = None if dst <= dst0 else dst
            last = markers[-1] if markers else None
            if last is not None and (last.time_s, last.end_s) == (dst0, end_s) and last.name == marker_name(label, marker_conf):
                # cuts in a row are one splice in the output: one marker, showing the least sure of them
                if conf is not None and (marker_conf is None or conf < marker_conf):
                    marker_conf = conf
                    last.name = marker_name(label, conf)
            else:
                marker_conf = conf
                markers.append(Marker(dst0, marker_name(label, conf), end_s=end_s))
        faded = a.type == "FADE_OUT" or (faded and a.type in ("CUT", "SILENCE"))
        cursor = b1
    return plan_actions, markers, cursor, faded


def _action_segments(
    a: vocab.FactoredAction,
    b0: int,
    s0: float,
    s1: float,
    beat_s: float,
    *,
    grid_span: tuple[float, float],
    tol_s: float,
    max_cutoff_hz: float,
) -> list[Segment]:
    """The segments one action places, in output order (their ``dst_start_s`` still 0).

    Parameters
    ----------
    a : engine.actions.FactoredAction
        The action.
    b0 : int
        Its first beat.
    s0, s1 : float
        The source span it covers, seconds.
    beat_s : float
        Length of its first beat on the grid, seconds (STUTTER slices, DELAY times).
    grid_span : tuple of float
        The same beats' span on the grid, seconds: a loop repeats it (the
        first play starts at ``s0``, the last ends at ``s1``), a stutter
        slices it.
    tol_s : float
        A STUTTER remainder shorter than this is dropped.
    max_cutoff_hz : float
        Filter cutoffs are clipped to it.
    """
    t, value = a.type, a.value

    def seg(src_start: float = s0, src_end: float = s1, **kw: Any) -> Segment:
        return Segment(src_start, src_end, 0.0, action=t, beat=b0, **kw)

    if t == "CUT":
        return []
    g0, g1 = grid_span
    if t == "LOOP":
        plays = 1 + int(value)
        return [seg(s0 if k == 0 else g0, s1 if k == plays - 1 else g1) for k in range(plays)]
    if t == "STUTTER":
        slice_s = value * beat_s
        n_full = math.floor((s1 - s0) / slice_s + 1e-9)
        out = [seg(g0, g0 + slice_s) for _ in range(n_full)]
        rest_s = (s1 - s0) - n_full * slice_s
        if rest_s > tol_s:
            out.append(seg(g0, g0 + rest_s))
        return out
    if t == "REVERSE":
        return [seg(reverse=True)]
    if t == "SILENCE":
        return [seg(mute=True)]
    if t == "FADE_IN":
        return [seg(fade_in_s=s1 - s0)]
    if t == "FADE_OUT":
        return [seg(fade_out_s=s1 - s0)]
    if t == "GAIN":
        return [seg(gain_db=value)]
    if t == "PITCH":
        return [seg(pitch_semitones=value)]
    if t == "SPEED":
        return [seg(rate=value)]
    if t in vocab.EFFECT_NAMES:
        name, params = vocab.effect_params(t, a.amount_idx, beat_s=beat_s)
        if "cutoff_hz" in params:
            params["cutoff_hz"] = min(params["cutoff_hz"], max_cutoff_hz)
        return [seg(effects=[Effect(name, params)])]
    return [seg()]  # KEEP


def _is_plain_keep(s: Segment) -> bool:
    """A KEEP segment that changes nothing (no gain, fade, reverse, mute, rate, pitch or effect)."""
    return (
        s.action == "KEEP"
        and s.gain_db == 0.0
        and s.fade_in_s == 0.0
        and s.fade_out_s == 0.0
        and not s.reverse
        and not s.mute
        and s.rate == 1.0
        and s.pitch_semitones == 0.0
        and not s.effects
    )


def _merge_keeps(segments: list[Segment], *, tol_s: float) -> list[Segment]:
    """Join neighbouring plain KEEP segments contiguous in source and output time (within ``tol_s`` s)."""
    out: list[Segment] = []
    for s in segments:
        prev = out[-1] if out else None
        if (
            prev is not None
            and _is_plain_keep(prev)
            and _is_plain_keep(s)
            and abs(prev.src_end_s - s.src_start_s) <= tol_s
            and abs(prev.dst_start_s + prev.length_s - s.dst_start_s) <= tol_s
        ):
            prev.src_end_s = s.src_end_s
        else:
            out.append(s)
    return out


def _simplify(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop repeated points and the middle of runs with one value."""
    out: list[tuple[float, float]] = []
    for p in points:
        if out and out[-1] == p:
            continue
        if len(out) >= 2 and out[-1][1] == p[1] == out[-2][1]:
            out[-1] = p
            continue
        out.append(p)
    return out


def _volume_points(s: Segment) -> list[tuple[float, float]]:
    """A segment's level over output time: ``(time_s, dB)`` points of its gain and its fades."""
    d0 = s.dst_start_s
    d1 = d0 + s.length_s
    times = {d0, d1}
    for k in range(1, FADE_POINTS):
        if s.fade_in_s > 0:
            times.add(d0 + s.fade_in_s * k / FADE_POINTS)
        if s.fade_out_s > 0:
            times.add(d1 - s.fade_out_s * k / FADE_POINTS)
    if s.fade_in_s > 0:
        times.add(d0 + s.fade_in_s)
    if s.fade_out_s > 0:
        times.add(d1 - s.fade_out_s)
    floor = 10.0 ** (VOLUME_FLOOR_DB / 20.0)
    points = []
    for t in sorted(times):
        g = 1.0
        if s.fade_in_s > 0:
            g = min(g, (t - d0) / s.fade_in_s)
        if s.fade_out_s > 0:
            g = min(g, (d1 - t) / s.fade_out_s)
        g = min(max(g, 0.0), 1.0)
        db = VOLUME_FLOOR_DB if g <= floor else 20.0 * math.log10(g)
        points.append((t, max(VOLUME_FLOOR_DB, db + s.gain_db)))
    return points


def add_output_gain(plan: EditPlan, gain_db: float) -> None:
    """Turn the whole edit by ``gain_db`` (gain staging): every segment's gain, and the automation.

    The segments' gain is applied after their effects, so the rendered edit
    scales exactly; the plan itself says it, for every consumer (the
    renderer, DAW exports, the Reaper scripts).

    Parameters
    ----------
    plan : EditPlan
        Changed in place: each segment's ``gain_db`` and the ``volume_db`` lane.
    gain_db : float
        Gain to add, dB.
    """
    if gain_db == 0.0:
        return
    for s in plan.segments:
        s.gain_db = float(s.gain_db + gain_db)
    plan.automation = [a for a in plan.automation if a.parameter != "volume_db"]
    plan.automation[:0] = [a for a in _automation_lanes(plan.segments, plan.source.sample_rate) if a.parameter == "volume_db"]


def _automation_lanes(segments: list[Segment], sample_rate: int) -> list[Automation]:
    """Automation restating the segments' levels (dB) and filter cutoffs (Hz) over output time.

    The lanes describe what the segments already do, for DAWs that show it
    as envelopes: a consumer applies either the segments' gain/fades/effects
    or these lanes, not both.
    """
    lanes: list[Automation] = []
    if any(s.gain_db != 0.0 or s.fade_in_s > 0 or s.fade_out_s > 0 for s in segments):
        points: list[tuple[float, float]] = []
        for s in segments:
            points.extend(_volume_points(s))
        lanes.append(Automation("volume_db", _simplify(points)))
    nyquist_hz = 0.5 * sample_rate
    for effect, parameter, open_hz in (
        ("lowpass", "lowpass_hz", min(LOWPASS_OPEN_HZ, nyquist_hz)),
        ("highpass", "highpass_hz", HIGHPASS_OPEN_HZ),
    ):
        if not any(e.name == effect for s in segments for e in s.effects):
            continue
        points = []
        for s in segments:
            v = next((e.params["cutoff_hz"] for e in s.effects if e.name == effect), open_hz)
            points.extend([(s.dst_start_s, v), (s.dst_start_s + s.length_s, v)])
        lanes.append(Automation(parameter, _simplify(points)))
    return lanes
