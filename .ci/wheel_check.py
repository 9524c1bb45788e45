#!/usr/bin/env python3
"""The wheel and the sdist, proved: built from a clean export of HEAD, installed into a fresh venv, run.

``make wheel-check`` (which ``make test`` runs after the suite) calls it with the
Python that makes ``.venv`` and the Makefile's torch pin::

    python3 .ci/wheel_check.py --torch "torch==2.13.0" [--keep]

Standard library only. The steps, each timed:

1. ``git archive HEAD`` into a temp folder: the tree a clean clone has (the
   ``editorbot/`` links included, nothing ignored or uncommitted);
2. a build venv with pyproject's ``[build-system] requires`` and ``build``;
   the sdist and the wheel built from the export;
3. the sdist holds real files (no links: the ``editorbot/`` links are
   resolved into it), and the wheel rebuilt from the unpacked sdist has the
   same RECORD (every path, hash and size) as the first;
4. the wheel holds ``editorbot/`` and its dist-info only, and under
   ``editorbot/`` exactly ``__init__.py`` and the committed files of
   engine, training, export, bridge, models and reaper_scripts (the bundled
   model, its sidecar, the Lua scripts, the JS effects, make_index.py);
5. a fresh venv: torch first, by the pin (inside pyproject's range that is
   the CPU build), then the wheel with its declared dependencies only (no
   extras); ``pip check``;
6. from a temp folder outside the repository, no ``PYTHONPATH``, a temp
   feature cache: ``editorbot --version`` names the bundled model with its
   sha256; a 24 s song made with numpy and soundfile in that venv;
   ``analyze``; ``edit`` with the bundled model; ``serve`` (ping, then an
   edit job with the bundled model, then SIGTERM); ``export-model`` of a
   tiny checkpoint of the real architecture and ``edit --model`` with it,
   and through ``$EDITORBOT_MODEL`` (a missing one: one line, exit 2);
   ``reaper install --scripts-dir``; the ReaPack index from the installed
   ``make_index.py``.

Exit 0 when every check holds, 1 on the first that fails (its output
shown), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Committed folders whose files the wheel carries below ``editorbot/``.
PACKAGED = ("engine", "training", "export", "bridge", "models", "reaper_scripts")
#: The files a working install cannot do without, checked by name as well.
REQUIRED = (
    "editorbot/models/default/policy.onnx",
    "editorbot/models/default/policy.json",
    "editorbot/models/beatnet/model_1.npz",
    "editorbot/models/beatnet/model_2.npz",
    "editorbot/models/beatnet/model_3.npz",
    "editorbot/models/beatnet/NOTICE.md",
    "editorbot/reaper_scripts/editorbot/editorbot_auto_edit.lua",
    "editorbot/reaper_scripts/editorbot/editorbot_lib.lua",
    "editorbot/reaper_scripts/editorbot/editorbot_distortion.jsfx",
    "editorbot/reaper_scripts/editorbot/editorbot_width.jsfx",
    "editorbot/reaper_scripts/make_index.py",
)
SONG = """
import sys
import numpy as np
import soundfile as sf

sr, beat_s, n_beats = 22050, 0.5, 48  # 120 bpm, 12 bars of 4
t = np.arange(int(n_beats * beat_s * sr)) / sr
pos = t % beat_s
kick = np.sin(2 * np.pi * 55.0 * pos * (1 + 2 * np.exp(-pos * 30))) * np.exp(-pos * 12)
hat = np.random.default_rng(1).standard_normal(t.size) * np.exp(-((t + beat_s / 2) % beat_s) * 60) * 0.15
root = np.array([220.0, 174.6, 261.6, 196.0])[(t // (4 * beat_s)).astype(int) % 4]
chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1.0, 1.26, 1.5)) * 0.08
y = 0.5 * kick + hat + chord
sf.write(sys.argv[1], np.stack([y, 0.9 * y], axis=1).astype(np.float32), sr, subtype="PCM_16")
"""
CHECKPOINT = """
import sys
from pathlib import Path

import torch
from editorbot.training.config import AgentConfig
from editorbot.training.models.agent import EditAgent
from editorbot.training.ppo import CHECKPOINT_FORMAT, save_checkpoint

torch.manual_seed(0)
config = AgentConfig(window=16, hidden=32, heads=4, layers=2, kernel=7, value_hidden=16, value_heads=2,
                     value_layers=1, history=8, backend="torch")
