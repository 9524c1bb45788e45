"""training.labels.effects: runs of forward beats labelled together; a fade is one ramp."""

from __future__ import annotations

from editorbot.training.labels.effects import BeatEffect, false_fades, label_run


def _beat(ramp: tuple[float, float] | None, judged: dict[tuple[str, int], float]) -> BeatEffect:
    """A judged forward beat: its candidates' distances (dB) and its fade fit's gain ramp."""
    (t, slot), d = min(judged.items(), key=lambda kv: kv[1])
    return BeatEffect(t, slot, d, 0.1, judged, ramp)


def test_a_fade_is_one_ramp_from_or_to_silence() -> None:
    fade_in = [_beat((k / 4, (k + 1) / 4), {("FADE_IN", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(4)]
    assert false_fades(fade_in, [("FADE_IN", 0)] * 4) == set()
    fade_out = [_beat((1 - k / 2, 1 - (k + 1) / 2), {("FADE_OUT", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(2)]
    assert false_fades(fade_out, [("FADE_OUT", 0)] * 2) == set()
    assert false_fades(fade_out[1:], [("FADE_OUT", 0)]) == set()  # a one-beat fade-out ends at silence
    # a compressor riding each beat's level: every beat restarts its ramp
    ramps = ((0.11, 0.3), (0.11, 0.19), (0.21, 0.41))
    sawtooth = [_beat(r, {("FADE_IN", 0): 0.4, ("COMPRESS", 3): 0.5}) for r in ramps]
    labels = [("KEEP", 0), ("FADE_IN", 0), ("FADE_IN", 0), ("FADE_IN", 0)]
    assert false_fades([_beat(None, {("KEEP", 0): 0.1}), *sawtooth], labels) == {1, 2, 3}
    assert label_run(sawtooth) == [("COMPRESS", 3)] * 3
    # a fade never lifts the level, and a one-beat fade-in starts at silence
    lifting = _beat((0.9, 1.2), {("FADE_IN", 0): 0.2, ("GAIN", 3): 0.3})
    late = _beat((0.2, 0.5), {("FADE_IN", 0): 0.2, ("GAIN", 1): 0.3})
    assert false_fades([lifting], [("FADE_IN", 0)]) == false_fades([late], [("FADE_IN", 0)]) == {0}
    assert label_run([late]) == [("GAIN", 1)]
