"""Settings every test shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _default_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test analyses with the default (learned) tracker unless it asks otherwise,
    whatever the caller's shell exports."""
    monkeypatch.delenv("EDITORBOT_TRACKER", raising=False)
