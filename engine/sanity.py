"""The rules every edit keeps, measured on a plan and its rendered audio.

``check_edit(plan, source, rendered, sample_rate)`` counts each way an edit
can damage a song (``RULES``); a clean edit counts 0 on every one. The
regression tests and ``bench/sanity_real.py`` both use it, so a rule is
written once.

- ``kept``: without a target duration, the edit lasts less than
  ``min_keep`` of the source (1 when it does, else 0).
- ``fragment``: an action's output (its run of segments) or the kept
  lead-in / tail lasts less than half the median beat, fades excepted.
- ``silence``: a run of digital silence (``SILENCE_DB`` or below for at
  least ``SILENCE_MIN_S``) where no SILENCE or fade segment plays (a fade
  goes to silence) and the source is not itself at ``SOURCE_QUIET_DB`` or
  below.
- ``fade``: a FADE_OUT followed by anything audible but a FADE_IN (a jump
  back up), or a FADE_IN that follows audible output other than a
  FADE_OUT (it does not rise from silence).
- ``marker``: a marker identical to another (time, name and end).
- ``peak``: a sample peak above ``PEAK_CEILING_DB`` (1 or 0).
- ``click``: a splice (a boundary between segments) whose largest sample
  step within ``CLICK_WINDOW_S`` is over ``CLICK_RATIO`` times the
  source's 99.9th-percentile step, and over what the material itself has
  there (the source's largest step in the same window under either side,
  times that side's gain: a drum hit on the beat after a splice is not a
  click).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from editorbot.engine.plan import EditPlan, Segment
from editorbot.engine.render import PEAK_CEILING_DB

#: The rules, in report order.
RULES: tuple[str, ...] = ("kept", "fragment", "silence", "fade", "marker", "peak", "click")
#: Digital silence: every channel at or below this level (dBFS) ...
SILENCE_DB = -100.0
#: ... for at least this long (seconds).
SILENCE_MIN_S = 0.02
#: A source span at or below this level (dBFS) explains digital silence in the edit.
SOURCE_QUIET_DB = -80.0
#: Half-width of the window a splice's step is measured in (seconds).
CLICK_WINDOW_S = 0.001
#: Largest splice step allowed, over the source's 99.9th-percentile step.
CLICK_RATIO = 2.0
#: Shortest action output allowed, in median beats (fades excepted).
FRAGMENT_BEATS = 0.5
_FADES = ("FADE_IN", "FADE_OUT")


@dataclass
class EditCheck:
    """What ``check_edit`` found.

    Attributes
    ----------
    counts:
        Violations per rule (``RULES``).
    kept_share:
        Edit length over source length.
    peak_dbfs:
        The edit's sample peak.
    shortest_s:
        Shortest action output (or lead-in / tail) that is not a fade, seconds.
    silence_s:
        Seconds of digital silence no SILENCE segment and no silent source explains.
    details:
        One line per violation, for a reader.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    kept_share: float = 0.0
    peak_dbfs: float = -math.inf
    shortest_s: float = math.inf
    silence_s: float = 0.0
    details: list[str] = field(default_factory=list)

    def add(self, rule: str, detail: str) -> None:
        """Count one violation of ``rule``."""
        self.counts[rule] += 1
        self.details.append(f"{rule}: {detail}")

    @property
    def clean(self) -> bool:
        """No rule broken."""
        return not any(self.counts.values())


def _groups(segments: list[Segment]) -> list[list[Segment]]:
    """Runs of consecutive segments one action made (same action and first beat)."""
    out: list[list[Segment]] = []
    for s in segments:
        if out and out[-1][-1].action == s.action and out[-1][-1].beat == s.beat and s.action != "KEEP":
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _silent_runs(x: np.ndarray, sr: int) -> list[tuple[int, int]]:
    """``[(start, end))`` sample runs where every channel is digitally silent for ``SILENCE_MIN_S``."""
    quiet = np.all(np.abs(x) <= 10.0 ** (SILENCE_DB / 20.0), axis=0)
    if not quiet.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    return [(int(a), int(b)) for a, b in runs if b - a >= SILENCE_MIN_S * sr]


def _source_silent(seg: Segment, t0: float, t1: float, source: np.ndarray, sr: int) -> bool:
    """Whether the source under output ``[t0, t1)`` of ``seg`` is (nearly) silent too."""
    a = seg.src_start_s + (t0 - seg.dst_start_s) * seg.rate
    b = seg.src_start_s + (t1 - seg.dst_start_s) * seg.rate
    if seg.reverse:
        a, b = seg.src_end_s - (b - seg.src_start_s), seg.src_end_s - (a - seg.src_start_s)
    lo, hi = max(0, int(a * sr)), min(source.shape[1], math.ceil(b * sr))
    return hi <= lo or bool(np.all(np.abs(source[:, lo:hi]) <= 10.0 ** (SOURCE_QUIET_DB / 20.0)))


def max_step(x: np.ndarray) -> np.ndarray:
    """``(n - 1,)`` largest absolute sample step over channels of ``(n_channels, n)`` audio."""
    return np.abs(np.diff(x, axis=1)).max(axis=0) if x.shape[1] > 1 else np.zeros(0, x.dtype)


