"""The frame similarity of a pair, made a stripe of raw frames at a time: step 3's memory.

The alignment DP (``align``) reads the frame similarity ``S`` (edit frames x
raw frames, ``frames.similarity``) four ways: ``S`` itself (SPEED lines),
its cumulative sums along diagonals (forward play) and along
anti-diagonals (reverse play), and an optimistic bound per (edit frame,
raw beat) made from each edit frame's best similarity at or after the
beat. Held whole, the three matrices take 4.6 GB for a 5-minute pair. The
DP walks the raw beats in order, and at raw beat ``j`` it reads only the
raw frames from ``j``'s start to the end of the longest move from ``j``
(32 beats), so ``S`` is made in stripes of ``STRIPE`` raw frames, twice:

1. right to left (``backward_pass``): the bound (a running maximum per
   edit frame) and, at each stripe's right edge, the column of
   anti-diagonal sums (a checkpoint);
2. left to right (``Rings``), with the DP: each stripe's ``S``, its
   diagonal sums (carried on from the stripe before) and its anti-diagonal
   sums (from its checkpoint) go into ring buffers that hold the last
   ``cap`` raw frames; the DP takes the beats whose reads lie in them.

Where ``S`` fits ``cache_mb``, pass 1 keeps it and pass 2 copies it
instead of making it again. Every sum is the float32 addition, in the same
order, that whole-matrix cumulative sums make, so the DP's walk is the
one it would find with the whole matrices.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from editorbot.training.labels.frames import Frames, similarity_at, similarity_block

STRIPE = 256  # raw frames per stripe of S (~4.5 s)
AHEAD = 2  # stripes made ahead of the caller, each on its own worker thread
MIN_STRIPE = 16  # a last stripe narrower than this joins the one before (BLAS takes another path for a 1-wide one)

_njit = numba.njit(cache=True, nogil=True)


class Stripes:
    """``S = similarity(edit, raw)`` by stripes of raw frames, all kept (stripe by stripe) where ``S`` fits ``cache_mb``.

    Attributes
    ----------
    edges : np.ndarray
        ``(n_stripes + 1,)`` int64 raw frame edges of the stripes.
    shape : tuple[int, int]
        ``(n_edit_frames, n_raw_frames)``.
    """

    def __init__(self, edit: Frames, raw: Frames, *, cache_mb: float) -> None:
        self.edit, self.raw = edit, raw
        te, tr = edit.n_frames, raw.n_frames
        self.shape = (te, tr)
        edges = list(range(0, tr, STRIPE)) + [tr]
        if len(edges) > 2 and edges[-1] - edges[-2] < MIN_STRIPE:
            del edges[-2]
        self.edges = np.asarray(edges, dtype=np.int64)
        self._keep = 4.0 * te * tr <= cache_mb * 2**20
        self._cache: list[np.ndarray | None] = [None] * (len(edges) - 1)

    @property
    def n_stripes(self) -> int:
        return int(self.edges.shape[0] - 1)

    def stripe(self, k: int) -> np.ndarray:
        """``S[:, edges[k]:edges[k + 1]]``, ``(n_edit_frames, width)`` float32 (the kept array where kept: read only)."""
        kept = self._cache[k]
        if kept is not None:
            return kept
        s = similarity_block(self.edit, self.raw, int(self.edges[k]), int(self.edges[k + 1]))
        if self._keep:
            self._cache[k] = s
        return s

    def iterate(self, order: Iterable[int]) -> Generator[np.ndarray, None, None]:
        """The stripes in ``order``, the next ``AHEAD`` made on worker threads while the caller reads the current one.

        BLAS and the numba kernels let go of the GIL, so on a second core
        making ``S`` overlaps the work on it; two stripes ahead keep both
        cores busy where the caller's work is lighter than ``S`` (pass 1).
        """
        ks = list(order)
        if not ks:
            return
        with ThreadPoolExecutor(max_workers=AHEAD) as pool:
            futs = deque(pool.submit(self.stripe, k) for k in ks[:AHEAD])
            for i in range(len(ks)):
                s = futs.popleft().result()
                if i + AHEAD < len(ks):
                    futs.append(pool.submit(self.stripe, ks[i + AHEAD]))
                yield s

    def values(self, t: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``S[t, r]`` for index arrays of one shape (float32; within ~1e-7 of the matrix where not kept)."""
        t, r = np.asarray(t, dtype=np.int64), np.asarray(r, dtype=np.int64)
        if not self._keep or any(c is None for c in self._cache):
            return similarity_at(self.edit, self.raw, t, r)
        out = np.empty(t.shape, dtype=np.float32)
        k = np.searchsorted(self.edges, r, side="right") - 1
        for q in np.unique(k):
            sel = k == q
            out[sel] = self._cache[q][t[sel], r[sel] - self.edges[q]]
        return out


