"""Fixtures shared by the tests of ``training.labels``: two pairs and one inference, made once per package."""

from __future__ import annotations

import pytest

from editorbot.training.labels.infer import PairLabels, infer_pair
from tests.training.labels.pairs import EFFECT_WALK, STRUCT_WALK, make_pair


@pytest.fixture(scope="package")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A pair directory with ``struct`` (every structural type) and ``fx`` (effects) pairs."""
    folder = str(tmp_path_factory.mktemp("pairs"))
    return {
        "dir": folder,
        "struct": make_pair(folder, "struct", 11, STRUCT_WALK),
        "fx": make_pair(folder, "fx", 12, EFFECT_WALK),
    }


@pytest.fixture(scope="package")
def struct_result(corpus: dict) -> PairLabels:
    """The inferred labels of the ``struct`` pair."""
    p = corpus["struct"]
    return infer_pair(p["raw"], p["edit"], name="struct", cache=False)
