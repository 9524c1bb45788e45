"""The synthesizer's sound sources and mix bus: band-limited oscillators, envelopes,
Butterworth filters, constant-power panning, the stereo bus that notes are added
into by slicing, the per-song drum kit, kick side-chain ducking and the master
stage (reverb send, soft clip, peak normalisation).

Everything here is deterministic given its arguments and ``rng``; the song
structure that decides what plays when lives in ``training.data.synth``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal

# --------------------------------------------------------------------------- oscillators and envelopes


def _phase(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Phase in cycles ``(n,)`` float32 in [0, 1) and per-sample increment ``(n,)`` for a (possibly varying) frequency."""
    if np.ndim(freq_hz) == 0:
        inc = np.full(n, float(freq_hz) / sr, dtype=np.float32)
        ph = np.arange(n, dtype=np.float32) * np.float32(float(freq_hz) / sr) + np.float32(phase0)
    else:
        inc = (np.asarray(freq_hz, dtype=np.float64) / sr).astype(np.float32)
        ph = np.cumsum(inc) - inc + np.float32(phase0)
    ph -= np.floor(ph)
    return ph, inc


def _polyblep(ph: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """PolyBLEP residual ``(n,)`` that removes most aliasing from a saw step at phase 0."""
    out = np.zeros_like(ph)
    lo = ph < inc
    t = ph[lo] / inc[lo]
    out[lo] = t + t - t * t - 1.0
    hi = ph > 1.0 - inc
    t = (ph[hi] - 1.0) / inc[hi]
    out[hi] = t * t + t + t + 1.0
    return out


def saw(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth ``(n,)`` float64 in [-1, 1]."""
    ph, inc = _phase(freq_hz, n, sr, phase0)
    return 2.0 * ph - 1.0 - _polyblep(ph, inc)


def square(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited square ``(n,)`` as the difference of two half-cycle-apart saws."""
    ph, inc = _phase(freq_hz, n, sr, phase0)
    ph2 = (ph + 0.5) % 1.0
    return 0.5 * ((2.0 * ph - 1.0 - _polyblep(ph, inc)) - (2.0 * ph2 - 1.0 - _polyblep(ph2, inc)))


def triangle(freq_hz: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Triangle ``(n,)`` in [-1, 1] (naive; its harmonics fall fast enough)."""
    ph, _ = _phase(freq_hz, n, sr, phase0)
    return 2.0 * np.abs(2.0 * ph - 1.0) - 1.0


def adsr(n: int, sr: int, attack_s: float, decay_s: float, sustain: float, release_s: float, gate_n: int) -> np.ndarray:
    """Envelope ``(n,)``: linear attack, exponential decay to ``sustain``, exponential release after ``gate_n`` samples."""
    t = np.arange(n) / sr
    a = max(attack_s, 1e-4)
    env = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - a, 0.0) / max(decay_s, 1e-4))
    env = np.where(t < a, t / a, env)
    gate_s = gate_n / sr
    level_at_gate = float(np.interp(gate_s, t, env)) if gate_n < n else float(env[-1])
    rel = level_at_gate * np.exp(-np.maximum(t - gate_s, 0.0) / max(release_s / 4.0, 1e-4))
    env = np.where(t < gate_s, env, rel)
    return env


def midi_hz(midi: float) -> float:
    """Frequency in Hz of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def butter_sos(kind: str, cutoff_hz: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    """Butterworth second-order sections for ``kind`` in {"lowpass", "highpass", "bandpass"}."""
    nyq = sr / 2.0
    if isinstance(cutoff_hz, tuple):
        wn: float | tuple[float, float] = (min(cutoff_hz[0], nyq * 0.95), min(cutoff_hz[1], nyq * 0.97))
    else:
        wn = min(cutoff_hz, nyq * 0.97)
    return signal.butter(order, wn, btype=kind, fs=sr, output="sos")


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains for ``pan`` in [-1, 1] (0 = centre, -3 dB each)."""
    angle = (pan + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


# --------------------------------------------------------------------------- mixing buffer


class Bus:
    """A stereo float32 buffer ``(2, n_samples)`` that notes are added into by slicing."""

    def __init__(self, n_samples: int) -> None:
        self.buf = np.zeros((2, n_samples), dtype=np.float32)

    def add(self, start: int, wave: np.ndarray, gain_l: float, gain_r: float | None = None) -> None:
        """Add ``wave`` (``(m,)`` mono or ``(2, m)`` stereo) at sample ``start``, clipped to the buffer."""
        n = self.buf.shape[1]
        m = wave.shape[-1]
        lo = max(start, 0)
        hi = min(start + m, n)
        if hi <= lo:
            return
        seg = wave[..., lo - start : hi - start]
        if gain_r is None:
            gain_r = gain_l
        if seg.ndim == 1:
            self.buf[0, lo:hi] += gain_l * seg
            self.buf[1, lo:hi] += gain_r * seg
        else:
            self.buf[0, lo:hi] += gain_l * seg[0]
            self.buf[1, lo:hi] += gain_r * seg[1]


# --------------------------------------------------------------------------- drum kit


class DrumKit:
    """Per-song drum sounds, each rendered once (a few variants) and reused for every hit.

    Waveforms are float32, mono ``(m,)`` for kick/snare and stereo ``(2, m)``
    for hats and crash (independent noise per channel gives width).
    """

    def __init__(self, rng: np.random.Generator, sr: int, use_clap: bool) -> None:
        self.sr = sr
        self.kick = self._kick(rng)
        self.snare = [self._clap(rng) if use_clap else self._snare(rng) for _ in range(2)]
        hat_tone = rng.uniform(0.9, 1.15)
        closed_decay = rng.uniform(0.025, 0.05)
        self.hats = [self._metal(rng, 0.12, closed_decay, hat_tone, 7000.0) for _ in range(4)]
        self.open_hat = [self._metal(rng, 0.7, rng.uniform(0.18, 0.3), hat_tone, 6000.0) for _ in range(2)]
        self.crash = self._metal(rng, 2.5, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.3), 3500.0, noise_mix=0.7)

    def _t(self, length_s: float) -> np.ndarray:
        """``(m,)`` time axis in seconds for a sound of ``length_s``."""
        return np.arange(int(length_s * self.sr)) / self.sr

    def _kick(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` kick: sine swept down from 150-260 Hz to 42-60 Hz, driven, plus a beater click."""
        t = self._t(0.5)
        f_start, f_end = rng.uniform(150.0, 260.0), rng.uniform(42.0, 60.0)
        sweep_s, decay_s = rng.uniform(0.02, 0.045), rng.uniform(0.16, 0.32)
        freq = f_end + (f_start - f_end) * np.exp(-t / sweep_s)
        body = np.sin(2.0 * np.pi * np.cumsum(freq) / self.sr) * np.exp(-t / decay_s)
        # Beater click: a few ms of band-passed noise, added after the drive so it stays audible.
        click = signal.sosfilt(butter_sos("bandpass", (1500.0, 8000.0), self.sr), rng.standard_normal(len(t)))
        click *= np.exp(-t / rng.uniform(0.004, 0.008)) / (np.max(np.abs(click[: int(0.01 * self.sr)])) + 1e-9)
        drive = rng.uniform(1.0, 2.5)
        x = np.tanh(drive * body) / np.tanh(drive) + rng.uniform(0.25, 0.45) * click
        x[: int(0.001 * self.sr)] *= np.linspace(0.0, 1.0, int(0.001 * self.sr))
        return x.astype(np.float32)

    def _snare(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` snare: two-partial tone body plus band-passed noise with its own decay."""
        t = self._t(0.4)
        f1 = rng.uniform(170.0, 240.0)
        body = (np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * 1.6 * f1 * t)) * np.exp(
            -t / rng.uniform(0.03, 0.07)
        )
        noise = signal.sosfilt(butter_sos("bandpass", (1200.0, 9000.0), self.sr), rng.standard_normal(len(t)))
        noise *= np.exp(-t / rng.uniform(0.07, 0.18))
        x = 0.6 * body + 1.4 * noise
        return (x / np.max(np.abs(x))).astype(np.float32)

    def _clap(self, rng: np.random.Generator) -> np.ndarray:
        """``(m,)`` clap: band-passed noise with three quick bursts and a short tail."""
        t = self._t(0.4)
        noise = signal.sosfilt(butter_sos("bandpass", (900.0, 5000.0), self.sr), rng.standard_normal(len(t)))
        env = np.exp(-t / rng.uniform(0.08, 0.16))
        for burst_s in (0.0, 0.009, 0.019):
            env = env + (t >= burst_s) * np.exp(-np.maximum(t - burst_s, 0.0) / 0.004)
        x = noise * env
        return (x / np.max(np.abs(x))).astype(np.float32)

    def _metal(
        self,
        rng: np.random.Generator,
        length_s: float,
        decay_s: float,
        tone: float,
        highpass_hz: float,
        noise_mix: float = 0.5,
    ) -> np.ndarray:
        """Hat/cymbal: six inharmonic squares (808 ratios) plus noise, highpassed; ``(2, m)``."""
        t = self._t(length_s)
        n = len(t)
        metal = sum(square(f * tone, n, self.sr, rng.uniform()) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
        sos = butter_sos("highpass", highpass_hz, self.sr, order=4)
        env = np.exp(-t / decay_s) * np.minimum(t / 0.0005, 1.0)
        chans = []
        for _ in range(2):
            x = (1.0 - noise_mix) * metal / 6.0 + noise_mix * rng.standard_normal(n)
            chans.append(signal.sosfilt(sos, x) * env)
        x = np.stack(chans)
        return (x / np.max(np.abs(x))).astype(np.float32)


def sidechain_gain(
    kick_hits: Sequence[tuple[int, float]], n_samples: int, sr: int, depth: float, release_s: float
) -> np.ndarray:
    """Gain ``(n_samples,)`` float32 that dips by up to ``depth`` at every kick and recovers over ``release_s``.

    The dip is a difference of exponentials (5 ms attack), so ducked parts
    swell back smoothly instead of clicking; one dip shape is added at every
    kick by slicing.
    """
    gain = np.ones(n_samples, dtype=np.float32)
    if not kick_hits or depth <= 0.0:
        return gain
    t = np.arange(int(5.0 * release_s * sr), dtype=np.float32) / sr
    dip = np.exp(-t / release_s) - np.exp(-t / 0.005)
    dip = (depth / dip.max()) * dip
    duck = np.zeros(n_samples, dtype=np.float32)
    top = max(g for _, g in kick_hits)
    for start, g in kick_hits:
        lo, hi = max(start, 0), min(start + len(dip), n_samples)
        if hi > lo:
            duck[lo:hi] = np.maximum(duck[lo:hi], (g / top) * dip[lo - start : hi - start])
    return gain - duck


def master(mix: np.ndarray, send: np.ndarray, sr: int, room_size: float, peak_dbfs: float) -> np.ndarray:
    """Reverb on ``send``, sum, soft-clip the peaks, normalise the peak to ``peak_dbfs``.

    Parameters
    ----------
    mix : np.ndarray
        ``(2, n)`` float32 dry mix.
    send : np.ndarray
        ``(2, n)`` float32 reverb send.
    sr : int
        sample rate (Hz).
    room_size : float
        0..1 reverb size.
    peak_dbfs : float
        the output's sample peak (dBFS).

    Returns
    -------
    np.ndarray
        ``(2, n)`` float32, peak exactly ``peak_dbfs`` (unless silent).
    """
    import pedalboard

    wet = pedalboard.Reverb(room_size=room_size, damping=0.5, wet_level=1.0, dry_level=0.0, width=1.0)(send, sr)
    out = mix + 0.35 * wet
    # Soft clip: the loudest drum transients lose about 3 dB, the body of the mix is untouched.
    rms = float(np.sqrt(np.mean(out * out))) + 1e-12
    knee = 4.0 * rms
    over = np.abs(out) > knee
    x = out[over]
    out[over] = np.sign(x) * (knee + knee * np.tanh((np.abs(x) - knee) / knee))
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out = out * (10.0 ** (peak_dbfs / 20.0) / peak)
    return out.astype(np.float32)