def _stripe_bound(s: np.ndarray, lo: int, tr: int, run: np.ndarray, jj: int, r_starts: np.ndarray, frame_best: np.ndarray,
                  h: np.ndarray) -> int:
    """Pass 1's bound over one stripe (raw frames ``lo ..``); returns the next beat to fill.

    ``run[u]`` comes in as the best ``S[u, r]`` right of the stripe and
    leaves as the best from ``lo`` on; beat ``jj`` gets ``h[u, jj] =
    max(max_{r >= min(r_starts[jj], tr - 1)} S[u, r], frame_best[u])``.
    """
    cols, beats = [], []
    while jj >= 0:
        c = min(int(r_starts[jj]), tr - 1) - lo
        if c < 0:
            break
        cols.append(c)
        beats.append(jj)
        jj -= 1
    _bound_rows(s, np.asarray(cols, dtype=np.int64), np.asarray(beats, dtype=np.int64), run, frame_best, h)
    return jj


@_njit
def _bound_rows(s: np.ndarray, cols: np.ndarray, beats: np.ndarray, run: np.ndarray, frame_best: np.ndarray,
                h: np.ndarray) -> None:
    """Row by row: ``run[u]`` over the stripe's columns right to left, ``h[u, beats[p]]`` taken at ``cols[p]`` (descending)."""
    te, w = s.shape
    for u in range(te):
        best = run[u]
        hi = w
        for p in range(cols.shape[0]):
            c = cols[p]
            for cc in range(c, hi):
                best = max(best, s[u, cc])
            if c < hi:
                hi = c
            h[u, beats[p]] = max(best, frame_best[u])
        for cc in range(hi):
            best = max(best, s[u, cc])
        run[u] = best


@_njit
def _stripe_anti(s: np.ndarray, col: np.ndarray) -> None:
    """Anti-diagonal sums across one stripe: ``col`` (``(Te + 1,)`` at the raw frame after it) becomes those at its first.

    ``C[t + 1, c] = C[t, c + 1] + S[t, c]``, row by row (``S`` is row-major).
    """
    te, w = s.shape
    prev = np.empty(w + 1, dtype=np.float32)
    cur = np.empty(w + 1, dtype=np.float32)
    out = np.empty(te + 1, dtype=np.float32)
    for c in range(w):
        prev[c] = 0.0
    prev[w] = col[0]
    out[0] = 0.0
    for t in range(te):
        for c in range(w):
            cur[c] = prev[c + 1] + s[t, c]
        cur[w] = col[t + 1]
        out[t + 1] = cur[0]
        prev, cur = cur, prev
    for t in range(te + 1):
        col[t] = out[t]


@_njit
def _finish_bound(h: np.ndarray, run: np.ndarray, jj: int, frame_best: np.ndarray) -> None:
    """Fill any beats left and sum ``h`` from the last edit frame up (``h[u, j] += h[u + 1, j]``)."""
    te = h.shape[0] - 1
    nb = h.shape[1] - 1
    while jj >= 0:
        for u in range(te):
            h[u, jj] = max(run[u], frame_best[u])
        jj -= 1
    for u in range(te - 1, -1, -1):
        for j in range(nb):
            h[u, j] = h[u + 1, j] + h[u, j]


