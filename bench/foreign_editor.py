"""A foreign editor for benchmarks: edits a song the way another person's tools would.

    .venv/bin/python bench/foreign_editor.py SONG.wav OUT_EDIT.wav OUT_EVENTS.json [--seed S] [--no-mp3]

Label inference learns from a person's (raw, edited) pairs, and a person's
edits are not made by ``engine.render``. This editor shares no code with
``engine.render`` or ``training/data/editors``: it uses only numpy,
soundfile, librosa and pedalboard, so a benchmark of label inference on its
pairs measures how well inference reads work it has never seen.

What differs from the project's own renderer, on purpose:

- beats from librosa's beat tracker (not the project's grid);
- edit lengths of 1, 2, 3, 4, 6 and 8 beats (3 and 6 are off the size grid);
- its own splicer: every join is an overlap of 2-50 ms, linear or
  equal-power (drawn per join);
- effects from pedalboard at settings between the project's amount steps
  (gain -4.5 dB, low-pass 1.1 kHz, high-pass 600 Hz, reverb wet 0.28,
  delay feedback 0.38, drive 15 dB, compressor ratio 4.5), pitch +1
  semitone, time-stretch by ``pedalboard.time_stretch`` and by resampling;
- two effects outside the vocabulary (chorus, phaser), typed ``OOV:Chorus``
  and ``OOV:Phaser``;
- a final peak normalisation to -1 dBFS and, for some seeds, an mp3 round
  trip (pedalboard's mp3 writer; skipped with a log line where it is missing).

The truth is a JSON document: ``{"events": [...], "sample_rate", "seed",
"mp3": bool, "beats_s": [...]}``, each event ``{"type", "src_start_s",
"src_end_s", "amount", "crossfade_ms"}`` where ``type`` is the project's
vocabulary name (``engine.actions.TYPES``) or ``OOV:<name>`` and the span
is in seconds of the raw song. Everything is drawn from ``--seed``: the same
song and seed give the same edit and the same events.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger("bench.foreign_editor")

# Edit lengths in beats: 3 and 6 are off the project's size grid (1, 4, 8, 16, 32).
LENGTHS_BEATS = (1, 2, 3, 4, 6, 8)
# Operations on a span and their draw weights (KEEP dominates, as in real edits).
OPS: dict[str, float] = {
    "KEEP": 12.0,
    "CUT": 1.0,
    "LOOP": 1.0,
    "REVERSE": 0.6,
    "GAIN": 0.6,
    "LOWPASS": 0.6,
    "HIGHPASS": 0.5,
    "PITCH": 0.5,
    "SPEED": 0.6,
    "REVERB": 0.5,
    "DELAY": 0.5,
    "DISTORTION": 0.4,
    "COMPRESS": 0.4,
    "OOV:Chorus": 0.4,
    "OOV:Phaser": 0.4,
}
PEAK_DBFS = -1.0
MP3_SHARE = 0.3


@dataclass
class Event:
    """One edit of the truth, on the raw song's timeline.

    Attributes
    ----------
    type : str
        vocabulary type name (``engine.actions.TYPES``) or ``OOV:<effect>``.
    src_start_s, src_end_s : float
        the raw span it acts on, seconds.
    amount : float
        its physical value in the vocabulary's unit (dB, Hz, semitones,
        rate, wet, feedback, ratio, extra repeats); 0 where none applies.
    crossfade_ms : float
        the overlap of the splice that enters the edited span, ms.
    detail : str
        how it was made (e.g. ``"time_stretch"`` or ``"resample"``).
    """

    type: str
    src_start_s: float
    src_end_s: float
    amount: float
    crossfade_ms: float
    detail: str = ""


def _xfade_curves(n: int, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """``(fade_out, fade_in)`` gains of an ``n``-sample overlap, linear or equal-power."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    if shape == "equal_power":
        return np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)
    return 1.0 - t, t