agent = EditAgent(config)
save_checkpoint(Path(sys.argv[1]), {"format": CHECKPOINT_FORMAT, "agent": agent.state_dict(),
                              "agent_config": agent.config.to_dict(), "update": 0})
"""


class CheckFailed(Exception):
    """A check that does not hold: the message says which and shows what was seen."""


class Timer:
    """Seconds per step, printed as each ends."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.steps: dict[str, float] = {}

    def step(self, name: str, since: float) -> None:
        self.steps[name] = time.monotonic() - since
        print(f"wheel-check: {name:<28} {self.steps[name]:6.1f} s", flush=True)

    def total(self) -> float:
        return time.monotonic() - self.start


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, expect: int = 0,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; CheckFailed (with its output) unless it exits ``expect``."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != expect:
        shown = (proc.stdout + proc.stderr)[-4000:]
        raise CheckFailed(f"{' '.join(map(str, cmd))} exited {proc.returncode}, not {expect}:\n{shown}")
    return proc


def check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def committed_files(folders: tuple[str, ...]) -> list[str]:
    out = run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", "HEAD", "--", *folders])
    return out.stdout.split()


def export_head(dest: Path) -> None:
    """HEAD's tree, as ``git archive`` writes it, unpacked into ``dest``."""
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    tar = dest.parent / "head.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="tar")
    tar.unlink()


def wheel_record(wheel: Path) -> set[str]:
    """RECORD rows (path, sha256, size) of every file but RECORD itself."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        rows = z.read(record).decode().splitlines()
    return {row for row in rows if row and not row.startswith(record + ",")}


def check_sdist(sdist: Path, unpack: Path) -> Path:
    """The sdist holds regular files only (the links resolved); returns its unpacked project folder."""
    with tarfile.open(sdist) as t:
        links = [m.name for m in t.getmembers() if m.issym() or m.islnk()]
        check(not links, f"{sdist.name} holds links, which a rebuild cannot use: {links[:5]}")
        names = t.getnames()
        t.extractall(unpack, filter="data")
    top = {n.split("/")[0] for n in names}
    check(len(top) == 1, f"{sdist.name}: more than one top folder: {sorted(top)}")
    project = unpack / top.pop()
    for needed in ("pyproject.toml", "README.md", "editorbot/__init__.py", "editorbot/models/default/policy.onnx"):
        check((project / needed).is_file(), f"{sdist.name} lacks {needed}")
    return project


def check_wheel(wheel: Path, version: str) -> list[str]:
    """Only ``editorbot/`` and its dist-info; under ``editorbot/`` exactly the committed package files."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
    top = {n.split("/")[0] for n in names}
    check(top == {"editorbot", f"editorbot-{version}.dist-info"}, f"{wheel.name}: top level is {sorted(top)}")
    want = {"editorbot/__init__.py"} | {f"editorbot/{f}" for f in committed_files(PACKAGED)}
    have = {n for n in names if n.startswith("editorbot/")}
    check(have == want, f"{wheel.name}: missing {sorted(want - have)[:10]}, unexpected {sorted(have - want)[:10]}")
    for name in REQUIRED:
        check(name in have, f"{wheel.name} lacks {name}")
    return names


def summary(names: list[str], wheel: Path) -> str:
    counts: dict[str, int] = {}
    for n in names:
        parts = n.split("/")
        key = "/".join(parts[:2]) if parts[0] == "editorbot" and len(parts) > 2 else parts[0]
        counts[key] = counts.get(key, 0) + 1
    listing = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, {len(names)} files ({listing})"


