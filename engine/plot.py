"""Before/after picture of an edit: source waveform on top, edit below.

Top panel: the source's waveform envelope over source time, with every
segment's source span shaded in its action type's colour and the source
audio no segment uses shaded as CUT. Bottom panel: the edited waveform
over output time, segments shaded the same way, the plan's markers as
dashed lines and its regions as light bands, their names in rows above the
edit that never overlap (``marker_labels``). Faint bands
between the panels join each segment's source span to its place in the
edit (for plans up to ``MAX_LINKS`` segments). Both panels share one time
axis (seconds) so moves and length changes read directly. A legend lists
the action types present; colours are fixed per type (``ACTION_COLOURS``).

Drawn with matplotlib's Agg canvas (no display, no global pyplot state);
the PNG is written atomically and never over the plan's source audio.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import numpy as np

from editorbot.engine.atomic import check_destination, write_bytes_atomic
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, Segment

log = logging.getLogger(__name__)

ACTION_COLOURS: dict[str, str] = {
    # structure
    "KEEP": "#4c9a2a",
    "CUT": "#d62728",
    "LOOP": "#1f77b4",
    "STUTTER": "#17becf",
    "REVERSE": "#9467bd",
    "SILENCE": "#7f7f7f",
    # level and time
    "FADE_IN": "#ffbb78",
    "FADE_OUT": "#ff7f0e",
    "GAIN": "#bcbd22",
    "PITCH": "#e377c2",
    "SPEED": "#8c564b",
    # effects
    "LOWPASS": "#003f5c",
    "HIGHPASS": "#2f4b7c",
    "BASS": "#665191",
    "TREBLE": "#a05195",
    "REVERB": "#d45087",
    "DELAY": "#f95d6a",
    "DISTORTION": "#ff7c43",
    "COMPRESS": "#ffa600",
    "WIDTH": "#00a087",
}
"""One fixed colour per action type (``engine.actions.TYPES``)."""

OTHER_COLOUR = "#444444"  # an action type not in the table
WAVE_COLOUR = "#222222"
MAX_LINKS = 200  # most segments joined by bands between the panels
MAX_MARKER_LABELS = 400  # more markers than this are drawn without names
LABEL_LANES = 5  # rows of marker names above the edit panel
LABEL_LANE_STEP = 0.045  # height of a row, in the edit panel's axes fraction
LABEL_GAP_PX = 4.0  # least space between two names in one row


def action_colour(action: str) -> str:
    """The fixed colour of an action type (``OTHER_COLOUR`` if unknown)."""
    return ACTION_COLOURS.get(action, OTHER_COLOUR)


def envelope(samples: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of the channel mean.

    Parameters
    ----------
    samples:
        ``(n_channels, n_samples)`` or ``(n_samples,)`` audio.
    n_columns:
        Number of columns (about one per pixel).

    Returns
    -------
    ``(lo, hi)``, each ``(n_columns,)`` float32; column ``k`` covers samples
    ``[k * n / n_columns, (k + 1) * n / n_columns)``. Zeros for empty audio.
    """
    x = np.asarray(samples, dtype=np.float32)
    mono = x if x.ndim == 1 else x.mean(axis=0)
    mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    n = mono.shape[0]
    if n == 0 or n_columns <= 0:
        return np.zeros(max(n_columns, 0), np.float32), np.zeros(max(n_columns, 0), np.float32)
    edges = (np.arange(n_columns + 1, dtype=np.int64) * n) // n_columns
    edges[-1] = n
    starts = np.minimum(edges[:-1], n - 1)  # columns narrower than a sample repeat it
    lo = np.minimum.reduceat(mono, starts)
    hi = np.maximum.reduceat(mono, starts)
    return lo.astype(np.float32), hi.astype(np.float32)


def _uncovered(segments: list[Segment], duration_s: float, min_gap_s: float = 1e-3) -> list[tuple[float, float]]:
    """Source spans in ``[0, duration_s]`` that no segment reads (cut audio)."""
    spans = sorted((max(0.0, s.src_start_s), min(duration_s, s.src_end_s)) for s in segments)
    gaps, cursor = [], 0.0
    for a, b in spans:
        if a - cursor > min_gap_s:
            gaps.append((cursor, a))
        cursor = max(cursor, b)
    if duration_s - cursor > min_gap_s:
        gaps.append((cursor, duration_s))
    return gaps


