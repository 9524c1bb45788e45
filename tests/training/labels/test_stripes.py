"""training.labels.stripes: the striped similarity gives the DP the values whole matrices would, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from editorbot.training.labels import align as align_module
from editorbot.training.labels import stripes
from editorbot.training.labels.align import AlignConfig, align
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR, Frames, frame_features, similarity
from editorbot.training.labels.stripes import Rings, Stripes, backward_pass


def _frames(n: int, seed: int, *, variants: int = 0) -> Frames:
    """``n`` random unit frames, a run of them silent."""
    rng = np.random.default_rng(seed)

    def unit() -> np.ndarray:
        x = rng.standard_normal((n, 64)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    silent = np.zeros(n, dtype=bool)
    silent[n // 3 : n // 3 + 7] = True
    f = Frames(unit(), np.zeros(n, dtype=np.float32), silent, np.zeros(n * FRAME_HOP, dtype=np.float32))
    f.variants = [unit() for _ in range(variants)]
    return f


def _reference(s: np.ndarray, r_starts: np.ndarray, frame_best: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-matrix diagonal and anti-diagonal sums (row by row, float32) and the bound (float64)."""
    te, tr = s.shape
    cd = np.zeros((te + 1, tr + 1), dtype=np.float32)
    ca = np.zeros((te + 1, tr + 1), dtype=np.float32)
    for t in range(te):
        cd[t + 1, 1:] = cd[t, :-1] + s[t]
        ca[t + 1, :-1] = ca[t, 1:] + s[t]
    m = np.stack([np.maximum(s[:, min(int(r), tr - 1) :].max(axis=1), frame_best) for r in r_starts], axis=1)
    h = np.zeros((te + 1, r_starts.shape[0] + 1))
    for u in range(te - 1, -1, -1):
        h[u, :-1] = h[u + 1, :-1] + m[u]
    return cd, ca, h


@pytest.mark.parametrize("cache_mb", [0.0, 64.0])
def test_stripes_and_rings_hold_the_whole_matrix_values(monkeypatch: pytest.MonkeyPatch, cache_mb: float) -> None:
    monkeypatch.setattr(stripes, "STRIPE", 24)
    edit, raw = _frames(150, 0), _frames(203, 1, variants=2)  # 203 = 8 stripes of 24 + 11: the last joins the one before
    s = similarity(edit, raw)
    st = Stripes(edit, raw, cache_mb=cache_mb)
    assert st.n_stripes == 8 and int(np.diff(st.edges)[-1]) == 35
    r_starts = np.array([0, 5, 30, 31, 77, 150, 202, 240])
    frame_best = np.random.default_rng(2).uniform(-1, 0.5, 150)
    cd, ca, h_ref = _reference(s, r_starts, frame_best)
    h, ckpt = backward_pass(st, frame_best, r_starts)
    assert np.array_equal(h, h_ref)
    assert np.array_equal(ckpt, ca[:, st.edges[1:]].T)
    rings = Rings(st, ckpt, width=40)
    for lo, hi in [(0, 10), (0, 24), (20, 60), (45, 90), (150, 203)]:
        rings.cover(lo, hi)
        cols = np.arange(lo, hi)
        assert np.array_equal(rings.s[:, cols % rings.cap], s[:, cols])
        cols = np.arange(lo, hi + 1)
        assert np.array_equal(rings.cd[:, cols % rings.cap], cd[:, cols])
        assert np.array_equal(rings.ca[:, cols % rings.cap], ca[:, cols])
    with pytest.raises(ValueError, match="do not fit"):
        rings.cover(0, 203)
    t, r = np.array([0, 10, 149, 50]), np.array([0, 202, 100, 70])
    assert np.allclose(st.values(t, r), s[t, r], atol=1e-6)


