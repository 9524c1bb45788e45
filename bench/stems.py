"""Benchmark stem separation and stem chains on a 4-minute 44.1 kHz stereo song.

Prints the real-time factor (seconds of audio per second of processing; above
1 is faster than real time) of:

- the built-in separator (HPSS + bands), next to a bare STFT -> ISTFT round
  trip of the same song (the baseline: the transforms every mask-based
  separator pays), and their ratio;
- demucs: an HTDemucs of the default size (the real architecture, about 27 M
  parameters) with random weights, which costs exactly what trained weights
  cost; ``--demucs-seconds`` times it on the song's first seconds only;
- a 4-stem chain (compressor + high-pass on drums, low shelf + compressor on
  bass, reverb + delay on vocals, chorus + low-pass on other, mix gains).

    .venv/bin/python bench/stems.py [--duration S] [--demucs-seconds S] [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np

from editorbot.engine.chains import parse_chain
from editorbot.engine.stems import BuiltinSeparator, istft, stft
from editorbot.training.data.synth import synth_song

CHAIN = {
    "stems": {
        "drums": [
            {"plugin": "Compressor", "params": {"threshold_db": -18, "ratio": 4, "attack_ms": 5, "release_ms": 80}},
            {"plugin": "HighpassFilter", "params": {"cutoff_frequency_hz": 40}},
        ],
        "bass": [
            {"plugin": "LowShelfFilter", "params": {"cutoff_frequency_hz": 120, "gain_db": 3}},
            {"plugin": "Compressor", "params": {"threshold_db": -20, "ratio": 3}},
        ],
        "vocals": [
            {"plugin": "Reverb", "params": {"room_size": 0.5, "wet_level": 0.25, "dry_level": 0.8}},
            {"plugin": "Delay", "params": {"delay_seconds": 0.25, "feedback": 0.3, "mix": 0.2}},
        ],
        "other": [
            {"plugin": "Chorus", "params": {"rate_hz": 1.0, "depth": 0.3, "mix": 0.4}},
            {"plugin": "LowpassFilter", "params": {"cutoff_frequency_hz": 9000}},
        ],
    },
    "gains_db": {"drums": 0.0, "bass": -1.5, "vocals": 2.0, "other": -1.0},
}


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def line(name: str, audio_s: float, wall_s: float) -> float:
    rtf = audio_s / wall_s
    print(f"{name:>26}: {audio_s:6.1f} s of audio in {wall_s:8.3f} s: {rtf:8.2f}x real time")
    return rtf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0, help="song length in seconds (default 240)")
    parser.add_argument(
        "--demucs-seconds", type=float, default=None, help="time demucs on the first S seconds only (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="best of N for the built-in separator and the chain")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for demucs (default torch's)")
    parser.add_argument("--device", default=None, help="torch device for demucs (default cpu)")
    parser.add_argument("--skip-demucs", action="store_true", help="no demucs timing (or demucs is not installed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    song = synth_song(7, duration_s=args.duration, tempo_bpm=120.0)
    sr, samples = song.sample_rate, song.samples
    audio_s = samples.shape[1] / sr
    print(f"song: {audio_s:.1f} s, {samples.shape[0]} channels, {sr} Hz")

    sep = BuiltinSeparator()
    n_fft, hop = sep.stft_size(sr)
    base_s, _ = best_of(
        lambda: istft(stft(samples, n_fft=n_fft, hop_length=hop), n_fft=n_fft, hop_length=hop, length=samples.shape[1]),
        args.repeats,
    )
    sep_s, stems = best_of(lambda: sep.separate(samples, sr), args.repeats)
    base_rtf = line("STFT round trip (baseline)", audio_s, base_s)
    sep_rtf = line("builtin separator", audio_s, sep_s)
    print(f"{'ratio baseline / builtin':>26}: {base_rtf / sep_rtf:.1f} (the separator costs that many round trips)")

    chain = parse_chain(CHAIN)
    chain_s, _ = best_of(lambda: chain(stems, sr), args.repeats)
    line("4-stem chain + mix", audio_s, chain_s)

    if args.skip_demucs:
        return
    try:
        import torch
        from demucs.htdemucs import HTDemucs
    except ImportError as err:
        print(f"demucs: not installed ({err}); make install installs it")
        return
    from editorbot.engine.demucs_separator import DemucsSeparator

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(["drums", "bass", "other", "vocals"]).eval()
    n_params = sum(p.numel() for p in model.parameters())
    demucs = DemucsSeparator(model=model, device=args.device)
    seconds = min(audio_s, args.demucs_seconds or audio_s)
    part = np.ascontiguousarray(samples[:, : int(seconds * sr)])
    demucs_s, _ = best_of(lambda: demucs.separate(part, sr), 1)
    where = args.device or "cpu"
    threads = torch.get_num_threads()
    demucs_rtf = line(f"demucs HTDemucs ({where})", part.shape[1] / sr, demucs_s)
    print(
        f"{'':>26}  {n_params / 1e6:.1f} M parameters, segment {float(model.segment):.1f} s, overlap 0.25, "
        f"{threads} torch threads; {sep_rtf / demucs_rtf:.0f}x slower than the builtin separator"
    )


if __name__ == "__main__":
    main()
