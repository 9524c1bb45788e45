"""Where the render ratio of the foreign editor's pairs comes from.

    .venv/bin/python bench/labels_render_parts.py DIR [--n 10] [--window-s 1.0] [--max-lag-ms 120]

``DIR`` is a work folder of ``bench/labels_real.py --dir DIR`` (its
excerpts ``STEM.wav`` and foreign pairs ``STEM_foreign_sSEED.{wav,json}``).
The render ratio ``d(render of the inferred plan, edit) / d(raw, edit)``
(``training.labels.render_check``) of a foreign pair mixes the labels'
errors with what no plan of the vocabulary can render. For each pair (the
first ``--n`` in name order) this prints distances divided by
``d(raw, edit)``:

- ``plan``: the render ratio itself (the edit file on disk, as the bench);
- ``retimed``: the same render moved window by window (``--window-s``)
  to its best lag within ``--max-lag-ms`` of the edit (normalised
  correlation of the waveforms): the splices' timing no longer counted;
- ``+level``: and each window scaled to the edit's RMS level: the
  render's level errors no longer counted either;
- floors: the foreign editor re-run on the same song with the same draws
  (``foreign_editor.edit``, the same seed and librosa beats), one thing
  made as the project renders it, against that edit remade as it is.
  ``mp3``: no mp3 round trip; ``gain``: the peak normalisation's gain
  replaced by the file gain ``infer_pair`` read (as the render check
  plays the plan); ``xfade``: every join a 10-ms equal-power crossfade
  (``engine.render.CROSSFADE_S``), ``xfade_rt`` the same retimed;
  ``steps``: each effect at the vocabulary's nearest amount step
  (pedalboard still renders it); ``grid`` (``grid_rt`` retimed): the edit
  made on the project's analysis beats instead of librosa's.
  A floor is how far a perfect plan would still be from that cause alone.

Distances are ``render_check.msstft_distance`` on mono 22,050-Hz audio;
the corpus line sums each distance over the pairs and divides by the
summed ``d(raw, edit)``, as ``bench/labels_real.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterator

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import foreign_editor
from bench.labels_real import _amount_step
from editorbot.engine import actions as vocab
from editorbot.engine.audio import Audio, analysis_mono, load_audio
from editorbot.engine.render import CROSSFADE_S, render_plan
from editorbot.training.labels.infer import infer_pair
from editorbot.training.labels.render_check import msstft_distance

log = logging.getLogger("bench.labels_render_parts")

COLUMNS = ("plan", "retimed", "+level", "mp3", "gain", "xfade", "xfade_rt", "steps", "grid", "grid_rt")


def _mono(samples: np.ndarray, sr: int) -> np.ndarray:
    """``(channels, n)`` audio at ``sr`` Hz as the render check's mono 22,050-Hz signal."""
    return analysis_mono(Audio(np.asarray(samples, dtype=np.float32), int(sr)))


