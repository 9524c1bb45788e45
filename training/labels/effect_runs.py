"""Step 5, second half: the labels of a run of consecutive forward beats, chosen together.

``effects.beat_effect`` judges each forward beat alone; an edit applies an
effect over whole actions. Neighbouring forward beats therefore take their
labels together (``smooth_effects``: each beat's candidate distances plus a
cost per label change). A run labelled a fade must be one ramp from or to
silence (``false_fades``): a compressor riding each beat's level also fits
a short ramp per beat, but restarts it every beat and may lift the level;
such a run is labelled again without its fade candidates. A run read as
GAIN whose gain moves from beat to beat with the level is a compressor
(``compressed_gains``). A one-beat gain cut right before a delay is the
delay's first beat, its dry sound lowered by the mix (``delay_onsets``).
``label_run`` does all four.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.training.labels.align import AMOUNT_SLOTS
from editorbot.training.labels.effects import COMPRESS_MAX_LIFT_DB, COMPRESS_MIN_SLOPE, BeatEffect

EFFECT_SWITCH_DB = 0.3  # cost of a label change between neighbouring forward beats (effect smoothing)
# A fade is one straight gain ramp from or to silence, never above unity; a compressor riding
# each beat's level fits a short ramp too, but restarts it every beat (a sawtooth) and may lift.
FADE_MAX_GAIN = 1.08  # edit/raw gain a fade's ramp may reach (fit noise)
FADE_STEP_BACK = 0.15  # how far a fade's gain may step back from one beat's end to the next's start
FADE_EDGE_GAIN = 0.08  # a one-beat fade starts (in) or ends (out) within this of silence
FADE_RUN_EDGE_GAIN = 0.25  # ... a longer fade run, at its first (in) or last (out) beat
GAIN_SPREAD_DB = 0.5  # flat gains of a run's beats this far apart are no one GAIN (``compressed_gains``)


def false_fades(effects: list[BeatEffect], labels: list[tuple[str, int]]) -> set[int]:
    """Beats of consecutive forward beats whose FADE_IN/FADE_OUT run is not one fade.

    A run labelled a fade is rejected when the gain ramps fitted on its beats
    (``BeatEffect.ramp``) go above unity (``FADE_MAX_GAIN``), step back
    between neighbours by more than ``FADE_STEP_BACK`` (each beat restarting
    its ramp: a compressor), or do not start (in) or end (out) at silence
    (``FADE_EDGE_GAIN`` for a one-beat run, ``FADE_RUN_EDGE_GAIN`` for a
    longer one).
    """
    bad: set[int] = set()
    for kind, beats in itertools.groupby(range(len(labels)), key=lambda k: labels[k][0]):
        if kind not in ("FADE_IN", "FADE_OUT"):
            continue
        run = list(beats)
        sign = 1.0 if kind == "FADE_IN" else -1.0  # gain rises along a fade-in, falls along a fade-out
        ramps = [effects[k].ramp for k in run]
        known = [r for r in ramps if r is not None]
        loud = any(max(r) > FADE_MAX_GAIN for r in known)
        back = any(
            a is not None and b is not None and sign * (b[0] - a[1]) < -FADE_STEP_BACK for a, b in itertools.pairwise(ramps)
        )
        # a fade-in starts at silence and a fade-out ends there (a one-beat run closely; a longer
        # run within FADE_RUN_EDGE_GAIN, its edge beat's straight fit being rougher)
        edge = ramps[0 if kind == "FADE_IN" else -1]
        limit = FADE_EDGE_GAIN if len(run) == 1 else FADE_RUN_EDGE_GAIN
        silent_edge = edge is None or edge[0 if kind == "FADE_IN" else 1] <= limit
        if loud or back or not silent_edge:
            bad.update(run)
    return bad


def _without_fades(effect: BeatEffect) -> BeatEffect:
    """``effect`` with its fade candidates dropped and its best remaining candidate as the label."""
    cands = {k: d for k, d in (effect.candidates or {}).items() if k[0] not in ("FADE_IN", "FADE_OUT")}
    if not cands:
        return BeatEffect("KEEP", 0, effect.distance, 0.0, {("KEEP", 0): effect.distance})
    (t, slot), d = min(cands.items(), key=lambda kv: kv[1])
    return BeatEffect(t, slot, d, effect.margin, cands)


def label_run(effects: list[BeatEffect]) -> list[tuple[str, int]]:
    """Labels of consecutive forward beats: ``smooth_effects``, again without the fades that are not fades, GAIN runs that move made COMPRESS (``compressed_gains``), and a delay's first beat (``delay_onsets``)."""
    labels = smooth_effects(effects)
    bad = false_fades(effects, labels)
    if bad:
        labels = smooth_effects([_without_fades(e) if k in bad else e for k, e in enumerate(effects)])
    return delay_onsets(compressed_gains(effects, labels))


