"""EditPlan: the one contract between deciding and doing (DESIGN section 5).

Times are seconds. Source times are positions in the source file; output
("dst") times are positions in the rendered edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA = "editorbot.editplan/1"


@dataclass
class Source:
    """The audio file a plan was made for."""

    path: str
    sha256: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass
class Grid:
    """The beat grid the plan's decisions refer to."""

    tempo_bpm: float
    beat_times: list[float]  # (n_beats,) seconds, increasing
    downbeats: list[int]  # indices into beat_times


@dataclass
class Action:
    """One factored decision taken at a beat (names from engine.actions)."""

    beat: int
    type: str  # e.g. "LOOP"
    size: str  # e.g. "BAR"
    amount: str  # e.g. "POS_SMALL"
    start_s: float
    end_s: float


@dataclass
class Effect:
    """One pedalboard effect on a segment; ``params`` are in physical units.

    name -> params: lowpass/highpass {cutoff_hz}; bass/treble {gain_db}
    (shelves at 200 Hz / 4 kHz); reverb {room_size, wet}; delay {delay_s,
    feedback, mix}; distortion {drive_db}; compress {threshold_db, ratio};
    width {width} (side gain; 1 = unchanged, 0 = mono).
    """

    name: str
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class Segment:
    """A piece of the source placed on the output timeline.

    Output length is ``(src_end_s - src_start_s) / rate``. Fades are
    explicit FADE_IN/FADE_OUT shapes (linear in gain); the short splice
    crossfades between neighbouring segments are the renderer's job.
    """

    src_start_s: float
    src_end_s: float
    dst_start_s: float
    gain_db: float = 0.0
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    reverse: bool = False
    mute: bool = False  # SILENCE: keeps its length, outputs zeros
    rate: float = 1.0  # SPEED: playback rate, pitch preserved
    pitch_semitones: float = 0.0  # PITCH: shift, length preserved
    effects: list[Effect] = field(default_factory=list)
    action: str = "KEEP"  # the action type that made it (colours, labels)
    beat: int = 0  # index of the first source beat of the action

    @property
    def length_s(self) -> float:
        """Length on the output timeline in seconds."""
        return (self.src_end_s - self.src_start_s) / self.rate


@dataclass
class Marker:
    """A marker (``end_s`` None) or region (``end_s`` set) in output time."""

    time_s: float
    name: str
    end_s: float | None = None


@dataclass
class Automation:
    """A parameter lane in output time: ``points`` are ``(time_s, value)``.

    parameter: "volume_db", "lowpass_hz", "highpass_hz", ...
    """

    parameter: str
    points: list[tuple[float, float]]


@dataclass
class ModelInfo:
    name: str
    version: str
    sha256: str


@dataclass
class EditPlan:
    source: Source
    grid: Grid
    actions: list[Action] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    automation: list[Automation] = field(default_factory=list)
    model: ModelInfo | None = None
    schema: str = SCHEMA

    @property
    def duration_s(self) -> float:
        """Length of the edited output in seconds."""
        return max((s.dst_start_s + s.length_s for s in self.segments), default=0.0)
