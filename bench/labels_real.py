"""Benchmark label inference on real songs edited by a foreign editor and by the project's styles.

    .venv/bin/python bench/labels_real.py [--n 10] [--split test] [--seed 23] [--min-s 30] [--max-s 60]
                                          [--no-render] [--dir DIR] [--per-pair] [--uncalibrated]
                                          [--labels-out JSON] [--false-labels]

Takes ``--n`` tracks of one half of the real corpus (``bench/corpus.py``,
``make corpus``; the figures are the test half, tuning looks at dev), cuts
an excerpt of ``[min-s, max-s]`` seconds from each (from 10 s in, where the
track is long enough) and makes two pairs of it:

(a) foreign: edited by ``bench/foreign_editor.py`` (librosa beats, 2-50 ms
    crossfades, pedalboard effects between the project's amount steps,
    chorus and phaser outside the vocabulary, peak normalisation, some mp3);
(b) own: edited by the project's styles (round robin) through
    ``editorbot data pair``, the way a user makes pairs of their songs.

Label inference (``training.labels.infer.infer_pair``) reads each pair from
the audio alone; the truth is read afterwards, to score at event level on
the raw song's timeline:

- a label is a run of analysis beats of one non-KEEP type (a new action of
  the walk starts a new label); its span runs from its first beat to the
  beat after its last; the events of a pair flagged unalignable count as
  not found; a track the foreign editor cannot edit (too few beats) is
  skipped for both;
- an event is found when labels of its type cover >= 50% of its span; a
  label is right when >= 50% of it lies inside events of its type;
  per-type recall, precision and F1 over the vocabulary's types (and their
  macro means);
- out-of-vocabulary events (``OOV:*``): which labels cover them;
- label precision by the labels' inferred confidence (mean over their
  beats, in fifths);
- false effect labels (the amount types from GAIN on) per 10 minutes of
  unedited audio (raw time outside every event); ``--false-labels`` lists
  every wrong label, these marked (beats, confidence, the labels beside
  it, the nearest event);
- boundary error of found events in beats (start and end of the union of
  overlapping labels of the type, against the event, on the analysis grid);
- amount error in steps where the type has amounts (the truth value's
  nearest step against the labels' most common amount);
- render ratio d(render of the inferred plan, edit) / d(raw, edit)
  (``training.labels.render_check``; ``--no-render`` skips it);
- speed (seconds of raw audio per second of inference, wall clock) and the
  process's peak resident memory (``resource.getrusage``, the whole run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.corpus import load_tracks
from editorbot.engine import actions as vocab

log = logging.getLogger("bench.labels_real")

# Types whose label is an effect on forward-played audio (the amount types from GAIN on).
EFFECT_TYPES = frozenset(vocab.TYPES[vocab.type_index("GAIN"):])
EXCERPT_OFFSET_S = 10.0


@dataclass
class Span:
    """A typed span of the raw song (an event of the truth or an inferred label).

    Attributes
    ----------
    type : str
        vocabulary name or ``OOV:<name>``.
    start_s, end_s : float
        raw timeline, seconds.
    amount : float
        physical value (events) or amount index (labels).
    confidence : float
        mean inferred confidence of a label's beats (1 for events).
    """

    type: str
    start_s: float
    end_s: float
    amount: float = 0.0
    confidence: float = 1.0


@dataclass
class Tally:
    """Event-level counts of one set of pairs (foreign or own)."""

    found: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    right: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    oov: dict = field(default_factory=lambda: defaultdict(Counter))
    false_effects: int = 0
    unedited_s: float = 0.0
    boundary_beats: list = field(default_factory=list)
    amount_steps: list = field(default_factory=list)
    d_plan: list = field(default_factory=list)
    d_raw: list = field(default_factory=list)
    rtf: list = field(default_factory=list)
    raw_s: float = 0.0
    infer_s: float = 0.0
    stages: Counter = field(default_factory=Counter)
    label_conf: list = field(default_factory=list)
    label_rows: list = field(default_factory=list)
    false_rows: list = field(default_factory=list)
    pairs: int = 0
    unalignable: int = 0


def _overlap(a0: float, a1: float, spans: list[Span]) -> float:
    """Seconds of ``[a0, a1)`` covered by the union of ``spans``."""
    cuts = sorted((max(a0, s.start_s), min(a1, s.end_s)) for s in spans if s.end_s > a0 and s.start_s < a1)
    total, cur = 0.0, a0
    for lo, hi in cuts:
        lo = max(lo, cur)
        if hi > lo:
            total += hi - lo
            cur = hi
    return total


def label_spans(result) -> list[Span]:
    """The inferred labels of a ``PairLabels`` as raw-timeline spans (runs of one non-KEEP type)."""
    bt = np.asarray(result.beat_times, dtype=np.float64)
    types, amounts = result.labels[:, 0], result.labels[:, 2]
    ends = np.append(bt[1:], max(result.duration_s, bt[-1] + (bt[-1] - bt[-2] if bt.size > 1 else 0.5)))
    keep = vocab.type_index("KEEP")
    spans: list[Span] = []
    i = 0
    while i < bt.size:
        if types[i] == keep:
            i += 1
            continue
        j = i + 1
        while j < bt.size and types[j] == types[i] and not result.action_start[j]:
            j += 1
        amount = float(Counter(amounts[i:j].tolist()).most_common(1)[0][0])
        conf = float(np.mean(result.confidence[i:j])) if len(result.confidence) >= j else 1.0
        spans.append(Span(vocab.TYPES[types[i]], float(bt[i]), float(ends[j - 1]), amount, conf))
        i = j
    return spans


def _amount_step(type_name: str, value: float) -> int:
    """The amount index whose table value is nearest ``value`` (ratios compared in log for rates/Hz)."""
    table = np.asarray(vocab.AMOUNT_TABLE[type_name], dtype=np.float64)
    ok = ~np.isnan(table)
    if type_name in ("LOWPASS", "HIGHPASS", "SPEED", "COMPRESS"):
        dist = np.abs(np.log(np.where(ok, table, 1.0)) - np.log(max(value, 1e-9)))
    else:
        dist = np.abs(np.where(ok, table, 0.0) - value)
    return int(np.argmin(np.where(ok, dist, np.inf)))


def _false_row(name: str, lab: Span, labels: list[Span], events: list[Span], bt: np.ndarray) -> str:
    """One line about a wrong label: where it is, how sure, its neighbours and the nearest event.

    The events it overlaps, with the share of the label inside each, or
    the nearest event's distance in beats of the raw song's analysis grid
    (``bt``, seconds; negative: before the label).
    """
    idx = np.arange(bt.size, dtype=np.float64)

    def beat(t: float) -> float:
        return float(np.interp(t, bt, idx)) if bt.size > 1 else 0.0

    b0, b1 = beat(lab.start_s), beat(lab.end_s)
    k = next(i for i, x in enumerate(labels) if x is lab)
    before = labels[k - 1].type if k > 0 and abs(beat(labels[k - 1].end_s) - b0) < 0.5 else "-"
    after = labels[k + 1].type if k + 1 < len(labels) and abs(beat(labels[k + 1].start_s) - b1) < 0.5 else "-"
    span = max(lab.end_s - lab.start_s, 1e-9)
    inside = [(ev.type, _overlap(lab.start_s, lab.end_s, [ev]) / span) for ev in events]
    near = ", ".join(f"{t} {share:.2f}" for t, share in inside if share > 0)
    if near:
        near = "inside " + near
    elif events:
        def gap(ev: Span) -> float:
            e0, e1 = beat(ev.start_s), beat(ev.end_s)
            return e0 - b1 if e0 >= b1 else e1 - b0

        ev = min(events, key=lambda e: abs(gap(e)))
        near = f"nearest event {ev.type} {gap(ev):+.1f}"
    else:
        near = "no events"
    last = " (song's last beat)" if b1 >= bt.size - 0.5 else ""
    return (f"{name:<40} {lab.type:<10} amount {int(lab.amount)} beats {b0:.0f}-{b1:.0f} ({lab.start_s:.2f}-{lab.end_s:.2f} s) "
            f"conf {lab.confidence:.2f} | before {before}, after {after} | {near}{last}")


def score_pair(
    tally: Tally, events: list[Span], labels: list[Span], beat_times: np.ndarray, duration_s: float, name: str = ""
) -> None:
    """Add one pair's event-level counts to ``tally`` (see the module docstring)."""
    bt = np.asarray(beat_times, dtype=np.float64)
    idx = np.arange(bt.size, dtype=np.float64)
    by_type: dict[str, list[Span]] = defaultdict(list)
    for lab in labels:
        by_type[lab.type].append(lab)
    for ev in events:
        span = max(ev.end_s - ev.start_s, 1e-9)
        if ev.type.startswith("OOV:"):
            covering = [t for t, labs in by_type.items() if _overlap(ev.start_s, ev.end_s, labs) >= 0.5 * span]
            for t in covering or ["KEEP"]:
                tally.oov[ev.type][t] += 1
            continue
        tally.events[ev.type] += 1
        mine = by_type.get(ev.type, [])
        if _overlap(ev.start_s, ev.end_s, mine) < 0.5 * span:
            continue
        tally.found[ev.type] += 1
        near = [lab for lab in mine if lab.end_s > ev.start_s and lab.start_s < ev.end_s]
        if bt.size > 1:
            for true_s, got_s in ((ev.start_s, min(lab.start_s for lab in near)),
                                  (ev.end_s, max(lab.end_s for lab in near))):
                tally.boundary_beats.append(abs(float(np.interp(got_s, bt, idx)) - float(np.interp(true_s, bt, idx))))
        if ev.type not in vocab.NEUTRAL_ONLY:
            got = Counter(int(lab.amount) for lab in near).most_common(1)[0][0]
            tally.amount_steps.append(abs(got - _amount_step(ev.type, ev.amount)))
    truth_by_type: dict[str, list[Span]] = defaultdict(list)
    for ev in events:
        truth_by_type[ev.type].append(ev)
    for lab in labels:
        tally.labels[lab.type] += 1
        span = max(lab.end_s - lab.start_s, 1e-9)
        right = _overlap(lab.start_s, lab.end_s, truth_by_type.get(lab.type, [])) >= 0.5 * span
        tally.right[lab.type] += int(right)
        tally.label_conf.append((lab.confidence, right))
        tally.label_rows.append({"type": lab.type, "confidence": round(lab.confidence, 4), "right": bool(right)})
        unedited = _overlap(lab.start_s, lab.end_s, events) < 0.5 * span
        if lab.type in EFFECT_TYPES and unedited:
            tally.false_effects += 1
        if not right:
            tally.false_rows.append(("false effect " if lab.type in EFFECT_TYPES and unedited else "wrong        ")
                                    + _false_row(name, lab, labels, events, bt))
    tally.unedited_s += max(0.0, duration_s - _overlap(0.0, duration_s, events))