def check_edit(
    plan: EditPlan,
    source: np.ndarray,
    rendered: np.ndarray,
    sample_rate: int,
    *,
    min_keep: float | None = 0.3,
) -> EditCheck:
    """Count the edit's violations of each rule (module docstring).

    Parameters
    ----------
    plan:
        The edit.
    source, rendered:
        ``(n_channels, n_samples)`` float audio: the source and the edit as
        written (read back from the file, so format and dither count).
    sample_rate:
        Hz, both.
    min_keep:
        Shortest edit allowed as a share of the source; None when a target
        duration set the length (the rule does not apply).
    """
    sr = int(sample_rate)
    source = np.asarray(source, dtype=np.float32)
    rendered = np.asarray(rendered, dtype=np.float32)
    check = EditCheck()
    src_s = source.shape[1] / sr
    out_s = rendered.shape[1] / sr
    check.kept_share = out_s / src_s if src_s else 0.0
    if min_keep is not None and check.kept_share < min_keep - 1e-6:
        check.add("kept", f"{check.kept_share:.1%} of the source kept, under {min_keep:.0%}")

    bt = np.asarray(plan.grid.beat_times, dtype=np.float64)
    beat_s = float(np.median(np.diff(bt))) if len(bt) >= 2 else 60.0 / max(plan.grid.tempo_bpm, 1.0)
    segments = list(plan.segments)
    for group in _groups(segments):
        length = sum(s.length_s for s in group)
        if group[0].action in _FADES or group[0].mute:
            continue
        check.shortest_s = min(check.shortest_s, length)
        if length < FRAGMENT_BEATS * beat_s - 1e-6:
            check.add("fragment", f"{group[0].action} at {group[0].dst_start_s:.3f} s lasts {length * 1000:.0f} ms")

    for i, s in enumerate(segments):
        if s.action == "FADE_OUT":
            nxt = segments[i + 1] if i + 1 < len(segments) else None
            if nxt is not None and not nxt.mute and nxt.action != "FADE_IN":
                check.add("fade", f"FADE_OUT at {s.dst_start_s:.3f} s is followed by {nxt.action}, not a fade-in")
        if s.action == "FADE_IN" and i > 0:
            prev = segments[i - 1]
            if not prev.mute and prev.action != "FADE_OUT" and not (prev.action == "FADE_IN" and prev.beat == s.beat):
                check.add("fade", f"FADE_IN at {s.dst_start_s:.3f} s follows {prev.action}, not silence")

    seen: set[tuple[float, str, float | None]] = set()
    for m in plan.markers:
        key = (round(m.time_s, 6), m.name, None if m.end_s is None else round(m.end_s, 6))
        if key in seen:
            check.add("marker", f"{m.name!r} twice at {m.time_s:.3f} s")
        seen.add(key)

    for a, b in _silent_runs(rendered, sr):
        t0, t1 = a / sr, b / sr
        unexplained = 0.0
        for s in segments:
            lo, hi = max(t0, s.dst_start_s), min(t1, s.dst_start_s + s.length_s)
            if hi <= lo or s.mute or s.fade_in_s > 0 or s.fade_out_s > 0 or _source_silent(s, lo, hi, source, sr):
                continue
            unexplained += hi - lo
        if unexplained >= SILENCE_MIN_S:
            check.silence_s += unexplained
            check.add("silence", f"{unexplained:.3f} s of digital silence at {t0:.3f} s")

    check.peak_dbfs = 20.0 * math.log10(float(np.abs(rendered).max())) if rendered.size and np.abs(rendered).max() > 0 else -math.inf
    if check.peak_dbfs > PEAK_CEILING_DB + 0.005:
        check.add("peak", f"sample peak {check.peak_dbfs:+.2f} dBFS")

    steps = max_step(source)
    limit = CLICK_RATIO * float(np.percentile(steps, 99.9)) if steps.size else 0.0
    out_steps = max_step(rendered)
    w = max(1, round(CLICK_WINDOW_S * sr))
    for prev, s in itertools.pairwise(segments):
        k = round(s.dst_start_s * sr)
        window = out_steps[max(0, k - w) : min(len(out_steps), k + w)]
        if not window.size or float(window.max()) <= limit:
            continue
        material = max(_material_step(prev, steps, sr, w, at_end=True), _material_step(s, steps, sr, w, at_end=False))
        if float(window.max()) > 1.05 * material:  # 5%: the crossfade sums both sides
            check.add("click", f"step {float(window.max()):.4f} at the splice at {s.dst_start_s:.3f} s (limit {limit:.4f})")
    return check


def _material_step(seg: Segment, steps: np.ndarray, sr: int, w: int, *, at_end: bool) -> float:
    """The source's largest step within ``w`` samples of ``seg``'s end (or start), times its gain;
    0 where the segment plays the source otherwise than straight (muted, reversed, re-timed, effects)."""
    if seg.mute or seg.reverse or seg.rate != 1.0 or seg.pitch_semitones != 0.0 or seg.effects:
        return 0.0
    k = round((seg.src_end_s if at_end else seg.src_start_s) * sr)
    window = steps[max(0, k - w) : min(len(steps), k + w)]
    return float(window.max()) * 10.0 ** (seg.gain_db / 20.0) if window.size else 0.0