def splice(pieces: list[np.ndarray], xfade_samples: list[int], shapes: list[str]) -> np.ndarray:
    """Join ``pieces`` (each ``(channels, n)``) by overlapping neighbours.

    Parameters
    ----------
    pieces : list[np.ndarray]
        ``(channels, n_i)`` float arrays, in output order.
    xfade_samples : list[int]
        overlap of join ``k`` (between pieces ``k`` and ``k + 1``), samples;
        clipped to half the shorter neighbour.
    shapes : list[str]
        ``"linear"`` or ``"equal_power"`` per join.

    Returns
    -------
    np.ndarray
        ``(channels, sum(n_i) - sum(overlaps))`` float64.
    """
    if not pieces:
        return np.zeros((1, 0))
    out = np.asarray(pieces[0], dtype=np.float64)
    for k, nxt in enumerate(pieces[1:]):
        nxt = np.asarray(nxt, dtype=np.float64)
        n = int(min(xfade_samples[k], out.shape[1] // 2, nxt.shape[1] // 2))
        if n <= 0:
            out = np.concatenate([out, nxt], axis=1)
            continue
        fo, fi = _xfade_curves(n, shapes[k])
        mixed = out[:, -n:] * fo + nxt[:, :n] * fi
        out = np.concatenate([out[:, :-n], mixed, nxt[:, n:]], axis=1)
    return out


def _beats(y: np.ndarray, sr: int) -> np.ndarray:
    """Beat times (seconds) of ``(channels, n)`` audio by librosa's tracker."""
    import librosa

    mono = librosa.resample(y.mean(axis=0), orig_sr=sr, target_sr=22050)
    _, beats = librosa.beat.beat_track(y=mono, sr=22050, units="time")
    return np.asarray(beats, dtype=np.float64)


def _effect(op: str, seg: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, float, str]:
    """``(processed, amount, detail)`` of effect ``op`` on ``(channels, n)`` float32 audio."""
    import pedalboard as pb

    seg = np.ascontiguousarray(seg, dtype=np.float32)
    if op == "GAIN":
        db = float(rng.choice([-4.5, 4.5, -7.5]))
        return seg * np.float32(10 ** (db / 20)), db, ""
    if op == "SPEED":
        if rng.random() < 0.5:
            rate = float(rng.choice([1.15, 0.85]))
            out = pb.time_stretch(seg, sr, stretch_factor=rate)
            return np.asarray(out), rate, "time_stretch"
        import librosa

        # Resampling plays the span faster (shorter, higher) like a turntable.
        rate = float(rng.choice([1.06, 0.94]))
        out = librosa.resample(seg, orig_sr=sr * rate, target_sr=sr, axis=-1)
        return np.asarray(out, dtype=np.float32), rate, "resample"
    boards = {
        "LOWPASS": (lambda: pb.LowpassFilter(cutoff_frequency_hz=1100.0), 1100.0),
        "HIGHPASS": (lambda: pb.HighpassFilter(cutoff_frequency_hz=600.0), 600.0),
        "PITCH": (lambda: pb.PitchShift(semitones=1.0), 1.0),
        "REVERB": (lambda: pb.Reverb(room_size=0.6, wet_level=0.28, dry_level=0.72), 0.28),
        "DELAY": (lambda: pb.Delay(delay_seconds=0.27, feedback=0.38, mix=0.4), 0.38),
        "DISTORTION": (lambda: pb.Distortion(drive_db=15.0), 15.0),
        "COMPRESS": (lambda: pb.Compressor(threshold_db=-20.0, ratio=4.5, attack_ms=5.0, release_ms=120.0), 4.5),
        "OOV:Chorus": (lambda: pb.Chorus(rate_hz=1.3, depth=0.35, mix=0.6), 0.0),
        "OOV:Phaser": (lambda: pb.Phaser(rate_hz=0.8, depth=0.6, mix=0.6), 0.0),
    }
    make, amount = boards[op]
    out = pb.Pedalboard([make()])(seg, sr)
    return np.asarray(out, dtype=np.float32), amount, ""


def _mp3_round_trip(y: np.ndarray, sr: int) -> np.ndarray | None:
    """``y`` through a 160 kbit/s mp3 and back, or None where pedalboard cannot write mp3."""
    from pedalboard.io import AudioFile

    with tempfile.TemporaryDirectory(prefix="foreign_mp3_") as tmp:
        path = os.path.join(tmp, "edit.mp3")
        try:
            with AudioFile(path, "w", sr, y.shape[0], quality="160k") as f:
                f.write(y.astype(np.float32))
        except (ValueError, RuntimeError, OSError) as err:
            log.warning("mp3 round trip skipped: pedalboard cannot write mp3 here (%s)", err)
            return None
        with AudioFile(path) as f:
            back = f.read(f.frames)
            back_sr = f.samplerate
    if back_sr != sr:
        return None
    return np.asarray(back, dtype=np.float64)


def edit(
    y: np.ndarray, sr: int, seed: int, *, mp3: bool | None = None, beats_s: np.ndarray | None = None
) -> tuple[np.ndarray, list[Event], dict]:
    """Edit ``(channels, n)`` audio at ``sr`` Hz; return ``(edited, events, info)``.

    Parameters
    ----------
    y : np.ndarray
        ``(channels, n)`` float audio.
    sr : int
        sample rate, Hz.
    seed : int
        every draw comes from it.
    mp3 : bool | None
        force the mp3 round trip on or off (None: drawn, share ``MP3_SHARE``).
    beats_s : np.ndarray | None
        beat times, seconds (None: librosa's beat tracker).

    Returns
    -------
    tuple[np.ndarray, list[Event], dict]
        the ``(channels, m)`` float32 edit, its events (raw timeline, in
        source order) and ``{"beats_s", "mp3", "seed"}``.
    """
    rng = np.random.default_rng([0xF0E1, int(seed)])
    y = np.asarray(y, dtype=np.float64)
    beats = _beats(y, sr) if beats_s is None else np.asarray(beats_s, dtype=np.float64)
    n = y.shape[1]
    bs = np.clip(np.round(beats * sr).astype(np.int64), 0, n)
    bs = bs[(bs > 0) & (bs < n)]
    events: list[Event] = []
    pieces: list[np.ndarray] = []
    joins: list[int] = []
    shapes: list[str] = []

    def add(piece: np.ndarray, xf_ms: float) -> None:
        if pieces:
            joins.append(int(round(xf_ms * sr / 1000)))
            shapes.append(str(rng.choice(["linear", "equal_power"])))
        pieces.append(piece)

    def xfade() -> float:
        return float(np.round(rng.uniform(2.0, 50.0), 1))

    if bs.size < 8:
        raise ValueError(f"only {bs.size} beats found; need at least 8 to edit")
    ops, weights = list(OPS), np.array(list(OPS.values()))
    weights = weights / weights.sum()
    i = 0
    # lead-in before the first beat is kept as it is
    add(y[:, : bs[0]], 0.0)
    if rng.random() < 0.4:
        length = int(rng.choice([2, 4, 6]))
        # from the song's first sample (lead-in included) to a beat
        b = bs[min(length, bs.size - 1)]
        pieces[0] = y[:, :b] * np.linspace(0.0, 1.0, b) ** 2
        events.append(Event("FADE_IN", 0.0, b / sr, 0.0, 0.0))
        i = min(length, bs.size - 1)
    fade_out = rng.random() < 0.5
    fade_len = int(rng.choice([3, 4, 8])) if fade_out else 0
    last = bs.size - 1 - fade_len
    while i < last:
        length = int(min(rng.choice(LENGTHS_BEATS), last - i))
        a, b = bs[i], bs[i + length]
        op = str(rng.choice(ops, p=weights))
        xf = xfade()
        seg = y[:, a:b]
        if op == "KEEP":
            add(seg, xf)
        elif op == "CUT":
            events.append(Event("CUT", a / sr, b / sr, 0.0, xf))
        elif op == "LOOP":
            extra = int(rng.choice([1, 2, 3]))
            for _ in range(extra + 1):
                add(seg, xf)
            events.append(Event("LOOP", a / sr, b / sr, float(extra), xf))
        elif op == "REVERSE":
            add(seg[:, ::-1], xf)
            events.append(Event("REVERSE", a / sr, b / sr, 0.0, xf))
        else:
            out, amount, detail = _effect(op, seg, sr, rng)
            add(out.astype(np.float64), xf)
            events.append(Event(op, a / sr, b / sr, amount, xf, detail))
        i += length
    if fade_out:
        a, b = bs[last], bs[-1]
        xf = xfade()
        add(y[:, a:b] * np.linspace(1.0, 0.0, b - a) ** 2, xf)
        events.append(Event("FADE_OUT", a / sr, b / sr, 0.0, xf))
        if n - b > sr // 10:
            events.append(Event("CUT", b / sr, n / sr, 0.0, 0.0))
    else:
        add(y[:, bs[last]:], xfade())
    out = splice(pieces, joins, shapes)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0:
        out = out * (10 ** (PEAK_DBFS / 20) / peak)
    use_mp3 = bool(rng.random() < MP3_SHARE) if mp3 is None else mp3
    if use_mp3:
        back = _mp3_round_trip(out, sr)
        use_mp3 = back is not None
        if back is not None:
            out = back
    info = {"beats_s": [round(float(t), 4) for t in bs / sr], "mp3": use_mp3, "seed": int(seed)}
    return out.astype(np.float32), events, info


def events_to_json(events: list[Event], info: dict, sr: int) -> str:
    """The truth document (see the module docstring) as JSON text."""
    doc = {"sample_rate": int(sr), **info, "events": [asdict(e) for e in events]}
    return json.dumps(doc, indent=1)


def events_from_json(text: str) -> list[Event]:
    """The events of a truth document written by ``events_to_json``."""
    return [Event(**e) for e in json.loads(text)["events"]]


def _write_atomic(path: str, write) -> None:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` (a reader never sees half a file)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def edit_file(src: str, edit_path: str, events_path: str, seed: int, *, mp3: bool | None = None) -> list[Event]:
    """Edit the song ``src`` and write the edit (24-bit WAV) and its truth (JSON); return the events.

    Raises
    ------
    FileExistsError
        an output exists already (outputs are never overwritten).
    """
    import soundfile

    for out in (edit_path, events_path):
        if os.path.exists(out):
            raise FileExistsError(f"{out}: exists already; not overwriting")
    y, sr = soundfile.read(src, dtype="float64", always_2d=True)
    edited, events, info = edit(y.T, int(sr), seed, mp3=mp3)
    _write_atomic(edit_path, lambda p: soundfile.write(p, edited.T, sr, subtype="PCM_24", format="WAV"))
    text = events_to_json(events, info, int(sr))

    def write_text(p: str) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)

    _write_atomic(events_path, write_text)
    return events


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("song")
    p.add_argument("edit")
    p.add_argument("events")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-mp3", action="store_true", help="never do the mp3 round trip")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        events = edit_file(args.song, args.edit, args.events, args.seed, mp3=False if args.no_mp3 else None)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"{args.song}: {err}", file=sys.stderr)
        return 2
    print(f"{args.edit}: {len(events)} events: {', '.join(e.type for e in events)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