def report(title: str, t: Tally) -> list[str]:
    """The printed table and summary lines of one tally."""
    lines = [f"{title}: {t.pairs} pairs, {t.raw_s / 60:.1f} min of raw audio, {t.unalignable} unalignable",
             f"  {'type':<11} {'events':>6} {'found':>5} {'recall':>6} {'labels':>6} {'right':>5} {'prec':>6} {'F1':>6}"]
    f1s, recs, precs = [], [], []
    for name in vocab.TYPES[1:]:
        ne, nl = t.events[name], t.labels[name]
        if not ne and not nl:
            continue
        rec = t.found[name] / ne if ne else float("nan")
        prec = t.right[name] / nl if nl else float("nan")
        f1 = 2 * rec * prec / (rec + prec) if ne and nl and rec + prec > 0 else 0.0
        if ne:
            recs.append(rec)
            f1s.append(f1)
        if nl:
            precs.append(prec)
        lines.append(f"  {name:<11} {ne:>6} {t.found[name]:>5} {rec:>6.2f} {nl:>6} {t.right[name]:>5} {prec:>6.2f} {f1:>6.2f}")
    n_ev, n_lab = sum(t.events.values()), sum(t.labels.values())
    lines.append(f"  {'all':<11} {n_ev:>6} {sum(t.found.values()):>5} {sum(t.found.values()) / max(n_ev, 1):>6.2f} "
                 f"{n_lab:>6} {sum(t.right.values()):>5} {sum(t.right.values()) / max(n_lab, 1):>6.2f}")
    lines.append(f"  macro over the types with events: recall {np.mean(recs) if recs else float('nan'):.3f}, "
                 f"F1 {np.mean(f1s) if f1s else float('nan'):.3f}; macro precision over labelled types "
                 f"{np.mean(precs) if precs else float('nan'):.3f}")
    for oov, got in sorted(t.oov.items()):
        lines.append(f"  {oov}: {sum(got.values())} covered by " + ", ".join(f"{k} {v}" for k, v in got.most_common()))
    if t.label_conf:
        conf = np.asarray([c for c, _ in t.label_conf])
        right = np.asarray([r for _, r in t.label_conf], dtype=bool)
        bins = [(lo, lo + 0.2) for lo in (0.0, 0.2, 0.4, 0.6, 0.8)]
        cells = []
        for lo, hi in bins:
            sel = (conf >= lo) & ((conf < hi) | (hi >= 1.0))
            if sel.any():
                cells.append(f"{lo:.1f}-{hi:.1f} {right[sel].mean():.2f} of {int(sel.sum())}")
        lines.append("  label precision by confidence: " + ", ".join(cells))
    per10 = t.false_effects / max(t.unedited_s / 600, 1e-9)
    lines.append(f"  false effect labels: {t.false_effects} in {t.unedited_s / 60:.1f} min unedited = {per10:.1f} per 10 min")
    if t.boundary_beats:
        b = np.asarray(t.boundary_beats)
        lines.append(f"  boundary error (found events, start and end): median {np.median(b):.2f} beats, "
                     f"within 1 beat {np.mean(b <= 1.0):.2f} of {b.size}")
    if t.amount_steps:
        a = np.asarray(t.amount_steps)
        lines.append(f"  amount error (found amount events): exact {np.mean(a == 0):.2f}, mean {a.mean():.2f} steps, n {a.size}")
    if t.d_plan:
        r = np.asarray(t.d_plan) / np.maximum(np.asarray(t.d_raw), 1e-9)
        lines.append(f"  render ratio: corpus {sum(t.d_plan) / max(sum(t.d_raw), 1e-9):.3f}, median {np.median(r):.3f}, "
                     f"max {r.max():.3f} ({r.size} pairs)")
    if t.rtf:
        lines.append(f"  speed: {t.raw_s / max(t.infer_s, 1e-9):.1f}x real time overall, median {np.median(t.rtf):.1f}x, "
                     f"min {np.min(t.rtf):.1f}x (wall clock, load average {os.getloadavg()[0]:.1f}); seconds by stage: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in t.stages.items()))
    return lines


def _excerpt(track, folder: str, rng: np.random.Generator, min_s: float, max_s: float) -> str:
    """Write an excerpt of ``track`` as WAV in ``folder``; return its path."""
    import soundfile

    length = float(rng.uniform(min_s, max_s))
    offset = EXCERPT_OFFSET_S if track.duration_s >= EXCERPT_OFFSET_S + length else 0.0
    info = soundfile.info(str(track.path))
    y, sr = soundfile.read(str(track.path), start=int(offset * info.samplerate),
                           frames=int(min(length, track.duration_s - offset) * info.samplerate), always_2d=True)
    stem = track.track_id.replace("/", "_").rsplit(".", 1)[0]
    path = os.path.join(folder, f"{stem}.wav")
    soundfile.write(path, y, sr, subtype="PCM_24")
    return path


def _own_pair(song: str, style: str, seed: int, folder: str) -> tuple[str, str, list[Span]] | None:
    """``(raw, edit, events)`` of the pair ``editorbot data pair`` makes of ``song``, or None where it fails."""
    cmd = [sys.executable, "-m", "editorbot.bridge.cli", "data", "pair", song, "--style", style,
           "--out", folder, "--seed", str(seed), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    stem = os.path.splitext(os.path.basename(song))[0]
    name = f"{stem}_{style}_s{seed}"
    raw = os.path.join(folder, "input", f"{name}_raw.wav")
    edit = os.path.join(folder, "desired_output", f"{name}_edit.wav")
    label = os.path.join(folder, "labels", f"{name}.json")
    if proc.returncode != 0 or not os.path.isfile(label):
        log.warning("%s: editorbot data pair failed: %s", song, (proc.stderr or proc.stdout).strip()[-300:])
        return None
    with open(label, encoding="utf-8") as f:
        doc = json.load(f)
    plan = doc.get("plan", doc)
    events = [Span(a["type"], float(a["start_s"]), float(a["end_s"]), float(a.get("value", 0.0) or 0.0))
              for a in plan["actions"] if a["type"] != "KEEP"]
    # the label file's amounts are names; the value is looked up for the amount error
    for ev, a in zip(events, [a for a in plan["actions"] if a["type"] != "KEEP"]):
        if ev.type not in vocab.NEUTRAL_ONLY:
            ev.amount = float(vocab.AMOUNT_TABLE[ev.type][vocab.amount_index(a["amount"])])
    return raw, edit, events


def _run_pair(
    tally: Tally, raw: str, edit: str, events: list[Span], name: str, render: bool, rows: list[str], calibrated: bool = True
) -> None:
    """Infer one pair's labels, score them and time them."""
    import soundfile

    from editorbot.training.labels.infer import infer_pair
    from editorbot.training.labels.render_check import render_check

    duration = float(soundfile.info(raw).duration)
    t = time.perf_counter()
    res = infer_pair(raw, edit, name=name, cache=False, calibrated=calibrated)
    dt = time.perf_counter() - t
    tally.pairs += 1
    tally.raw_s += duration
    tally.infer_s += dt
    tally.rtf.append(duration / dt)
    tally.stages.update(res.seconds)
    if not res.alignable:
        tally.unalignable += 1
        for ev in events:
            if not ev.type.startswith("OOV:"):
                tally.events[ev.type] += 1
        rows.append(f"  {name:<44} unalignable: {res.reason}")
        return
    labels = label_spans(res)
    score_pair(tally, events, labels, res.beat_times, duration, name)
    if render:
        d_plan, d_raw = render_check(res)
        tally.d_plan.append(d_plan)
        tally.d_raw.append(d_raw)
    rows.append(f"  {name:<44} true: {' '.join(e.type for e in events) or '-'} | "
                f"inferred: {' '.join(lab.type for lab in labels) or '-'}")


def _foreign_pair(
    tally: Tally, track_id: str, song: str, seed: int, folder: str, args: argparse.Namespace, rows: list[str], *, warm: bool
) -> bool:
    """Edit ``song`` with the foreign editor at ``seed`` (once per work folder) and score that pair; False where it cannot be edited."""
    from bench.foreign_editor import edit_file
    from editorbot.training.labels.infer import infer_pair

    stem = os.path.splitext(os.path.basename(song))[0]
    edit = os.path.join(folder, f"{stem}_foreign_s{seed}.wav")
    truth = os.path.join(folder, f"{stem}_foreign_s{seed}.json")
    if not os.path.exists(edit):
        try:
            edit_file(song, edit, truth, seed)
        except ValueError as err:
            # a run never stops on one track (too few beats for the foreign editor, ...)
            print(f"{track_id}: skipped: {err}", file=sys.stderr)
            return False
    with open(truth, encoding="utf-8") as f:
        evs = [Span(e["type"], e["src_start_s"], e["src_end_s"], e["amount"]) for e in json.load(f)["events"]]
    if warm:
        # the compiled alignment code's one-off compile time is not counted
        infer_pair(song, edit, cache=False)
    _run_pair(tally, song, edit, evs, f"{stem}_foreign", not args.no_render, rows, not args.uncalibrated)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10, help="tracks (each gives one foreign and one own pair)")
    p.add_argument("--split", choices=("dev", "test"), default="test")
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--min-s", type=float, default=30.0)
    p.add_argument("--max-s", type=float, default=60.0)
    p.add_argument("--no-render", action="store_true", help="skip the render ratio")
    p.add_argument("--corpus", default=None, help="corpus folder (default: bench/corpus.py's)")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--per-pair", action="store_true", help="list each pair's true and inferred types")
    p.add_argument("--false-labels", action="store_true",
                   help="list each wrong label (where, how sure, its neighbours, the nearest event)")
    p.add_argument("--uncalibrated", action="store_true", help="the labels' raw confidence (to fit the calibration)")
    p.add_argument("--labels-out", default=None, help="write every scored label (editor, type, confidence, right) as JSON")
    p.add_argument("--tracks", default=None,
                   help="comma-separated parts of track ids: only the half's tracks that contain one (then --n of them)")
    p.add_argument("--style", default=None, help="every own pair in this style (default: the styles in turn)")
    p.add_argument("--no-foreign", action="store_true", help="own pairs only")
    args = p.parse_args(argv)
    if args.labels_out and os.path.exists(args.labels_out):
        print(f"{args.labels_out}: exists already; not overwriting", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from editorbot.training.data.editors import STYLES

    try:
        tracks = load_tracks(args.corpus, split=args.split)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if args.tracks:
        parts = [t for t in args.tracks.split(",") if t]
        tracks = [t for t in tracks if any(part in t.track_id for part in parts)]
    if args.style is not None and args.style not in STYLES:
        print(f"--style {args.style}: no such style ({', '.join(STYLES)})", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    picked = [tracks[i] for i in sorted(rng.choice(len(tracks), size=min(args.n, len(tracks)), replace=False))]
    tmp = tempfile.TemporaryDirectory(prefix="bench_labels_real_") if args.dir is None else None
    folder = tmp.name if tmp is not None else args.dir
    os.makedirs(folder, exist_ok=True)
    os.environ.setdefault("EDITORBOT_CACHE", os.path.join(folder, "cache"))
    styles = [args.style] if args.style is not None else list(STYLES)
    foreign, own = Tally(), Tally()
    rows_a: list[str] = []
    rows_b: list[str] = []
    skipped: list[str] = []
    warmed = False
    t0 = time.perf_counter()
    for k, track in enumerate(picked):
        song = _excerpt(track, folder, rng, args.min_s, args.max_s)
        stem = os.path.splitext(os.path.basename(song))[0]
        if not args.no_foreign and not _foreign_pair(foreign, track.track_id, song, args.seed + k, folder, args, rows_a,
                                                     warm=not warmed):
            skipped.append(track.track_id)
            continue
        warmed = True
        made = _own_pair(song, styles[k % len(styles)], args.seed + k, os.path.join(folder, "own"))
        if made is not None:
            raw, own_edit, own_events = made
            _run_pair(own, raw, own_edit, own_events, f"{stem}_{styles[k % len(styles)]}", not args.no_render, rows_b,
                      not args.uncalibrated)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"real corpus, {args.split} half: {len(picked)} tracks, {args.min_s:g}-{args.max_s:g} s excerpts, "
          f"seed {args.seed}, {len(skipped)} skipped ({time.perf_counter() - t0:.0f} s in all)")
    for title, tally, rows in (("(a) foreign editor", foreign, rows_a),
                               ("(b) own styles via `editorbot data pair`", own, rows_b)):
        print()
        for line in report(title, tally):
            print(line)
        if args.per_pair:
            for row in rows:
                print(row)
        if args.false_labels and tally.false_rows:
            print("  wrong labels (false effect: an effect label on unedited audio):")
            for row in tally.false_rows:
                print("  " + row)
    print(f"\npeak memory: {peak_mb:.0f} MB resident (whole process: pair making, inference, render check)")
    if args.labels_out:
        rows = [{"editor": "foreign", **r} for r in foreign.label_rows] + [{"editor": "own", **r} for r in own.label_rows]
        text = json.dumps({"split": args.split, "seed": args.seed, "labels": rows}, indent=0)
        fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.labels_out)), suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp_path, args.labels_out)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