def test_align_is_the_same_in_stripes_as_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut-and-loop edit of a noise song: narrow stripes recomputed twice give the walk and table of one kept matrix."""
    rng = np.random.default_rng(5)
    beat = 11025  # 0.5 s
    y = np.concatenate([rng.standard_normal(beat).astype(np.float32) * rng.uniform(0.05, 0.3) for _ in range(24)])
    edit = np.concatenate([y[: 4 * beat], y[8 * beat : 12 * beat], y[8 * beat : 20 * beat], y[20 * beat :][::-1]])
    raw_f, edit_f = frame_features(y, variants=True), frame_features(edit)
    starts = np.arange(24) * 0.5
    ends = starts + 0.5
    kw = dict(beat_s=0.5)
    whole: dict = {}
    ref = align(raw_f, edit_f, starts, ends, edit.shape[0] / FRAME_SR, config=AlignConfig(sim_cache_mb=1e6), debug=whole, **kw)
    monkeypatch.setattr(stripes, "STRIPE", 37)
    narrow: dict = {}
    got = align(raw_f, edit_f, starts, ends, edit.shape[0] / FRAME_SR, config=AlignConfig(sim_cache_mb=0.0), debug=narrow, **kw)
    assert got[0] == ref[0] and got[1] == ref[1]
    assert np.array_equal(narrow["table"], whole["table"])
    kinds = [m.kind for m in got[1]]
    assert len(got[1]) > 3 and len(set(kinds)) > 1  # the walk has structure, not one long forward run


def test_a_second_dp_over_the_same_stripes_starts_clean() -> None:
    """The wider retry reuses the first run's table and rings: it finds what a fresh run with that beam finds."""
    rng = np.random.default_rng(6)
    beat = 11025
    y = np.concatenate([rng.standard_normal(beat).astype(np.float32) * rng.uniform(0.05, 0.3) for _ in range(20)])
    edit = np.concatenate([y[: 6 * beat], y[10 * beat : 14 * beat], y[10 * beat :]])
    raw_f, edit_f = frame_features(y, variants=True), frame_features(edit)
    starts = np.arange(20) * 0.5
    args = (raw_f, edit_f, starts, starts + 0.5, edit.shape[0] / FRAME_SR)
    narrow = align(*args, config=AlignConfig(beam=8, retry_score=-1e9), beat_s=0.5)
    wide = align(*args, config=AlignConfig(beam=32, retry_score=-1e9), beat_s=0.5)
    retried = align(*args, config=AlignConfig(beam=8, retry_score=1e9), beat_s=0.5)  # always retried 4x wider
    best = wide if wide[1] and wide[0] > narrow[0] else narrow
    assert (retried[0], retried[1]) == (best[0], best[1])


def test_a_poor_path_of_a_long_edit_is_widened_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poor path is searched 4x and 16x wider on an edit up to ``wide_retry_max_s``, 4x only past it."""
    rng = np.random.default_rng(6)
    beat = 11025
    y = np.concatenate([rng.standard_normal(beat).astype(np.float32) * rng.uniform(0.05, 0.3) for _ in range(20)])
    edit = np.concatenate([y[: 6 * beat], y[10 * beat :]])
    raw_f, edit_f = frame_features(y, variants=True), frame_features(edit)
    starts = np.arange(20) * 0.5
    beams: list[int] = []
    run = align_module._Sweep.run

    def counted(self, beam: int, keep_table: bool = False):  # type: ignore[no-untyped-def]
        beams.append(beam)
        return run(self, beam, keep_table)

    monkeypatch.setattr(align_module._Sweep, "run", counted)
    monkeypatch.setattr(align_module, "RETRY_GAIN", -1e9)  # every widening counts as a gain
    edit_s = edit.shape[0] / FRAME_SR
    for max_s, want in ((edit_s + 1.0, [8, 32, 128]), (edit_s - 1.0, [8, 32])):
        beams.clear()
        align(raw_f, edit_f, starts, starts + 0.5, edit_s, config=AlignConfig(beam=8, retry_score=1e9, wide_retry_max_s=max_s),
              beat_s=0.5)  # fmt: skip
        assert beams == want, max_s
