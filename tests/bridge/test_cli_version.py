"""``editorbot --version``: the version and the bundled model's name (its sidecar's) and sha256
(of the file), without importing torch; ``$EDITORBOT_MODEL`` is named when set."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import editorbot
from editorbot.bridge.cli import main
from editorbot.export import runtime

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def _version(capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    return capsys.readouterr().out.splitlines()


def test_version_names_the_bundled_model(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITORBOT_MODEL", raising=False)
    onnx = REPO / "models" / "default" / "policy.onnx"
    name = json.loads(onnx.with_suffix(".json").read_text())["name"]
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
    lines = _version(capsys)
    assert lines[0] == f"editorbot {editorbot.__version__}"
    assert lines[1].startswith(f"model {name} sha256 {digest} (") and len(lines) == 2
    monkeypatch.setenv("EDITORBOT_MODEL", "/somewhere/mine.onnx")
    assert _version(capsys)[2] == "EDITORBOT_MODEL=/somewhere/mine.onnx (used instead of the bundled model)"


def test_version_reads_the_files_it_finds(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The sha256 is computed, not copied from the sidecar; a missing model is said, not a crash."""
    monkeypatch.delenv("EDITORBOT_MODEL", raising=False)
    model = tmp_path / "policy.onnx"
    model.write_bytes(b"other bytes")
    (tmp_path / "policy.json").write_text(json.dumps({"name": "mine", "sha256": "0" * 64}))
    monkeypatch.setattr(runtime, "DEFAULT_MODEL", model)
    assert _version(capsys)[1] == f"model mine sha256 {hashlib.sha256(b'other bytes').hexdigest()} ({model})"
    monkeypatch.setattr(runtime, "DEFAULT_MODEL", tmp_path / "gone.onnx")
    assert _version(capsys)[1] == f"model none: {tmp_path / 'gone.onnx'} is missing"


def test_version_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from editorbot.bridge.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as stop:\n    assert stop.code == 0\n"
        "heavy = sorted(m for m in ('torch', 'librosa', 'onnxruntime', 'onnx') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("editorbot ")
