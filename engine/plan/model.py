"""The EditPlan dataclasses (DESIGN section 5).

Times are seconds. Source times are positions in the source file; output
("dst") times are positions in the rendered edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The plan file's ``schema`` field: family ``editorbot.editplan``, version 1.
SCHEMA = "editorbot.editplan/1"


@dataclass
class Source:
    """The audio file a plan was made for.

    Attributes
    ----------
    path : str
        Where the file was (may be relative; see ``engine.plan.resolve_source``).
    sha256 : str
        64 hex digits of the file's contents.
    sample_rate : int
        Hz.
    channels : int
        Number of channels.
    duration_s : float
        Length in seconds.
    """

    path: str
    sha256: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass
class Grid:
    """The beat grid the plan's decisions refer to.

    Attributes
    ----------
    tempo_bpm : float
        Beats per minute.
    beat_times : list of float
        ``(n_beats,)`` seconds, increasing.
    downbeats : list of int
        Indices into ``beat_times``.
    """

    tempo_bpm: float
    beat_times: list[float]
    downbeats: list[int]


@dataclass
class Action:
    """One factored decision taken at a beat (names from ``engine.actions``).

    Attributes
    ----------
    beat : int
        Index of the first source beat it covers.
    type, size, amount : str
        E.g. ``"LOOP"``, ``"BAR"``, ``"POS_SMALL"``.
    start_s, end_s : float
        The source span it covers, seconds.
    confidence : float or None
        How sure whoever chose it was, 0-1: the policy's probability of the
        chosen (type, size, amount), or label inference's confidence in the
        label. ``None`` when nobody said (hand-written plans).
    """

    beat: int
    type: str
    size: str
    amount: str
    start_s: float
    end_s: float
    confidence: float | None = None


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

    Attributes
    ----------
    src_start_s, src_end_s : float
        The source span, seconds.
    dst_start_s : float
        Where it starts on the output timeline, seconds.
    gain_db : float
        GAIN, dB.
    fade_in_s, fade_out_s : float
        FADE_IN / FADE_OUT lengths in output seconds.
    reverse : bool
        REVERSE: played backwards.
    mute : bool
        SILENCE: keeps its length, outputs zeros.
    rate : float
        SPEED: playback rate, pitch preserved.
    pitch_semitones : float
        PITCH: shift, length preserved.
    effects : list of Effect
        Applied in order.
    action : str
        The action type that made it (colours, labels).
    beat : int
        Index of the first source beat of the action.
    """

    src_start_s: float
    src_end_s: float
    dst_start_s: float
    gain_db: float = 0.0
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    reverse: bool = False
    mute: bool = False
    rate: float = 1.0
    pitch_semitones: float = 0.0
    effects: list[Effect] = field(default_factory=list)
    action: str = "KEEP"
    beat: int = 0

    @property
    def length_s(self) -> float:
        """Length on the output timeline in seconds."""
        return (self.src_end_s - self.src_start_s) / self.rate


@dataclass
class Marker:
    """A marker (``end_s`` None) or region (``end_s`` set) in output time, seconds."""

    time_s: float
    name: str
    end_s: float | None = None


@dataclass
class Automation:
    """A parameter lane in output time.

    Attributes
    ----------
    parameter : str
        ``"volume_db"``, ``"lowpass_hz"``, ``"highpass_hz"``, ...
    points : list of (float, float)
        ``(time_s, value)`` in the parameter's unit.
    """

    parameter: str
    points: list[tuple[float, float]]


@dataclass
class ModelInfo:
    """The model file that made a plan (``sha256``: 64 hex digits of the file)."""

    name: str
    version: str
    sha256: str


@dataclass
class EditPlan:
    """A whole edit: what was decided (actions) and what to do (segments).

    Attributes
    ----------
    source : Source
    grid : Grid
    actions : list of Action
        The decisions, in walk order.
    segments : list of Segment
        The timeline in output time; what renderers and DAW writers consume.
    markers : list of Marker
    automation : list of Automation
    model : ModelInfo or None
        The model that made the plan (None for other producers).
    schema : str
        ``SCHEMA``.
    """

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
