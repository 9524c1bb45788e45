"""What a synthesized song plays, decided before any sound is made: the musical
vocabulary (modes, progressions, drum, bass, stab and lead patterns on a 16-step
bar), the song's sections, and the ``SongPlan`` drawn from a seed.

``training.data.synth`` renders a plan into audio; the timing model and the
structure rules it documents are decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BEATS_PER_BAR = 4
BEATS_PER_PHRASE = 16
STEPS_PER_BEAT = 4  # patterns are written on a 16th-note grid
STEPS_PER_BAR = BEATS_PER_BAR * STEPS_PER_BEAT
TEMPO_RANGE_BPM = (70.0, 180.0)
DURATION_RANGE_S = (60.0, 240.0)

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
# Chord progressions as 0-based scale degrees, one chord per bar (4 bars = 1 phrase).
PROGRESSIONS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 5, 4), (0, 2, 3, 4), (3, 4, 2, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 3, 4, 0), (0, 5, 3, 4), (5, 6, 0, 0), (3, 4, 5, 6)),
}
INSTRUMENTS = ("kick", "snare", "hats", "open_hat", "crash", "bass", "chords", "lead")
DRUM_FAMILIES = ("four_on_the_floor", "backbeat", "half_time", "breakbeat")

# Drum patterns: instrument -> ((step, velocity), ...) on the 16-step bar.
_Pattern = dict[str, tuple[tuple[int, float], ...]]
DRUM_PATTERNS: dict[str, tuple[_Pattern, ...]] = {
    "four_on_the_floor": (
        {
            "kick": ((0, 1.0), (4, 0.9), (8, 0.95), (12, 0.9)),
            "snare": ((4, 0.9), (12, 0.9)),
            "hats": ((0, 0.5), (2, 0.9), (4, 0.5), (6, 0.9), (8, 0.5), (10, 0.9), (12, 0.5), (14, 0.9)),
            "open_hat": ((2, 0.7), (6, 0.7), (10, 0.7), (14, 0.7)),
        },
        {
            "kick": ((0, 1.0), (4, 0.9), (8, 0.95), (12, 0.9)),
            "snare": ((4, 0.9), (12, 0.9), (15, 0.35)),
            "hats": tuple((s, 0.9 if s % 4 == 2 else (0.55 if s % 4 == 0 else 0.35)) for s in range(16)),
            "open_hat": ((6, 0.6), (14, 0.7)),
        },
    ),
    "backbeat": (
        {
            "kick": ((0, 1.0), (7, 0.6), (8, 0.9)),
            "snare": ((4, 0.95), (12, 0.95)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.6) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.6),),
        },
        {
            "kick": ((0, 1.0), (8, 0.85), (10, 0.7)),
            "snare": ((4, 0.95), (12, 0.95)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else (0.6 if s % 2 == 0 else 0.35)) for s in range(16)),
            "open_hat": ((6, 0.5),),
        },
    ),
    "half_time": (
        {
            "kick": ((0, 1.0), (10, 0.7)),
            "snare": ((8, 1.0),),
            "hats": tuple((s, 0.95 if s % 4 == 0 else 0.45) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.5),),
        },
        {
            "kick": ((0, 1.0), (3, 0.5), (10, 0.75)),
            "snare": ((8, 1.0), (15, 0.3)),
            "hats": tuple((s, 0.95) for s in range(0, 16, 4)) + ((6, 0.4), (14, 0.4)),
            "open_hat": ((2, 0.45),),
        },
    ),
    "breakbeat": (
        {
            "kick": ((0, 1.0), (10, 0.85)),
            "snare": ((4, 1.0), (7, 0.3), (9, 0.3), (12, 1.0)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.55) for s in range(0, 16, 2)),
            "open_hat": ((14, 0.5),),
        },
        {
            "kick": ((0, 1.0), (8, 0.55), (10, 0.85)),
            "snare": ((4, 1.0), (12, 1.0), (14, 0.35)),
            "hats": tuple((s, 0.9 if s % 4 == 0 else 0.5) for s in range(0, 16, 2)),
            "open_hat": ((6, 0.5),),
        },
    ),
}
# Bass rhythms: ((step, length_steps, interval_semitones), ...); every one starts on step 0.
_BASS_PATTERNS: tuple[tuple[tuple[int, int, int], ...], ...] = (
    tuple((s, 2, 12 if s in (6, 14) else 0) for s in range(0, 16, 2)),
    ((0, 3, 0), (3, 3, 0), (6, 2, 12), (8, 3, 0), (11, 3, 0), (14, 2, 7)),
    ((0, 6, 0), (6, 2, 0), (8, 4, 0), (12, 2, 7), (14, 2, 12)),
    ((0, 2, 0), (2, 2, 0), (6, 2, 0), (10, 2, 0), (14, 2, 0)),
    ((0, 4, 0), (4, 2, 0), (8, 4, 0), (12, 2, 12), (14, 2, 0)),
)
BASS_SPARSE = ((0, 8, 0), (8, 8, 0))
_STAB_RHYTHMS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 2), (6, 2), (10, 2)),
    ((0, 3), (4, 1), (8, 3), (12, 1)),
    ((0, 2), (2, 2), (6, 2), (10, 2), (14, 2)),
    ((0, 4), (6, 2), (8, 4), (14, 2)),
)
# Lead rhythm cells for one bar: ((step, length_steps), ...).
LEAD_CELLS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 4), (4, 2), (6, 2), (8, 6), (14, 2)),
    ((0, 6), (6, 2), (8, 4), (12, 4)),
    ((2, 2), (4, 4), (8, 2), (10, 2), (12, 4)),
    ((0, 3), (3, 3), (6, 2), (8, 8)),
    ((0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 2), (14, 2)),
    ((0, 8), (10, 2), (12, 4)),
)


@dataclass
class Section:
    """One section of a synthesized song.

    Attributes
    ----------
    name : str
        "intro", "verse", "chorus", "bridge" or "outro".
    start_beat : int
        index of the section's first beat in ``Song.beat_times``.
    n_beats : int
        length in beats, a multiple of 16 (whole phrases).
    energy : float
        0..1, how full and loud the section is.
    instruments : tuple[str, ...]
        names from ``INSTRUMENTS`` playing in this section.
    """

    name: str
    start_beat: int
    n_beats: int
    energy: float
    instruments: tuple[str, ...]


# --------------------------------------------------------------------------- timing


def swing_warp(pos_beats: np.ndarray, swing: float, grid: int = 8) -> np.ndarray:
    """Map straight positions (in beats) to swung positions (in beats).

    Piecewise linear inside each swing unit (a beat for ``grid=8``, half a beat
    for ``grid=16``): the unit's start stays, its midpoint moves later by
    ``swing / 2`` of the unit. Whole beats never move.

    Parameters
    ----------
    pos_beats : np.ndarray
        ``(n,)`` positions in beats from the first beat.
    swing : float
        0..0.3 (0 = straight).
    grid : int
        8 or 16.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64 swung positions in beats.
    """
    pos = np.asarray(pos_beats, dtype=np.float64)
    if swing <= 0.0:
        return pos.copy()
    unit = 1.0 if grid == 8 else 0.5
    scaled = pos / unit
    k = np.floor(scaled + 1e-9)
    f = np.clip(scaled - k, 0.0, 1.0)
    mid = 0.5 + swing / 2.0
    g = np.where(f < 0.5, f * (mid / 0.5), mid + (f - 0.5) * ((1.0 - mid) / 0.5))
    return (k + g) * unit


# --------------------------------------------------------------------------- song plan


@dataclass
class SongPlan:
    """Every choice a seed makes, drawn before any audio is rendered.

    ``plan_song`` returns one without rendering (cheap: for picking seeds by
    tempo, family or form); ``synth_song`` renders the same plan. Steps are
    16th notes within a bar (0..15); patterns are tuples of steps.

    Attributes
    ----------
    tempo_bpm : float
        beats per minute.
    swing : float
        0..0.3, see ``swing_warp``.
    swing_grid : int
        8 or 16.
    offset_s : float
        time of the first beat (s).
    riser : bool
        a noise swell fills it.
    root : int
        key root pitch class (0 = C).
    mode : str
        a key of ``MODES``.
    progressions : dict[str, tuple[int, ...]]
        section name -> one scale degree per bar (4 bars).
    seventh_chords : bool
        four-note chords instead of triads.
    drum_family : str
        one of ``DRUM_FAMILIES``.
    drum_variant : int
        pattern index.
    use_clap : bool
        clap instead of snare.
    bass_pattern : tuple[tuple[int, int, int], ...]
        ``((step, length_steps, interval_semitones), ...)`` per bar.
    chord_style : str
        "pad" or "stab".
    stab_rhythm : tuple[tuple[int, int], ...]
        ``((step, length_steps), ...)``.
    sections : list[Section]
        the form, covering every beat.
    tail_s : float
        release tail after the last bar (s).
    duck_depth : float
        0..1 sidechain dip of bass and chords under each kick.
    """

    tempo_bpm: float
    swing: float
    swing_grid: int
    offset_s: float
    riser: bool
    root: int
    mode: str
    progressions: dict[str, tuple[int, ...]]
    seventh_chords: bool
    drum_family: str
    drum_variant: int
    use_clap: bool
    bass_pattern: tuple[tuple[int, int, int], ...]
    chord_style: str
    stab_rhythm: tuple[tuple[int, int], ...]
    sections: list[Section] = field(default_factory=list)
    tail_s: float = 2.0
    duck_depth: float = 0.3


def _choose_family(rng: np.random.Generator, tempo_bpm: float) -> str:
    """Drum pattern family for a tempo (one draw from ``rng`` whatever the tempo).

    Fast tempos (155 BPM and up) get drum & bass breakbeats only, with the
    snare on 2 and 4 of the notated tempo: a half-time groove there (snare
    on 3, kick and snare a bar apart) is heard at half the notated tempo, so
    its notated beat would not be the beat a listener taps. Half-time stays
    at 135-155 BPM, where its hats keep the notated beat audible.
    """
    choices: tuple[str, ...]
    weights: tuple[float, ...]
    if tempo_bpm < 95.0:
        choices, weights = ("backbeat", "breakbeat", "four_on_the_floor"), (0.5, 0.35, 0.15)
    elif tempo_bpm < 135.0:
        choices, weights = ("four_on_the_floor", "backbeat", "breakbeat"), (0.4, 0.4, 0.2)
    elif tempo_bpm < 155.0:
        choices, weights = ("four_on_the_floor", "breakbeat", "backbeat", "half_time"), (0.3, 0.3, 0.2, 0.2)
    else:
        choices, weights = ("breakbeat",), (1.0,)
    return str(rng.choice(choices, p=np.asarray(weights) / np.sum(weights)))


def _section_names(n_phrases: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """Song form as (name, n_phrases) blocks summing to ``n_phrases``."""
    if n_phrases == 1:
        return [("verse", 1)]
    if n_phrases == 2:
        return [("verse", 1), ("chorus", 1)]
    if n_phrases == 3:
        return [("intro", 1), ("verse", 1), ("chorus", 1)]
    intro = 2 if n_phrases >= 12 and rng.random() < 0.4 else 1
    outro = 2 if n_phrases >= 14 and rng.random() < 0.3 else 1
    middle = n_phrases - intro - outro
    block = 2 if middle >= 6 else 1
    order = ["verse", "chorus", "verse", "chorus", "bridge", "chorus"]
    blocks: list[tuple[str, int]] = []
    i = 0
    while middle > 0:
        name = order[i] if i < len(order) else ("verse", "chorus")[(i - len(order)) % 2]
        size = min(1 if name == "bridge" and rng.random() < 0.5 else block, middle)
        blocks.append((name, size))
        middle -= size
        i += 1
    if len(blocks) >= 2 and blocks[-1][0] == "verse" and blocks[-2][0] == "chorus":
        blocks[-1] = ("chorus", blocks[-1][1])
    merged: list[tuple[str, int]] = []
    for name, size in blocks:
        if merged and merged[-1][0] == name:
            merged[-1] = (name, merged[-1][1] + size)
        else:
            merged.append((name, size))
    return [("intro", intro)] + merged + [("outro", outro)]


def _make_sections(n_phrases: int, rng: np.random.Generator) -> list[Section]:
    """Sections with energy and instrumentation per section."""
    energy_range = {
        "intro": (0.2, 0.35),
        "verse": (0.45, 0.6),
        "chorus": (0.85, 1.0),
        "bridge": (0.35, 0.55),
        "outro": (0.2, 0.35),
    }
    sections = []
    beat = 0
    for k, (name, phrases) in enumerate(_section_names(n_phrases, rng)):
        energy = float(round(rng.uniform(*energy_range[name]), 3))
        if name == "intro":
            inst = ["kick", "hats", "chords"] + (["bass"] if rng.random() < 0.3 else [])
        elif name == "verse":
            inst = ["kick", "snare", "hats", "bass", "chords"] + (["lead"] if rng.random() < 0.35 else [])
        elif name == "chorus":
            inst = ["kick", "snare", "hats", "open_hat", "bass", "chords", "lead"]
        elif name == "bridge":
            inst = (
                ["kick", "hats", "bass", "chords"]
                + (["snare"] if rng.random() < 0.6 else [])
                + (["lead"] if rng.random() < 0.5 else [])
            )
        else:  # outro
            inst = ["kick", "hats", "chords"] + (["bass"] if rng.random() < 0.5 else [])
        if k > 0 and energy >= 0.4:
            inst.append("crash")
        sections.append(
            Section(
                name=name,
                start_beat=beat,
                n_beats=phrases * BEATS_PER_PHRASE,
                energy=energy,
                instruments=tuple(i for i in INSTRUMENTS if i in inst),
            )
        )
        beat += phrases * BEATS_PER_PHRASE
    return sections


def make_plan(rng: np.random.Generator, duration_s: float | None, tempo_bpm: float | None) -> SongPlan:
    """Draw every song-level choice from ``rng`` (always in the same order, whatever the arguments)."""
    drawn_tempo = float(np.round(rng.uniform(*TEMPO_RANGE_BPM), 2))
    drawn_duration = float(rng.uniform(*DURATION_RANGE_S))
    tempo = float(tempo_bpm) if tempo_bpm is not None else drawn_tempo
    duration = float(duration_s) if duration_s is not None else drawn_duration
    # Draw every value unconditionally so a forced tempo or duration leaves the other choices alone.
    swings, offsets, coins = rng.uniform(0.08, 0.3), rng.uniform(0.05, 2.0), rng.random(4)
    offset_s = 0.0 if coins[2] < 0.4 else float(np.round(offsets, 4))
    riser = bool(offset_s > 0.6 and coins[3] < 0.6)
    root = int(rng.integers(12))
    mode = str(rng.choice(tuple(MODES)))
    family_modes = "major" if mode in ("major", "mixolydian") else "minor"
    progs = PROGRESSIONS[family_modes]
    order = rng.permutation(len(progs))
    verse = progs[order[0]]
    chorus = verse if rng.random() < 0.5 else progs[order[1]]
    bridge = progs[order[2]]
    progressions = {"intro": verse, "verse": verse, "chorus": chorus, "bridge": bridge, "outro": chorus}
    family = _choose_family(rng, tempo)
    # Swing as players and drum machines use it: 8th-note shuffle for backbeat
    # grooves at moderate tempos, MPC-style 16th swing for electronic
    # families; the swing ratio shrinks as the tempo rises.
    swing_grid = 8 if family == "backbeat" and (tempo < 130.0 or coins[1] < 0.3) else 16
    max_swing = 0.3 - 0.2 * float(np.clip((tempo - 110.0) / 70.0, 0.0, 1.0))
    swing = float(np.round(swings * max_swing / 0.3, 3)) if coins[0] < 0.35 else 0.0
    variant, bass_pick, stab_pick = (int(v) for v in rng.integers(0, 1 << 30, size=3))
    more_coins = rng.random(3)
    pattern = DRUM_PATTERNS[family][variant % len(DRUM_PATTERNS[family])]
    beat_s = 60.0 / tempo
    n_phrases = max(1, int(round(duration / (BEATS_PER_PHRASE * beat_s))))
    return SongPlan(
        tempo_bpm=tempo,
        swing=swing,
        swing_grid=swing_grid,
        offset_s=offset_s,
        riser=riser,
        root=root,
        mode=mode,
        progressions=progressions,
        seventh_chords=bool(more_coins[0] < 0.4),
        drum_family=family,
        drum_variant=variant % len(DRUM_PATTERNS[family]),
        use_clap=bool(family == "four_on_the_floor" and more_coins[1] < 0.6),
        bass_pattern=_bass_patterns_for(family, pattern)[bass_pick % len(_bass_patterns_for(family, pattern))],
        chord_style="pad" if more_coins[2] < 0.5 else "stab",
        stab_rhythm=_stab_rhythms_for(family)[stab_pick % len(_stab_rhythms_for(family))],
        sections=_make_sections(n_phrases, rng),
        tail_s=float(rng.uniform(1.5, 3.0)),
        # Sidechain ducking of bass and chords under the kick: deep "pumping" for four-on-the-floor.
        # (an electronic-dance hallmark; other grooves only breathe a little).
        duck_depth=float(0.4 + 0.35 * more_coins[2]) if family == "four_on_the_floor" else float(0.1 * more_coins[1]),
    )


def _bass_patterns_for(family: str, drums: _Pattern) -> list[tuple[tuple[int, int, int], ...]]:
    """Bass rhythms that suit a drum family.

    Off-beat ("pumping") bass belongs to four-on-the-floor, where the kick
    holds the beat; breakbeats (drum & bass at fast tempos) get long notes
    that change on the downbeat or on beat 3; half-time grooves get a bass
    locked to the kick (an 808 line) or notes on the beats.
    """
    if family == "four_on_the_floor":
        return list(_BASS_PATTERNS)
    if family == "backbeat":
        return [p for k, p in enumerate(_BASS_PATTERNS) if k != 3]
    if family == "breakbeat":
        return [BASS_SPARSE, ((0, 12, 0), (12, 4, 7)), _BASS_PATTERNS[4]]
    kicks = sorted(step for step, _ in drums["kick"])
    locked = tuple(
        (step, min((kicks[i + 1] if i + 1 < len(kicks) else STEPS_PER_BAR) - step, 8), 0)
        for i, step in enumerate(kicks)
    )
    return [locked, _BASS_PATTERNS[4]]


def _stab_rhythms_for(family: str) -> list[tuple[tuple[int, int], ...]]:
    """Chord-stab rhythms that suit a drum family (off-beat house stabs only over four-on-the-floor)."""
    if family == "four_on_the_floor":
        return list(_STAB_RHYTHMS)
    return [r for k, r in enumerate(_STAB_RHYTHMS) if k != 2]


def section_of_bar(sections: Sequence[Section]) -> list[Section]:
    """``[section for each bar]``."""
    out = []
    for s in sections:
        out.extend([s] * (s.n_beats // BEATS_PER_BAR))
    return out


def chord_pcs(plan: SongPlan, degree: int) -> list[int]:
    """Pitch classes (0..11, relative to C) of the chord on scale ``degree`` (root first)."""
    scale = MODES[plan.mode]
    n_tones = 4 if plan.seventh_chords else 3
    return [(plan.root + scale[(degree + 2 * k) % 7]) % 12 for k in range(n_tones)]


def place_pitch(pc: int, low: int) -> int:
    """MIDI note of pitch class ``pc`` in the octave ``[low, low + 12)``."""
    return low + (pc - low) % 12
