"""plot_plan: a two-panel PNG of the right size, atomic, never over the source."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from editorbot.engine.actions import TYPES
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, Grid, Marker, Segment, Source
from editorbot.engine.plot import ACTION_COLOURS, envelope, plot_plan

SR = 8000


def _source(duration_s: float = 8.0) -> np.ndarray:
    t = np.arange(int(duration_s * SR)) / SR
    tone = 0.5 * np.sin(2 * np.pi * 220 * t) * (0.3 + 0.7 * (t % 0.5 < 0.1))
    return np.stack([tone, 0.8 * tone]).astype(np.float32)


def _plan(path: str) -> EditPlan:
    segments = [
        Segment(0.0, 2.0, 0.0, action="KEEP"),
        Segment(2.0, 3.0, 2.0, action="LOOP"),
        Segment(2.0, 3.0, 3.0, action="LOOP"),
        Segment(5.0, 6.0, 4.0, action="REVERSE", reverse=True),
        Segment(6.0, 7.0, 5.0, action="SILENCE", mute=True),
        Segment(7.0, 8.0, 6.0, action="REVERB"),
    ]
    return EditPlan(
        source=Source(path, "0" * 64, SR, 2, 8.0),
        grid=Grid(120.0, [i * 0.5 for i in range(16)], [0, 4, 8, 12]),
        segments=segments,
        markers=[Marker(2.0, "loop"), Marker(4.0, "reverse part", end_s=5.0)],
    )


def _edited(plan: EditPlan, source: np.ndarray) -> np.ndarray:
    """A plain splice of the plan (no fades or effects): enough to draw."""
    out = np.zeros((source.shape[0], int(round(plan.duration_s * SR))), np.float32)
    for seg in plan.segments:
        piece = source[:, int(seg.src_start_s * SR) : int(seg.src_end_s * SR)]
        if seg.reverse:
            piece = piece[:, ::-1]
        if seg.mute:
            piece = np.zeros_like(piece)
        start = int(seg.dst_start_s * SR)
        out[:, start : start + piece.shape[1]] = piece
    return out


def test_every_action_type_has_a_distinct_colour():
    assert set(TYPES) <= set(ACTION_COLOURS)
    assert len(set(ACTION_COLOURS.values())) == len(ACTION_COLOURS)


def test_envelope_min_max():
    x = np.array([[0.0, 1.0, -1.0, 0.5, 0.25, -0.25]])
    lo, hi = envelope(x, 3)
    np.testing.assert_allclose(lo, [0.0, -1.0, -0.25])
    np.testing.assert_allclose(hi, [1.0, 0.5, 0.25])
    lo, hi = envelope(x[0, :2], 4)  # more columns than samples
    assert lo.shape == (4,) and np.all(hi >= lo)


def test_plot_has_both_panels(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"x")
    plan = _plan(str(src))
    source = _source()
    out = tmp_path / "plot.png"
    assert plot_plan(plan, source, SR, _edited(plan, source), out, width_px=800, height_px=500) == str(out)
    img = imread(out)
    assert img.shape[:2] == (500, 800)
    rgb = img[..., :3]
    dark = (rgb.max(axis=2) < 0.3)  # waveform pixels
    assert dark[:240, 50:600].sum() > 2000, "top panel has no waveform"
    assert dark[260:, 50:600].sum() > 2000, "bottom panel has no waveform"
    # the KEEP colour appears in both panels, the CUT colour (3..5 s unused) in the top one only
    def has(colour_hex: str, rows: slice) -> bool:
        c = np.array([int(colour_hex[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        band = rgb[rows, 40:640]
        # spans are drawn at alpha 0.35 over white
        mixed = 0.35 * c + 0.65 * np.ones(3)
        return bool((np.abs(band - mixed).max(axis=2) < 0.04).any())

    assert has(ACTION_COLOURS["KEEP"], slice(0, 250)) and has(ACTION_COLOURS["KEEP"], slice(250, 500))
    assert has(ACTION_COLOURS["CUT"], slice(0, 250)) and not has(ACTION_COLOURS["CUT"], slice(300, 500))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp file left


def test_plot_refuses_source_and_keeps_it(tmp_path):
    src = tmp_path / "song.png"
    src.write_bytes(b"original")
    plan = _plan(str(src))
    with pytest.raises(BadInput, match="overwrite"):
        plot_plan(plan, _source(), SR, None, src)
    assert src.read_bytes() == b"original"


def test_plot_renders_when_edit_missing(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"x")
    plan = _plan(str(src))
    out = tmp_path / "rendered.png"
    plot_plan(plan, _source(), SR, None, out, width_px=640, height_px=400)
    img = imread(out)
    assert img.shape[:2] == (400, 640)
    assert (img[200:, 30:500, :3].max(axis=2) < 0.3).sum() > 1000
