"""One import package: a foreign top-level ``export`` module and ``engine`` package, first on the
path, neither shadow editorbot nor are shadowed by it (docs/design.md section 1).

Each check runs in a fresh interpreter whose ``PYTHONPATH`` is a folder holding
``export.py`` and ``engine/__init__.py`` of another distribution, then this
checkout: every editorbot module imports, ``editorbot --version`` and ``editorbot
analyze`` work, and ``import export`` / ``import engine`` still give the foreign
ones, before and after editorbot has loaded all of its own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, pkgutil, sys
import engine, export
assert (export.FOREIGN, engine.FOREIGN) == ("export.py", "engine/__init__.py"), "shadowed before"
import editorbot
names = [m.name for m in pkgutil.walk_packages(editorbot.__path__, "editorbot.") if not m.name.endswith("__main__")]
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)
import engine, export
assert sys.modules["export"].FOREIGN == "export.py" and sys.modules["engine"].FOREIGN == "engine/__init__.py", "shadowed after"
assert not any(m.split(".")[0] in ("training", "bridge") for m in sys.modules), "a bare top-level name was imported"
print(len(names))
"""


@pytest.fixture
def foreign_env(tmp_path: Path) -> dict[str, str]:
    """Environment whose path starts with a foreign ``export`` module and ``engine`` package."""
    foreign = tmp_path / "foreign"
    (foreign / "engine").mkdir(parents=True)
    (foreign / "export.py").write_text('FOREIGN = "export.py"\n')
    (foreign / "engine" / "__init__.py").write_text('FOREIGN = "engine/__init__.py"\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(foreign), str(REPO)]), "EDITORBOT_CACHE": str(tmp_path / "cache")}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=240, env=env, cwd=cwd)


def test_every_module_imports_beside_foreign_top_level_names(foreign_env: dict[str, str], tmp_path: Path) -> None:
    proc = _run(["-c", IMPORT_ALL, str(REPO / "editorbot")], foreign_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) > 100  # every module of the four packages, not a handful


def test_commands_run_beside_foreign_top_level_names(foreign_env: dict[str, str], tmp_path: Path) -> None:
    proc = _run(["-m", "editorbot.bridge", "--version"], foreign_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("editorbot ") and "sha256" in proc.stdout

    sr, beat_s = 22_050, 0.5  # 8 s at 120 bpm: a click on every beat over a tone
    t = np.arange(8 * sr) / sr
    mono = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.5 * np.exp(-(t % beat_s) * 40.0) * np.sin(2 * np.pi * 1000.0 * t)
    song = tmp_path / "song.wav"
    sf.write(song, mono.astype(np.float32), sr)
    proc = _run(["-m", "editorbot.bridge", "analyze", str(song), "--json", str(tmp_path / "a.json"), "-q"], foreign_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "a.json").read_text())["summary"]
    assert abs(summary["tempo_bpm"] - 120.0) < 2.0

    proc = _run(["-m", "editorbot.bridge", "analyze", str(tmp_path / "missing.wav")], foreign_env, tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
