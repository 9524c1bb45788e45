"""engine.progress: the stage bar names each stage on a terminal and is silent with quiet."""

from __future__ import annotations

import io
import sys

import pytest

from editorbot.engine.progress import stage_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stage_bar_counts_and_names_the_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    shown = _Terminal()
    monkeypatch.setattr(sys, "stderr", shown)
    with stage_bar(["analysing", "rendering"], desc="song.wav") as stage:
        stage("analysing")
        stage("rendering")
    assert "song.wav: 0/2, analysing" in shown.getvalue()
    assert "song.wav: 1/2, rendering" in shown.getvalue()
    silent = _Terminal()
    monkeypatch.setattr(sys, "stderr", silent)
    with stage_bar(["analysing"], desc="song.wav", quiet=True) as stage:
        stage("analysing")
    assert silent.getvalue() == ""
