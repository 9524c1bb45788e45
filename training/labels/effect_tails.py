"""What a REVERB or DELAY run still sounds over the beats after it: the tail the renderer overlap-adds.

``engine.render`` feeds a reverb or delay run zeros after its end and
overlap-adds the result into whatever the edit plays next, for up to
``engine.render.MAX_TAIL_S`` (2 s): natural decay over the first half,
then a fade (``engine.render.tail_envelope``). On a grid of 0.5-s beats
that is four beats; on a fast grid (a slow song read at 200+ BPM, 0.27-s
beats) seven or eight. A beat the edit plays unchanged inside that span is
its raw beat plus the tail, and read without it the tail's added energy
passes for a GAIN or a COMPRESS, its stereo spread for a WIDTH.

``OpenTail`` follows the last REVERB/DELAY run the effects step judged, on
the edit's timeline (seconds after the run's end, however many beats that
is, and across structural moves: the tail sounds over whatever follows),
and renders its tail once per run, in stereo at the song's rate from the
raw song's own channels, as the edit's was made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.audio import Audio, analysis_mono
from editorbot.engine.plan import Effect
from editorbot.engine.render import build_chain, tail_envelope
from editorbot.training.labels.align import AMOUNT_SLOTS
from editorbot.training.labels.frames import FRAME_SR

TAIL_TYPES = ("REVERB", "DELAY")
#: Source fed to a reverb or delay before the audio it is judged on, at most: the tail's render
#: here and the effects step's candidates (``effects``); older input has decayed away.
TAIL_PRE_ROLL_S = 2.0


@dataclass
class BeatTail:
    """The tail of an earlier effect run over one beat of the edit.

    Attributes
    ----------
    mono : np.ndarray
        ``(n,)`` float32 at ``FRAME_SR``, the analysis mono mix.
    stereo : np.ndarray
        ``(n_channels, m)`` float32 at the song's rate (the beat's
        ``m`` samples there), for the stereo checks.
    """

    mono: np.ndarray
    stereo: np.ndarray


class OpenTail:
    """The last REVERB/DELAY run judged on a pair's forward beats, and its tail over later beats of the edit.

    Parameters
    ----------
    raw_st : np.ndarray
        ``(n_channels, n_samples)`` float32, the raw song at ``sample_rate``.
    sample_rate : int
        its rate, Hz.
    """

    def __init__(self, raw_st: np.ndarray, sample_rate: int) -> None:
        self.raw_st = raw_st
        self.sr = int(sample_rate)
        self.type: str | None = None
        self.slot = 0
        self.beat_s = 0.5
        self.feed0 = 0  # raw sample (FRAME_SR) where the run began
        self.feed1 = 0  # ... and ends
        self.dst_end = 0  # edit sample (FRAME_SR) where the run ends
        self._tail: tuple[np.ndarray, np.ndarray] | None = None  # (mono at FRAME_SR, stereo at sr), rendered once

    def follow(self, type_name: str, slot: int, src0: int, dst0: int, n: int, beat_s: float) -> None:
        """Note the judged beat at raw ``src0`` / edit ``dst0`` (``n`` samples, ``FRAME_SR``): a run goes on, starts or ends.

        A REVERB or DELAY beat goes on with the open run where it follows
        its last beat in both songs with the same type, else starts a new
        run (the renderer starts an effect's memory at its segment). Any
        other beat leaves the run's tail open: it sounds over what follows.
        ``beat_s``: the beat length the effect's time follows (a DELAY's).
        """
        if type_name not in TAIL_TYPES:
            return
        if not (type_name == self.type and src0 == self.feed1 and dst0 == self.dst_end):
            self.type, self.feed0 = type_name, src0
        self.slot, self.beat_s = slot, beat_s
        self.feed1, self.dst_end = src0 + n, dst0 + n
        self._tail = None

    def over(self, dst0: int, n: int, n_stereo: int) -> BeatTail | None:
        """The open run's tail over edit samples ``[dst0, dst0 + n)`` (``FRAME_SR``), or None where none sounds there.

        ``n_stereo``: the beat's length in samples at the song's rate (its stereo part's).
        """
        if self.type is None or dst0 < self.dst_end:
            return None
        mono, stereo = self._render()
        k0 = dst0 - self.dst_end
        if k0 >= mono.shape[0]:
            return None
        m_out = np.zeros(n, dtype=np.float32)
        part = mono[k0 : k0 + n]
        m_out[: part.shape[0]] = part
        s0 = int(round(k0 / FRAME_SR * self.sr))
        s_out = np.zeros((stereo.shape[0], n_stereo), dtype=np.float32)
        s_part = stereo[:, s0 : s0 + n_stereo]
        s_out[:, : s_part.shape[1]] = s_part
        return BeatTail(m_out, s_out)

    def _render(self) -> tuple[np.ndarray, np.ndarray]:
        """The run's tail from its end: ``(mono at FRAME_SR, (n_channels, m) at the song's rate)``."""
        if self._tail is not None:
            return self._tail
        assert self.type is not None
        name, params = vocab.effect_params(self.type, AMOUNT_SLOTS[self.slot], beat_s=self.beat_s)
        chain = build_chain([Effect(name, params)], self.sr)
        n_tail = int(round(chain.tail_s * self.sr))
        a = int(round(max(self.feed0, self.feed1 - TAIL_PRE_ROLL_S * FRAME_SR) / FRAME_SR * self.sr))
        b = min(int(round(self.feed1 / FRAME_SR * self.sr)), self.raw_st.shape[1])
        a = min(a, b)
        x = np.zeros((self.raw_st.shape[0], b - a + n_tail), dtype=np.float32)
        x[:, : b - a] = self.raw_st[:, a:b]
        y = np.asarray(chain(x, self.sr), dtype=np.float32)[:, b - a : b - a + n_tail]
        if y.shape[1] < n_tail:
            y = np.pad(y, ((0, 0), (0, n_tail - y.shape[1])))
        stereo = np.ascontiguousarray(y * tail_envelope(n_tail))
        self._tail = (analysis_mono(Audio(stereo, self.sr), sr=FRAME_SR), stereo)  # the analysis' own mono mix
        return self._tail