def _draw_wave(ax, samples: np.ndarray, sample_rate: int, n_columns: int) -> float:
    """Draw an envelope on ``ax``; returns the audio's duration in seconds."""
    n = np.asarray(samples).shape[-1]
    duration = n / float(sample_rate)
    lo, hi = envelope(samples, n_columns)
    t = (np.arange(n_columns) + 0.5) * duration / max(n_columns, 1)
    ax.fill_between(t, lo, hi, color=WAVE_COLOUR, linewidth=0.0, zorder=3)
    ax.axhline(0.0, color=WAVE_COLOUR, linewidth=0.3, zorder=3)
    return duration


def marker_labels(fig: Any, ax: Any, items: list[tuple[float, str]]) -> list[Any]:
    """Write marker names above ``ax`` in rows, so that no two overlap.

    Each name starts at its marker's time; it goes in the first of
    ``LABEL_LANES`` rows where it clears the names already there by
    ``LABEL_GAP_PX``, and is left out when none has room (the count left
    out is noted at the right end of the top row). Repeated names at one
    time are written once.

    Returns the matplotlib ``Text`` objects of the names written.
    """
    renderer = fig.canvas.get_renderer()
    transform = ax.get_xaxis_transform()
    lanes_end = [-np.inf] * LABEL_LANES  # right edge of the last name in each row, pixels
    written, hidden, seen = [], 0, set()
    for time_s, name in sorted(items, key=lambda it: it[0]):
        label = " ".join(str(name).split())[:24]
        if (round(time_s, 6), label) in seen:
            continue
        seen.add((round(time_s, 6), label))
        text = ax.text(time_s, 1.02, label, transform=transform, fontsize=7, ha="left", va="bottom", clip_on=False)
        box = text.get_window_extent(renderer)
        lane = next((k for k, end in enumerate(lanes_end) if box.x0 >= end + LABEL_GAP_PX), None)
        if lane is None:
            text.remove()
            hidden += 1
            continue
        text.set_y(1.02 + lane * LABEL_LANE_STEP)
        lanes_end[lane] = box.x1
        written.append(text)
    if hidden:
        written.append(
            ax.text(1.0, 1.02 + LABEL_LANES * LABEL_LANE_STEP, f"{hidden} more markers not named", transform=ax.transAxes,
                    fontsize=7, ha="right", va="bottom", clip_on=False, color="#555555")
        )
    return written