def serve_and_edit(bin_dir: Path, song: Path, work: Path, env: dict[str, str]) -> str:
    """``editorbot serve`` on a free port: ping, an edit job with the bundled model, SIGTERM -> exit 0."""
    log_path = work / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(bin_dir / "editorbot"), "serve", "--port", "0", "--log-format", "json", "--out-dir", str(work / "serve-out"),
             "--allow", str(work)], stderr=log, stdout=subprocess.DEVNULL, cwd=work, env=env,
        )  # fmt: skip
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            for line in log_path.read_text().splitlines():
                if line.startswith("{") and json.loads(line).get("event") == "listening":
                    port = int(json.loads(line)["port"])
            check(proc.poll() is None, f"serve exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        check(port is not None, "serve did not log its port within 60 s")
        send = [str(bin_dir / "editorbot"), "send", "--port", str(port)]
        pong = run([*send, "ping", "7"], cwd=work, env=env).stdout.strip()
        check(pong == "/editorbot/pong 7", f"ping: {pong!r}")
        lines = run([*send, "--timeout", "120", "edit", str(song), "{}"], cwd=work, env=env, timeout=300).stdout.split("\n")
        done = [line for line in lines if line.startswith("/editorbot/done")]
        check(len(done) == 1, f"edit job: {lines[-5:]}")
        plan_path, audio_path = done[0].split()[1:3]
        check(Path(audio_path).is_file() and Path(audio_path).stat().st_size > 0, f"edit job wrote no audio: {done[0]}")
        model = json.loads(Path(plan_path).read_text())["model"]["name"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    check(rc == 0, f"serve exited {rc} after SIGTERM: {log_path.read_text()[-2000:]}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", required=True, metavar="SPEC", help="torch requirement installed first (the Makefile's pin)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and say where it is")
    args = parser.parse_args(argv)
    if not (REPO / ".git").exists():
        print(f"wheel-check: {REPO}: not a git checkout; the check builds from HEAD", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="editorbot-wheel-check-"))
    try:
        checks(args, tmp)
    except (CheckFailed, subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        print(f"wheel-check: FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"wheel-check: kept {tmp}")
        else:
            t = time.monotonic()
            shutil.rmtree(tmp, ignore_errors=True)
            print(f"wheel-check: removed the temp folder in {time.monotonic() - t:.0f} s")
    return 0


def checks(args: argparse.Namespace, tmp: Path) -> None:
    timer = Timer()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    version = project["project"]["version"]
    python = sys.executable

    t = time.monotonic()
    src = tmp / "src"
    export_head(src)
    timer.step("export HEAD", t)

    t = time.monotonic()
    build_venv = tmp / "build-venv"
    run([python, "-m", "venv", str(build_venv)])
    pip = [str(build_venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, "build", *project["build-system"]["requires"]])
    build = [str(build_venv / "bin" / "python"), "-m", "build", "--no-isolation"]
    run([*build, "--sdist", "--wheel", "--outdir", str(tmp / "dist"), str(src)])
    sdist = tmp / "dist" / f"editorbot-{version}.tar.gz"
    wheel = tmp / "dist" / f"editorbot-{version}-py3-none-any.whl"
    check(sdist.is_file() and wheel.is_file(), f"build wrote {sorted(p.name for p in (tmp / 'dist').iterdir())}")
    timer.step("build sdist + wheel", t)

    t = time.monotonic()
    unpacked = check_sdist(sdist, tmp / "sdist")
    run([*build, "--wheel", "--outdir", str(tmp / "dist-from-sdist"), str(unpacked)])
    rebuilt = wheel_record(tmp / "dist-from-sdist" / wheel.name)
    first = wheel_record(wheel)
    check(rebuilt == first, f"the wheel from the sdist differs: only from the sdist {sorted(rebuilt - first)[:5]}, "
                            f"only from the tree {sorted(first - rebuilt)[:5]}")
    names = check_wheel(wheel, version)
    print(f"wheel-check: {summary(names, wheel)}; sdist {sdist.stat().st_size / 1e6:.2f} MB")
    timer.step("sdist rebuild + contents", t)

    t = time.monotonic()
    venv = tmp / "venv"
    bin_dir = venv / "bin"
    run([python, "-m", "venv", str(venv)])
    # --no-compile: byte-compiling all of torch's and scipy's modules doubles the install on two
    # cores; the few modules the commands import are compiled when first imported.
    install = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    run([*install, args.torch], timeout=1200)
    timer.step(f"install {args.torch}", t)
    t = time.monotonic()
    run([*install, str(wheel)], timeout=1200)
    run([str(bin_dir / "python"), "-m", "pip", "check"])
    timer.step("install the wheel + deps", t)

    t = time.monotonic()
    work = tmp / "run"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "EDITORBOT_MODEL")}
    env["EDITORBOT_CACHE"] = str(tmp / "cache")
    editorbot = str(bin_dir / "editorbot")
    where = run([str(bin_dir / "python"), "-c", "import editorbot; print(editorbot.__file__)"], cwd=work, env=env).stdout.strip()
    check(where.startswith(str(venv)), f"editorbot imports from {where}, not the venv")
    bundled = REPO / "models" / "default" / "policy.onnx"
    bundled_name = json.loads(bundled.with_suffix(".json").read_text())["name"]
    bundled_sha = hashlib.sha256(bundled.read_bytes()).hexdigest()
    shown = run([editorbot, "--version"], cwd=work, env=env).stdout
    check(shown.startswith(f"editorbot {version}\nmodel {bundled_name} sha256 {bundled_sha} ({venv}"), f"--version: {shown!r}")

    song = work / "song.wav"
    run([str(bin_dir / "python"), "-c", SONG, str(song)], cwd=work, env=env)
    run([editorbot, "analyze", str(song), "--json", "song.analysis.json", "-q"], cwd=work, env=env)
    found = json.loads((work / "song.analysis.json").read_text())["summary"]
    check(abs(found["tempo_bpm"] - 120.0) < 2.0 and found["n_beats"] >= 40, f"analyze: {found['tempo_bpm']} BPM, {found['n_beats']} beats")
    run([editorbot, "edit", str(song), "-o", "edit.wav", "--export", "rpp,tsv", "-q"], cwd=work, env=env)
    model = json.loads((work / "edit.plan.json").read_text())["model"]
    check(model["name"] == bundled_name and model["sha256"] == bundled_sha, f"edit used {model}")
    check((work / "edit.wav").stat().st_size > 0 and (work / "edit.rpp").is_file(), "edit wrote no audio or no export")
    timer.step("version, analyze, edit", t)

    t = time.monotonic()
    check(serve_and_edit(bin_dir, song, work, env) == bundled_name, "the serve edit job did not use the bundled model")
    timer.step("serve: ping, edit job, stop", t)

    t = time.monotonic()
    run([str(bin_dir / "python"), "-c", CHECKPOINT, "tiny.pt"], cwd=work, env=env)
    run([editorbot, "export-model", "tiny.pt", "-o", "tiny.onnx", "--name", "wheel-check", "-q"], cwd=work, env=env)
    check((work / "tiny.onnx").is_file() and (work / "tiny.json").is_file(), "export-model wrote no model or no sidecar")
    run([editorbot, "edit", str(song), "-o", "tiny.wav", "--model", "tiny.onnx", "-q"], cwd=work, env=env)
    check(json.loads((work / "tiny.plan.json").read_text())["model"]["name"] == "wheel-check", "edit --model did not use it")
    run([editorbot, "edit", str(song), "-o", "env.wav", "-q"], cwd=work, env={**env, "EDITORBOT_MODEL": "tiny.onnx"})
    check(json.loads((work / "env.plan.json").read_text())["model"]["name"] == "wheel-check", "EDITORBOT_MODEL was not used")
    bad = run([editorbot, "edit", str(song), "-o", "bad.wav"], cwd=work, env={**env, "EDITORBOT_MODEL": "none.onnx"}, expect=2)
    check(bad.stderr == "editorbot: EDITORBOT_MODEL=none.onnx: no such model file\n", f"bad EDITORBOT_MODEL: {bad.stderr!r}")
    timer.step("export-model, edit --model", t)

    t = time.monotonic()
    run([editorbot, "reaper", "install", "--scripts-dir", "reaper"], cwd=work, env=env)
    for rel in committed_files(("reaper_scripts/editorbot",)):
        installed = work / "reaper" / Path(rel).name
        check(installed.is_file() and installed.read_bytes() == (REPO / rel).read_bytes(), f"reaper install: {installed}")
    listed = run([editorbot, "reaper", "install", "--print"], cwd=work, env=env).stdout.split()
    check(len(listed) == 7 and all(p.startswith(str(venv)) for p in listed), f"reaper install --print: {listed}")
    base = (Path(listed[-1]).parent.as_uri()) + "/"
    run([str(bin_dir / "python"), listed[-1], "--base", base, "--out", "index.xml"], cwd=work, env=env)
    check("editorbot_auto_edit.lua" in (work / "index.xml").read_text(), "the ReaPack index names no script")
    timer.step("reaper install, ReaPack index", t)

    print(f"wheel-check: ok in {timer.total():.0f} s (installs {sum(v for k, v in timer.steps.items() if k.startswith('install')):.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