def delay_onsets(labels: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``labels`` with a lone GAIN cut right before a DELAY run made the run's first beat.

    A delay mixes its echoes with the dry sound, which a wet/dry mix lowers
    (another editor's delay at mix 0.4: the dry sound 4.4 dB down). On the
    delay's first beat the echoes have barely begun (the first comes 0.27 s
    in), so the beat fits a flat gain cut best, and the DELAY label starts
    one beat late (the foreign editor's dev pairs: 5 of 23 delays, each
    with a one-beat GAIN -3 dB before the DELAY run). A GAIN of one beat
    that lowers the level (amount slot below the middle), between a beat
    that is not that GAIN and a DELAY, is read as the delay's first beat.
    A longer GAIN run, or one that lifts the level, is a gain of its own.
    """
    out = list(labels)
    for k in range(len(out) - 1):
        t, slot = out[k]
        if t != "GAIN" or slot >= 2 or out[k + 1][0] != "DELAY" or (k > 0 and out[k - 1] == out[k]):
            continue
        out[k] = out[k + 1]
    return out


def smooth_effects(effects: list[BeatEffect], *, switch_db: float = EFFECT_SWITCH_DB) -> list[tuple[str, int]]:
    """Labels of consecutive forward beats, chosen together (Viterbi) from each beat's candidates.

    Each beat costs the distance of its label's candidate (a label a beat
    did not judge costs that beat's worst distance plus ``switch_db``);
    each change of label between neighbours costs ``switch_db``. An edit
    applies an effect over whole actions, so a beat whose best candidate is
    barely better than its neighbours' label (compression read as a gain
    ramp on every other beat, a delay's amount flickering) takes theirs.
    """
    labels = sorted({k for e in effects for k in (e.candidates or {})})
    if len(effects) < 2 or not labels:
        return [(e.type, e.slot) for e in effects]
    n, m = len(effects), len(labels)
    cost = np.empty((n, m))
    for i, e in enumerate(effects):
        c = e.candidates or {}
        worst = max(c.values()) if c else 0.0
        cost[i] = [c.get(k, worst + switch_db) for k in labels]
    acc = cost[0].copy()
    back = np.zeros((n, m), dtype=np.int64)
    for i in range(1, n):
        j = int(np.argmin(acc))
        stay = acc
        move = acc[j] + switch_db
        back[i] = np.where(stay <= move, np.arange(m), j)
        acc = np.minimum(stay, move) + cost[i]
    k = int(np.argmin(acc))
    out = [labels[k]] * n
    for i in range(n - 1, 0, -1):
        k = int(back[i, k])
        out[i - 1] = labels[k]
    return out


def compressed_gains(effects: list[BeatEffect], labels: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``labels`` with each run of GAIN beats whose gain moves from beat to beat made COMPRESS.

    A gain is one level change: every beat of a GAIN action is changed by
    the same dB (seen within 0.01 dB, mp3 or not). A compressor lowers each
    beat by what its level asks, and a compressor between the vocabulary's
    renders (another threshold, attack or release) often fits a flat gain
    best beat by beat. A run of two or more GAIN beats whose fitted flat
    gains spread by ``GAIN_SPREAD_DB`` or more, never above
    ``COMPRESS_MAX_LIFT_DB``, and whose beats lose level as it rises
    (median slope at most ``-COMPRESS_MIN_SLOPE``), is a compressor; its
    ratio is read from that slope (the nearest step).
    """
    out = list(labels)
    b = 0
    while b < len(out):
        if out[b][0] != "GAIN":
            b += 1
            continue
        e = b
        while e < len(out) and out[e][0] == "GAIN":
            e += 1
        fits = [effects[k].level for k in range(b, e)]
        known = [f for f in fits if f is not None]
        if e - b >= 2 and len(known) == e - b:
            flats = np.array([f[0] for f in known])
            slope = float(np.median([f[1] for f in known]))
            if float(np.ptp(flats)) >= GAIN_SPREAD_DB and flats.max() <= COMPRESS_MAX_LIFT_DB and slope <= -COMPRESS_MIN_SLOPE:
                ratio = 1.0 / max(1.0 + slope, 0.05)
                steps = [vocab.amount_value("COMPRESS", a) for a in AMOUNT_SLOTS]
                slot = int(np.argmin([abs(math.log(ratio / v)) for v in steps]))
                out[b:e] = [("COMPRESS", slot)] * (e - b)
        b = e
    return out