def plot_plan(
    plan: EditPlan,
    source_samples: np.ndarray,
    sample_rate: int,
    edited_samples: np.ndarray | None,
    out_png: str | os.PathLike,
    *,
    width_px: int = 1600,
    height_px: int = 900,
    dpi: int = 100,
) -> str:
    """Draw the before/after picture of ``plan`` and write it as a PNG.

    Parameters
    ----------
    plan:
        The edit.
    source_samples:
        Source audio, ``(n_channels, n_samples)`` (or ``(n_samples,)``).
    sample_rate:
        Rate of both audio arrays in Hz.
    edited_samples:
        The rendered edit, same layout; None renders it with
        ``engine.render.render_plan``.
    out_png:
        Destination; written atomically, never over ``plan.source.path``.
    width_px, height_px, dpi:
        Image size in pixels (the PNG has exactly this size) and density.

    Returns
    -------
    The path written.
    """
    check_destination(out_png, [plan.source.path])  # fail before any rendering
    if not (isinstance(sample_rate, (int, np.integer)) or float(sample_rate).is_integer()) or sample_rate <= 0:
        raise BadInput(None, f"sample rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    source = np.asarray(source_samples, dtype=np.float32)
    if source.ndim not in (1, 2) or source.shape[-1] == 0:
        raise BadInput(plan.source.path, f"source audio must be (n_channels, n_samples) and non-empty, got {source.shape}")
    if edited_samples is None:
        from editorbot.engine.render import render_plan  # heavy (pedalboard); only when needed

        edited_samples = render_plan(plan, source if source.ndim == 2 else source[None, :], sample_rate)
    edited = np.asarray(edited_samples, dtype=np.float32)
    if edited.ndim not in (1, 2):
        raise BadInput(None, f"edited audio must be (n_channels, n_samples), got {edited.shape}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Polygon

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    left, width = 0.05, 0.78
    ax_src = fig.add_axes((left, 0.57, width, 0.34))
    ax_out = fig.add_axes((left, 0.08, width, 0.34))
    n_columns = max(64, int(width * width_px))

    src_dur = _draw_wave(ax_src, source, sample_rate, n_columns)
    out_dur = _draw_wave(ax_out, edited, sample_rate, n_columns)
    x_max = max(src_dur, out_dur, plan.duration_s, 1e-3)
    peak = max(1e-6, float(np.nanmax(np.abs(source))) if source.size else 0.0, float(np.nanmax(np.abs(edited))) if edited.size else 0.0)
    for ax in (ax_src, ax_out):
        ax.set_xlim(0.0, x_max)
        ax.set_ylim(-1.05 * peak, 1.05 * peak)
        ax.set_yticks([])
        ax.margins(x=0)

    present: dict[str, str] = {}
    for seg in plan.segments:
        colour = action_colour(seg.action)
        present.setdefault(seg.action, colour)
        ax_src.axvspan(seg.src_start_s, seg.src_end_s, color=colour, alpha=0.35, linewidth=0, zorder=1)
        ax_out.axvspan(seg.dst_start_s, seg.dst_start_s + seg.length_s, color=colour, alpha=0.35, linewidth=0, zorder=1)
        if seg.mute:
            ax_out.axvspan(seg.dst_start_s, seg.dst_start_s + seg.length_s, fill=False, hatch="//", edgecolor=colour, linewidth=0, zorder=2)
    for a, b in _uncovered(plan.segments, src_dur):
        present.setdefault("CUT", action_colour("CUT"))
        ax_src.axvspan(a, b, color=action_colour("CUT"), alpha=0.35, linewidth=0, zorder=1)

    # bands joining each segment's source span to its place in the edit
    if len(plan.segments) <= MAX_LINKS:
        to_fig = fig.transFigure.inverted()
        y_top = ax_src.get_ylim()[0]
        y_bot = ax_out.get_ylim()[1]
        for seg in plan.segments:
            src_xy = to_fig.transform(ax_src.transData.transform([(seg.src_start_s, y_top), (seg.src_end_s, y_top)]))
            out_xy = to_fig.transform(ax_out.transData.transform([(seg.dst_start_s + seg.length_s, y_bot), (seg.dst_start_s, y_bot)]))
            if seg.reverse:
                out_xy = out_xy[::-1]
            fig.patches.append(
                Polygon(np.vstack([src_xy, out_xy]), closed=True, transform=fig.transFigure, facecolor=action_colour(seg.action), alpha=0.15, edgecolor="none")
            )

    for marker in plan.markers:
        if marker.end_s is None:
            ax_out.axvline(marker.time_s, color="#000000", linestyle="--", linewidth=0.8, zorder=4)
        else:
            ax_out.axvspan(marker.time_s, marker.end_s, ymin=0.92, ymax=1.0, color="#000000", alpha=0.25, linewidth=0, zorder=4)
    if len(plan.markers) <= MAX_MARKER_LABELS:
        marker_labels(fig, ax_out, [(m.time_s, m.name) for m in plan.markers if m.time_s <= x_max])

    name = os.path.basename(plan.source.path) or "source"
    ax_src.set_title(
        f"{name}: {src_dur:.1f} s  ->  edit: {out_dur:.1f} s, {len(plan.segments)} segments",
        loc="left",
        fontsize=10,
    )
    ax_src.set_ylabel("before", fontsize=10)
    ax_out.set_ylabel("after", fontsize=10)
    ax_src.set_xlabel("source time (s)", fontsize=8)
    ax_out.set_xlabel("output time (s)", fontsize=8)
    order = list(ACTION_COLOURS) + sorted(set(present) - set(ACTION_COLOURS))
    handles = [Patch(facecolor=present[t], alpha=0.6, label=t) for t in order if t in present]
    if handles:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left + width + 0.015, 0.91), fontsize=8, title="action", frameon=False)

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    path = write_bytes_atomic(out_png, png.getvalue(), protect=[plan.source.path])
    log.debug("wrote plot %s", path)
    return path
