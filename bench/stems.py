"""Benchmark stem separation: quality (SDR per stem) and speed.

Quality: SDR (``10 log10 |s|^2 / |s - s_hat|^2`` over the whole excerpt, all
channels) of every stem each separator offers, next to the trivial estimate
mix/4 against the same reference, on

- the synthesizer's dry stems (``training.data.synth.synth_stems``: drums,
  bass, chords + lead as other; no vocals) mixed without the master bus;
- real corpus songs (``bench/corpus.py``, dev and test) with a known drum loop
  (``tests/drumkit.py``) added at the song's RMS: drums vs the rest.

A stem a separator does not offer stays in its ``other``, so ``other`` is
scored against the sum of the reference stems it holds. demucs is scored when
its weights are found (``--model-dir`` or the default folder).

Speed: prints the real-time factor (seconds of audio per second of processing; above
1 is faster than real time) of:

- the built-in separator (drums/other masks), next to a bare STFT -> ISTFT round
  trip of the same song (the baseline: the transforms every mask-based
  separator pays), and their ratio;
- demucs: an HTDemucs of the default size (the real architecture, about 27 M
  parameters) with random weights, which costs exactly what trained weights
  cost; ``--demucs-seconds`` times it on the song's first seconds only;
- a stem chain (compressor + high-pass on drums, low shelf + compressor on
  bass, reverb + delay on vocals, chorus + low-pass on other, mix gains) over
  the stems the built-in separator offers (drums, other).

    .venv/bin/python bench/stems.py [--duration S] [--demucs-seconds S] [--threads N] [--device cuda]
        [--sdr-songs N] [--sdr-seconds S] [--corpus-songs N] [--model-dir D] [--skip-speed]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

import numpy as np

from editorbot.engine.audio import load_audio
from editorbot.engine.chains import parse_chain
from editorbot.engine.errors import BadInput
from editorbot.engine.features import STEM_NAMES
from editorbot.engine.separator import Separator
from editorbot.engine.stems import BuiltinSeparator, istft, separator_for, stft
from editorbot.training.data.synth import synth_song, synth_stems

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.corpus import load_tracks
from tests.drumkit import drum_song

MARGIN_DB = 3.0  # a stem is worth producing when it beats mix/4 by this much

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


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR in dB of ``estimate`` against ``reference`` (both ``(n_channels, n)``), over everything."""
    ref = reference.astype(np.float64)
    err = ref - estimate.astype(np.float64)
    return float(10.0 * np.log10((np.sum(ref * ref) + 1e-12) / (np.sum(err * err) + 1e-12)))


def references_for(separator: Separator, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference of each stem ``separator`` offers: its own, and for ``other`` every stem it does not offer."""
    refs = {}
    zero = np.zeros_like(next(iter(truth.values())))
    for name in separator.stems:
        if name == "other":
            refs[name] = sum((v for k, v in truth.items() if k == "other" or k not in separator.stems), zero)
        else:
            refs[name] = truth.get(name, zero)
    return refs


def synth_cases(n: int, seconds: float) -> list[tuple[str, dict[str, np.ndarray], int]]:
    return [(f"synth {seed}", synth_stems(seed, duration_s=seconds), 44100) for seed in range(1, n + 1)]


def corpus_cases(n: int, seconds: float) -> list[tuple[str, dict[str, np.ndarray], int]]:
    """Real songs (first ``seconds``) plus a drum loop at the song's RMS: ``{drums, other}``."""
    try:
        tracks = load_tracks()
    except FileNotFoundError as err:
        print(f"corpus: {err}")
        return []
    cases = []
    patterns = ("four_on_floor", "backbeat", "breakbeat", "halftime")
    for split in ("dev", "test"):
        for k, track in enumerate([t for t in tracks if t.split == split][:n]):
            audio = load_audio(track.path)
            song = audio.samples[:, : int(seconds * audio.sample_rate)]
            if song.shape[0] == 1:
                song = np.repeat(song, 2, axis=0)
            song = song[:2].astype(np.float32)
            loop, _, _ = drum_song(
                100.0 + 10.0 * k, seconds=song.shape[1] / audio.sample_rate, sr=audio.sample_rate,
                pattern=patterns[k % len(patterns)], seed=k, accent_downbeat=False,
            )
            loop = np.repeat(loop[None, : song.shape[1]].astype(np.float32), 2, axis=0)
            loop *= np.sqrt(np.mean(song**2) / max(np.mean(loop**2), 1e-12))
            cases.append((f"{split} {track.track_id}", {"drums": loop, "other": song}, audio.sample_rate))
    return cases


def sdr_report(title: str, cases, separators: list[Separator]) -> None:
    """Mean (min) SDR per stem of each separator and of mix/4 against the same references."""
    if not cases:
        return
    print(f"\nSDR (dB), {title}: {len(cases)} songs; mean (min) over songs; margin = separator - mix/4")
    for sep in separators:
        scores: dict[str, list[tuple[float, float]]] = {}
        for _, truth, sr in cases:
            mix = sum(truth.values())
            estimate = sep.separate(mix, sr)
            for name, ref in references_for(sep, truth).items():
                if np.sum(ref.astype(np.float64) ** 2) < 1e-9:
                    continue  # no such source in these songs (vocals): SDR undefined
                scores.setdefault(name, []).append((sdr_db(ref, estimate[name]), sdr_db(ref, mix / 4.0)))
        for name in STEM_NAMES:
            if name not in sep.stems:
                continue
            if name not in scores:
                print(f"  {sep.name:>18} {name:>6}: no reference in these songs")
                continue
            got = np.array(scores[name])
            margin = got[:, 0] - got[:, 1]
            verdict = "earns it" if margin.mean() >= MARGIN_DB else f"below the {MARGIN_DB:.0f} dB margin"
            print(
                f"  {sep.name:>18} {name:>6}: {got[:, 0].mean():6.2f} ({got[:, 0].min():6.2f})   "
                f"mix/4 {got[:, 1].mean():6.2f} ({got[:, 1].min():6.2f})   margin {margin.mean():+6.2f} ({margin.min():+6.2f})"
                f"   {verdict}"
            )


def quality(args: argparse.Namespace) -> None:
    separators: list[Separator] = [BuiltinSeparator()]
    try:
        separators.append(separator_for("demucs", args.model_dir))
    except BadInput as err:
        print(f"demucs: not scored ({err})")
    sdr_report(f"synthesizer dry stems, {args.sdr_seconds:.0f} s", synth_cases(args.sdr_songs, args.sdr_seconds), separators)
    sdr_report(
        f"corpus songs + drum loop, first {args.sdr_seconds:.0f} s (drums vs the rest)",
        corpus_cases(args.corpus_songs, args.sdr_seconds),
        separators,
    )


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
    parser.add_argument("--sdr-songs", type=int, default=4, help="synthesized songs scored for SDR (default 4)")
    parser.add_argument("--sdr-seconds", type=float, default=30.0, help="length of each scored song (default 30)")
    parser.add_argument("--corpus-songs", type=int, default=3, help="corpus songs per half (dev, test) scored (default 3)")
    parser.add_argument("--model-dir", default=None, help="demucs weights to score (default: the usual folders)")
    parser.add_argument("--skip-speed", action="store_true", help="SDR only")
    parser.add_argument("--skip-sdr", action="store_true", help="speed only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.skip_sdr:
        quality(args)
    if args.skip_speed:
        return
    print()

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
    line(f"{len(stems)}-stem chain + mix", audio_s, chain_s)  # the chain's boards for the stems the separator offers

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
