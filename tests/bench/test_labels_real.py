"""bench/labels_real.py: event scoring and the list of wrong labels."""

from __future__ import annotations

import numpy as np

from bench.labels_real import Span, Tally, score_pair


def test_wrong_labels_are_listed_and_false_effects_counted() -> None:
    """A SPEED a beat before a true SPEED is a false effect; a LOOP inside a CUT is wrong; the right SPEED is neither."""
    beats = np.arange(20) * 0.5
    events = [Span("SPEED", 5.0, 6.5, 1.15), Span("CUT", 8.0, 9.0)]
    labels = [Span("SPEED", 4.5, 5.0, 3, 0.9), Span("SPEED", 5.0, 6.5, 3, 0.9), Span("LOOP", 8.0, 8.5, 1, 0.8)]
    tally = Tally()
    score_pair(tally, events, labels, beats, 10.0, "song_foreign")
    assert tally.false_effects == 1 and tally.found["SPEED"] == 1 and tally.right["SPEED"] == 1
    assert len(tally.false_rows) == 2
    speed, loop = tally.false_rows
    assert speed.startswith("false effect song_foreign") and "beats 9-10" in speed and "after SPEED" in speed
    assert "nearest event SPEED +0.0" in speed
    assert loop.startswith("wrong") and "LOOP" in loop and "inside CUT 1.00" in loop
