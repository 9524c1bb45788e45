"""export.splice: the continuity cost of a splice and the tail guard of protected beats."""

from __future__ import annotations

import numpy as np

from editorbot.engine.features import feature_names
from editorbot.export.splice import SpliceCost, tail_guard


def test_splice_cost_terms() -> None:
    """0 for the source's own continuation; more for breaking the meter or a sustained note."""
    names = feature_names()
    n = 16
    x = np.zeros((n, len(names)))
    phase = 2 * np.pi * (np.arange(n) % 4) / 4
    x[:, names.index("beat_phase_sin")] = np.sin(phase)
    x[:, names.index("beat_phase_cos")] = np.cos(phase)
    x[:, names.index("onset_strength")] = 1.0
    x[:, names.index("rms")] = 0.5
    x[9, names.index("onset_strength")] = 0.0  # beat 9: a note held through it
    x[9, names.index("rms")] = 1.0
    cost = SpliceCost(x, names)
    assert np.all(cost.cost(np.arange(n - 1), np.arange(1, n)) == 0.0)
    on_meter = float(cost.cost(3, 8))  # after beat 3 comes a downbeat: beat 8 is one
    off_meter = float(cost.cost(3, 6))
    into_held_note = float(cost.cost(4, 9))  # 9 is not on the meter of 5 either: compare same phase
    same_phase_clean = float(cost.cost(4, 13))
    assert on_meter < off_meter
    assert into_held_note > same_phase_clean
    assert cost.sustain.argmax() == 9


def test_tail_guard_stops_effect_tails_short_of_protected_beats() -> None:
    from editorbot.engine.render import MAX_TAIL_S

    starts = np.arange(100) * 0.5
    ends = starts + 0.5
    prot = np.zeros(100, bool)
    prot[80:90] = True
    guard = tail_guard(starts, ends, prot)
    # a 32-beat span from beat c ends at (c + 32) * 0.5 s; its tail must end before beat 80 (40 s)
    reach = (np.arange(100) + 32) * 0.5 + MAX_TAIL_S
    np.testing.assert_array_equal(guard[:80], reach[:80] > 40.0)
    assert guard[80:90].all() and not guard[90:].any()
    assert not tail_guard(starts, ends, np.zeros(100, bool)).any()