def backward_pass(stripes: Stripes, frame_best: np.ndarray, r_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1: the DP's bound and the anti-diagonal checkpoints.

    Parameters
    ----------
    frame_best : np.ndarray
        ``(Te,)`` best non-similarity score of each edit frame (silence or stutter).
    r_starts : np.ndarray
        ``(n_beats,)`` int64 first raw frame a beat may read, ascending.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``H (Te + 1, n_beats + 1)`` float64: ``H[t, j]`` the sum over edit
        frames ``u >= t`` of ``max(max_{r >= r_starts[j]} S[u, r],
        frame_best[u])`` (0 in the last row and column); and
        ``(n_stripes, Te + 1)`` float32: the anti-diagonal sums
        (``C[t + 1, r] = C[t, r + 1] + S[t, r]``) at each stripe's right edge.
    """
    te, _ = stripes.shape
    nb = r_starts.shape[0]
    h = np.zeros((te + 1, nb + 1))
    run = np.full(te, -1.0)
    col = np.zeros(te + 1, dtype=np.float32)
    ckpt = np.zeros((stripes.n_stripes, te + 1), dtype=np.float32)
    jj = nb - 1
    fb = np.asarray(frame_best, dtype=np.float64)
    rs = np.asarray(r_starts, dtype=np.int64)
    order = range(stripes.n_stripes - 1, -1, -1)
    for k, sk in zip(order, stripes.iterate(order)):
        ckpt[k] = col
        jj = _stripe_bound(sk, int(stripes.edges[k]), stripes.shape[1], run, jj, rs, fb, h)
        _stripe_anti(sk, col)
    _finish_bound(h, run, jj, fb)
    return h, ckpt


@_njit
def _stripe_forward(s: np.ndarray, lo: int, ckpt: np.ndarray, sbuf: np.ndarray, cdb: np.ndarray, cab: np.ndarray) -> None:
    """Pass 2: one stripe into the rings (raw frame ``r`` in column ``r % cap``).

    ``cdb`` gets the diagonal sums of raw frames ``lo + 1 .. hi`` from the
    ring's frame ``lo`` (``C[t + 1, r + 1] = C[t, r] + S[t, r]``); ``cab``
    the anti-diagonal sums of ``lo .. hi`` from the checkpoint at ``hi``.
    Row by row: row ``t + 1`` of either sum needs only row ``t``.
    """
    te, w = s.shape
    cap = sbuf.shape[1]
    a0 = lo % cap
    hi_slot = (lo + w) % cap
    for t in range(te + 1):
        cab[t, hi_slot] = ckpt[t]
    a = a0
    for _ in range(w):
        b = a + 1 if a + 1 < cap else 0
        cdb[0, b] = 0.0
        cab[0, a] = 0.0
        a = b
    for t in range(te):
        a = a0
        for c in range(w):
            b = a + 1 if a + 1 < cap else 0
            v = s[t, c]
            sbuf[t, a] = v
            cdb[t + 1, b] = cdb[t, a] + v
            cab[t + 1, a] = cab[t, b] + v
            a = b


class Rings:
    """Pass 2's ring buffers: ``S``, diagonal and anti-diagonal sums of the last ``cap`` raw frames.

    Attributes
    ----------
    s : np.ndarray
        ``(Te, cap)`` float32, raw frame ``r`` in column ``r % cap``.
    cd, ca : np.ndarray
        ``(Te + 1, cap)`` float32 diagonal / anti-diagonal sums, same columns.
    hi : int
        raw frames ``< hi`` (sums: ``<= hi``) are in; those from
        ``hi - cap + 1`` on are still there.
    """

    def __init__(self, stripes: Stripes, ckpt: np.ndarray, width: int) -> None:
        te, _ = stripes.shape
        widest = int(np.max(np.diff(stripes.edges))) if stripes.n_stripes else 1
        self.cap = int(width + widest + 2)
        self.stripes, self.ckpt = stripes, ckpt
        self.s = np.zeros((te, self.cap), dtype=np.float32)
        self.cd = np.zeros((te + 1, self.cap), dtype=np.float32)
        self.ca = np.zeros((te + 1, self.cap), dtype=np.float32)
        self.hi = 0
        self._next = 0
        self._stream = stripes.iterate(range(stripes.n_stripes))

    def rewind(self) -> None:
        """Start again from raw frame 0 (for another DP over the same stripes)."""
        self._stream.close()
        self.cd[:, 0] = 0.0
        self.hi = 0
        self._next = 0
        self._stream = self.stripes.iterate(range(self.stripes.n_stripes))

    def cover(self, lo: int, hi: int) -> None:
        """Load stripes until raw frames ``lo .. hi`` (sum columns) are all in (ValueError if ``cap`` is short)."""
        st = self.stripes
        while self.hi < hi and self._next < st.n_stripes:
            k = self._next
            _stripe_forward(next(self._stream), int(st.edges[k]), self.ckpt[k], self.s, self.cd, self.ca)
            self.hi = int(st.edges[k + 1])
            self._next += 1
        if lo < self.hi - self.cap + 1 or hi > self.hi:
            raise ValueError(f"raw frames {lo}..{hi} do not fit the rings ({self.hi - self.cap + 1}..{self.hi})")