def retimed(render: np.ndarray, edit: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """``render`` (``(n,)``) re-cut window by window at its best lag against ``edit`` (``(m,)``), ``(m,)``.

    Each ``window``-sample window of ``edit`` takes the render's samples at
    the lag within ``+-max_lag`` samples of the window before's lag (splice
    timing drifts, a few ms per join) whose normalised correlation with it
    is highest (the lag before where the window is silent).
    """
    from scipy.signal import correlate

    reach = 8 * max_lag + edit.shape[0]
    pad = np.pad(render, (reach, reach + edit.shape[0]))
    out = np.zeros_like(edit)
    lag = 0
    for w0 in range(0, edit.shape[0], window):
        seg = edit[w0 : w0 + window]
        lo = reach + w0 + lag - max_lag
        if float(np.dot(seg, seg)) > 1e-8 and abs(lag) < reach - max_lag:
            ref = pad[lo : lo + seg.shape[0] + 2 * max_lag]
            num = correlate(ref, seg, mode="valid")
            energy = np.convolve(np.square(ref), np.ones(seg.shape[0]), mode="valid")
            lag += int(np.argmax(num / np.sqrt(np.maximum(energy, 1e-12)))) - max_lag
        out[w0 : w0 + seg.shape[0]] = pad[reach + w0 + lag : reach + w0 + lag + seg.shape[0]]
    return out


def leveled(render: np.ndarray, edit: np.ndarray, window: int, max_db: float = 20.0) -> np.ndarray:
    """``render`` with each ``window``-sample window scaled to ``edit``'s RMS level (at most ``max_db`` either way)."""
    out = render.copy()
    for w0 in range(0, edit.shape[0], window):
        a, b = render[w0 : w0 + window], edit[w0 : w0 + window]
        ra, rb = float(np.sqrt(np.mean(np.square(a)) + 1e-12)), float(np.sqrt(np.mean(np.square(b)) + 1e-12))
        out[w0 : w0 + window] = a * min(max(rb / ra, 10 ** (-max_db / 20)), 10 ** (max_db / 20))
    return out


def _step(type_name: str, value: float) -> float:
    """The vocabulary's amount value nearest ``value`` (``labels_real._amount_step``)."""
    return float(vocab.AMOUNT_TABLE[type_name][_amount_step(type_name, value)])


@contextlib.contextmanager
def _at_steps() -> Iterator[None]:
    """The foreign editor's effects at the vocabulary's nearest amount steps, inside the block.

    Patches the pedalboard classes and calls ``foreign_editor._effect``
    makes (its draws stay the same): gain, speed rate, cut-off, wet level,
    feedback, drive and ratio move to the nearest step; room size, delay
    time, mix, attack and release stay as the foreign editor sets them.
    """
    import librosa
    import pedalboard as pb

    saved = {name: getattr(pb, name) for name in ("LowpassFilter", "HighpassFilter", "Reverb", "Delay", "Distortion",
                                                  "Compressor", "time_stretch")}
    saved_resample, saved_effect = librosa.resample, foreign_editor._effect

    def at(cls, key: str, type_name: str):
        def make(**kw):
            kw[key] = _step(type_name, kw[key])
            return cls(**kw)
        return make

    pb.LowpassFilter = at(saved["LowpassFilter"], "cutoff_frequency_hz", "LOWPASS")
    pb.HighpassFilter = at(saved["HighpassFilter"], "cutoff_frequency_hz", "HIGHPASS")
    pb.Reverb = at(saved["Reverb"], "wet_level", "REVERB")
    pb.Delay = at(saved["Delay"], "feedback", "DELAY")
    pb.Distortion = at(saved["Distortion"], "drive_db", "DISTORTION")
    pb.Compressor = at(saved["Compressor"], "ratio", "COMPRESS")
    pb.time_stretch = lambda seg, sr, stretch_factor: saved["time_stretch"](seg, sr, stretch_factor=_step("SPEED", stretch_factor))

    def resample(y, *, orig_sr, target_sr, **kw):
        rate = orig_sr / target_sr
        return saved_resample(y, orig_sr=target_sr * _step("SPEED", rate), target_sr=target_sr, **kw)

    def effect(op, seg, sr, rng):
        out, amount, detail = saved_effect(op, seg, sr, rng)
        if op == "GAIN":  # a plain multiplication in the foreign editor: moved to the step's gain
            out = out * np.float32(10 ** ((_step("GAIN", amount) - amount) / 20))
        return out, amount, detail

    librosa.resample = resample
    foreign_editor._effect = effect
    try:
        yield
    finally:
        for name, obj in saved.items():
            setattr(pb, name, obj)
        librosa.resample, foreign_editor._effect = saved_resample, saved_effect


@contextlib.contextmanager
def _spliced(record: list[float], *, join_samples: int | None = None) -> Iterator[None]:
    """The foreign editor's splicer, recording each result's peak in ``record``; every join ``join_samples`` long and equal-power if given."""
    saved = foreign_editor.splice

    def splice(pieces: list[np.ndarray], xfade_samples: list[int], shapes: list[str]) -> np.ndarray:
        if join_samples is not None:
            xfade_samples = [join_samples] * len(xfade_samples)
            shapes = ["equal_power"] * len(shapes)
        out = saved(pieces, xfade_samples, shapes)
        record.append(float(np.max(np.abs(out))) if out.size else 0.0)
        return out

    foreign_editor.splice = splice
    try:
        yield
    finally:
        foreign_editor.splice = saved


def pair_parts(song: str, edit_path: str, truth_path: str, window_s: float, max_lag_ms: float) -> dict[str, float]:
    """``{"raw": d(raw, edit), column: distance}`` of one foreign pair (see the module docstring)."""
    seed = int(re.search(r"_s(\d+)\.wav$", edit_path).group(1))
    raw = load_audio(song)
    sr = raw.sample_rate
    y = raw.samples.astype(np.float64)
    with open(truth_path, encoding="utf-8") as f:
        mp3 = bool(json.load(f)["mp3"])
    edit_disk = analysis_mono(load_audio(edit_path))
    d: dict[str, float] = {"raw": msstft_distance(analysis_mono(raw), edit_disk)}

    res = infer_pair(song, edit_path, cache=False)
    if not res.alignable:
        return {}
    rendered = render_plan(res.aligned()[0], raw.samples, sr) * np.float32(10.0 ** (res.file_gain_db / 20.0))
    render = _mono(rendered, sr)
    render = render[: edit_disk.shape[0]] if render.shape[0] >= edit_disk.shape[0] else np.pad(render, (0, edit_disk.shape[0] - render.shape[0]))
    d["plan"] = msstft_distance(render, edit_disk)
    window, max_lag = int(window_s * 22050), int(max_lag_ms * 22.05)
    moved = retimed(render, edit_disk, window, max_lag)
    d["retimed"] = msstft_distance(moved, edit_disk)
    d["+level"] = msstft_distance(leveled(moved, edit_disk, window), edit_disk)

    beats = foreign_editor._beats(y, sr)
    peaks: list[float] = []
    with _spliced(peaks):
        e0, _, _ = foreign_editor.edit(y, sr, seed, mp3=mp3, beats_s=beats)
    ref = _mono(e0, sr)
    d["raw_remade"] = msstft_distance(analysis_mono(raw), ref)
    if mp3:
        e1, _, _ = foreign_editor.edit(y, sr, seed, mp3=False, beats_s=beats)
        d["mp3"] = msstft_distance(_mono(e1, sr), ref)
    else:
        d["mp3"] = 0.0
    true_gain_db = foreign_editor.PEAK_DBFS - 20.0 * math.log10(max(peaks[-1], 1e-12))
    d["gain"] = msstft_distance(ref * np.float32(10 ** ((res.file_gain_db - true_gain_db) / 20)), ref)
    with _spliced([], join_samples=int(round(CROSSFADE_S * sr))):
        e2, _, _ = foreign_editor.edit(y, sr, seed, mp3=mp3, beats_s=beats)
    d["xfade"] = msstft_distance(_mono(e2, sr), ref)
    d["xfade_rt"] = msstft_distance(retimed(_mono(e2, sr), ref, window, max_lag), ref)
    with _at_steps():
        e3, _, _ = foreign_editor.edit(y, sr, seed, mp3=mp3, beats_s=beats)
    d["steps"] = msstft_distance(_mono(e3, sr), ref)
    ours = np.asarray(res.beat_times, dtype=np.float64)
    e4, _, _ = foreign_editor.edit(y, sr, seed, mp3=mp3, beats_s=ours)
    d["grid"] = msstft_distance(_mono(e4, sr), ref)
    d["grid_rt"] = msstft_distance(retimed(_mono(e4, sr), ref, window, max_lag), ref)
    d["file_gain_err_db"] = res.file_gain_db - true_gain_db
    return d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--window-s", type=float, default=1.0)
    p.add_argument("--max-lag-ms", type=float, default=120.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    edits = sorted(glob.glob(os.path.join(args.dir, "*_foreign_s*.wav")))[: args.n]
    rows = []
    print(f"{'pair':<44} " + " ".join(f"{c:>7}" for c in COLUMNS) + "  (each / d(raw, edit))")
    for edit_path in edits:
        stem = re.sub(r"_foreign_s\d+\.wav$", "", os.path.basename(edit_path))
        song = os.path.join(args.dir, f"{stem}.wav")
        d = pair_parts(song, edit_path, edit_path[:-4] + ".json", args.window_s, args.max_lag_ms)
        if not d:
            print(f"{stem:<44} unalignable")
            continue
        rows.append(d)
        print(f"{stem[:44]:<44} " + " ".join(f"{d[c] / d['raw']:>7.3f}" for c in COLUMNS)
              + f"  file gain off by {d['file_gain_err_db']:+.2f} dB")
    if rows:
        total = sum(r["raw"] for r in rows)
        print(f"{'corpus (sum / sum of d(raw, edit))':<44} " + " ".join(f"{sum(r[c] for r in rows) / total:>7.3f}" for c in COLUMNS))
        print(f"d(raw, remade edit) / d(raw, edit on disk): {sum(r['raw_remade'] for r in rows) / total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
