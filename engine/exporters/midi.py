"""Standard MIDI file export: tempo, markers and CC automation (via mido).

Layout: a type 1 file, ``TICKS_PER_BEAT`` (960) ticks per quarter note.

- Track 0 (conductor): ``track_name``, one ``set_tempo`` with the grid's
  global tempo, a ``time_signature`` (``beats_per_bar``/4), and the plan's
  markers as ``marker`` meta events. A region becomes two markers: its name
  at its start and ``"<name> end"`` at its end.
- Track 1 (``automation``): for each automation lane a ``text`` meta event
  at tick 0, ``editorbot-cc <cc> <parameter> <lo> <hi> <scale>``, that
  states the mapping, then ``control_change`` events on channel 0.

Tempo map choice: one global tempo, not one ``set_tempo`` per beat. The
grid's beat times are positions in the *source*; the edit re-sequences the
source, so its beats would not land on the output timeline anyway. With one
tempo, an output time ``t`` is tick ``round(t * 1e6 / tempo_us *
TICKS_PER_BEAT)`` where ``tempo_us`` is the (integer) microseconds per beat
written in the file; reading a tick back with ``mido.tick2second`` at that
tempo gives ``t`` within half a tick (0.26 ms at 120 BPM).

CC mapping, one controller per parameter (``CC_LANES``; 0..127, clipped):

=============  ====  ==================  ===========================
parameter      CC    range               scale
=============  ====  ==================  ===========================
volume_db      7     -60 .. +6 dB        linear in dB (0 = -60 dB or
                                         less)
lowpass_hz     74    20 .. 20000 Hz      logarithmic in Hz
highpass_hz    81    20 .. 20000 Hz      logarithmic in Hz
other          16-19, 82-83, 85-90,      linear over the lane's own
               102-119 in order          min .. max
=============  ====  ==================  ===========================

Between two points of a lane the value is interpolated linearly in the
parameter's unit (as a DAW draws the lane) and a CC event is written each
time the quantised value changes (sampled every 1/32 beat); every point also
gets an event at its own tick.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass

import mido

from editorbot.engine.atomic import write_bytes_atomic
from editorbot.engine.errors import BadInput
from editorbot.engine.exporters.reaper import beats_per_bar
from editorbot.engine.plan import Automation, EditPlan

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 960
STEPS_PER_BEAT = 32  # sampling of ramps between automation points
CHANNEL = 0


@dataclass(frozen=True)
class CcLane:
    """How one parameter maps onto a MIDI controller.

    ``scale`` is ``"linear"`` (value ``lo`` -> 0, ``hi`` -> 127) or ``"log"``
    (the same on ``log(value)``; ``lo`` and ``hi`` must be > 0).
    """

    parameter: str
    cc: int
    lo: float
    hi: float
    scale: str = "linear"

    def _unit(self, value: float) -> float:
        if self.scale == "log":
            v = max(float(value), self.lo)
            return (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        if self.hi == self.lo:
            return 0.0
        return (float(value) - self.lo) / (self.hi - self.lo)

    def to_cc(self, value: float) -> int:
        """The controller value 0..127 for a parameter value (clipped)."""
        return int(min(127, max(0, round(self._unit(value) * 127.0))))

    def from_cc(self, cc_value: int) -> float:
        """The parameter value a controller value 0..127 stands for."""
        u = min(127, max(0, int(cc_value))) / 127.0
        if self.scale == "log":
            return math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + u * (self.hi - self.lo)

    @property
    def step(self) -> float:
        """Parameter change per controller step (linear lanes)."""
        return (self.hi - self.lo) / 127.0

    def text(self) -> str:
        """The ``text`` meta event stating this mapping."""
        return f"editorbot-cc {self.cc} {self.parameter} {self.lo!r} {self.hi!r} {self.scale}"

    @classmethod
    def parse(cls, text: str) -> CcLane | None:
        """Inverse of ``text()``; None for other text events."""
        parts = text.split()
        if len(parts) != 6 or parts[0] != "editorbot-cc":
            return None
        return cls(parts[2], int(parts[1]), float(parts[3]), float(parts[4]), parts[5])


CC_LANES: dict[str, CcLane] = {
    "volume_db": CcLane("volume_db", 7, -60.0, 6.0, "linear"),
    "lowpass_hz": CcLane("lowpass_hz", 74, 20.0, 20000.0, "log"),
    "highpass_hz": CcLane("highpass_hz", 81, 20.0, 20000.0, "log"),
}

SPARE_CCS: tuple[int, ...] = (16, 17, 18, 19, 82, 83, 85, 86, 87, 88, 89, 90, *range(102, 120))
"""Controllers without a fixed meaning, given to other parameters in order."""


def lanes_for(automation: list[Automation]) -> list[tuple[Automation, CcLane]]:
    """The controller mapping of each non-empty lane (see the module table)."""
    spare = iter(SPARE_CCS)
    out = []
    for lane in automation:
        if not lane.points:
            continue
        mapping = CC_LANES.get(lane.parameter)
        if mapping is None:
            try:
                cc = next(spare)
            except StopIteration:
                log.warning("no free MIDI controller left for automation %r; skipped", lane.parameter)
                continue
            values = [float(v) for _, v in lane.points]
            mapping = CcLane(lane.parameter, cc, min(values), max(values), "linear")
        out.append((lane, mapping))
    return out


def tempo_us(plan: EditPlan) -> int:
    """Microseconds per beat written for ``plan`` (from the grid's tempo)."""
    bpm = float(plan.grid.tempo_bpm)
    if not (math.isfinite(bpm) and 1.0 <= bpm <= 960.0):
        raise BadInput(None, f"grid tempo {plan.grid.tempo_bpm!r} BPM is out of range 1-960")
    return int(round(mido.bpm2tempo(bpm)))


def _meta_text(name: str) -> str:
    """One-line text a MIDI meta event can hold (latin-1; others become '?')."""
    return " ".join(str(name).split()).encode("latin-1", "replace").decode("latin-1")


def _ticks(t_s: float, tempo: int) -> int:
    if not math.isfinite(float(t_s)):
        raise BadInput(None, f"non-finite time {t_s!r} in plan")
    return max(0, int(round(float(t_s) * 1e6 / tempo * TICKS_PER_BEAT)))


def _to_track(events: list[tuple[int, int, mido.Message | mido.MetaMessage]], name: str) -> mido.MidiTrack:
    """Absolute-tick events (tick, order, msg) -> a track with delta times."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _cc_events(lane: Automation, mapping: CcLane, tempo: int, order0: int) -> list[tuple[int, int, mido.Message]]:
    points = sorted(((float(t), float(v)) for t, v in lane.points), key=lambda p: p[0])
    for t, v in points:
        if not (math.isfinite(t) and math.isfinite(v)):
            raise BadInput(None, f"automation {lane.parameter}: non-finite point ({t}, {v})")
    events: list[tuple[int, int, mido.Message]] = []
    order = order0
    last: int | None = None

    def emit(tick: int, value: int, force: bool) -> None:
        nonlocal order, last
        if force or value != last:
            events.append((tick, order, mido.Message("control_change", channel=CHANNEL, control=mapping.cc, value=value)))
            order += 1
            last = value

    step_ticks = max(1, TICKS_PER_BEAT // STEPS_PER_BEAT)
    for (t0, v0), (t1, v1) in zip(points, points[1:] + [points[-1]]):
        k0, k1 = _ticks(t0, tempo), _ticks(t1, tempo)
        emit(k0, mapping.to_cc(v0), force=True)
        for k in range(k0 + step_ticks, k1, step_ticks):
            frac = (k - k0) / (k1 - k0)
            emit(k, mapping.to_cc(v0 + frac * (v1 - v0)), force=False)
    return events


def build_midi(plan: EditPlan) -> mido.MidiFile:
    """The ``mido.MidiFile`` for ``plan`` (see the module docstring)."""
    tempo = tempo_us(plan)
    conductor: list[tuple[int, int, mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("set_tempo", tempo=tempo)),
        (0, 1, mido.MetaMessage("time_signature", numerator=beats_per_bar(plan.grid), denominator=4)),
    ]
    order = 2
    for marker in sorted(plan.markers, key=lambda m: m.time_s):
        name = _meta_text(marker.name)
        conductor.append((_ticks(marker.time_s, tempo), order, mido.MetaMessage("marker", text=name)))
        order += 1
        if marker.end_s is not None:
            if marker.end_s < marker.time_s:
                raise BadInput(None, f"region {marker.name!r} ends before it starts")
            conductor.append((_ticks(marker.end_s, tempo), order, mido.MetaMessage("marker", text=f"{name} end")))
            order += 1

    automation: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    order = 0
    for lane, mapping in lanes_for(plan.automation):
        automation.append((0, order, mido.MetaMessage("text", text=mapping.text())))
        order += 1
        cc = _cc_events(lane, mapping, tempo, order)
        automation += cc
        order += len(cc)

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_to_track(conductor, "editorbot"))
    mid.tracks.append(_to_track(automation, "automation"))
    return mid


def write_midi(plan: EditPlan, path: str | os.PathLike) -> str:
    """Write ``plan``'s tempo, markers and automation as a standard MIDI file.

    Never writes over ``plan.source.path`` (``BadInput``); atomic.
    Returns the path written.
    """
    data = io.BytesIO()
    build_midi(plan).save(file=data)
    return write_bytes_atomic(path, data.getvalue(), protect=[plan.source.path])
