"""BC examples made for a bigger observation serve a smaller model exactly (``BCData.fitted``)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from editorbot.engine.errors import BadInput
from editorbot.training.bc import bc_examples
from editorbot.training.config import AgentConfig
from editorbot.training.dataset import synthetic_episodes

NET = {"hidden": 32, "heads": 2, "layers": 1, "kernel": 5, "value_hidden": 16, "value_heads": 2}


def test_wider_examples_cropped_equal_examples_made_for_the_model() -> None:
    episodes = synthetic_episodes(2, n_beats=40, seed=3)
    small = AgentConfig(**NET, window=9, history=4, n_pos_feats=2)
    wide = bc_examples(episodes, AgentConfig(**NET, window=21, history=8))
    made = bc_examples(episodes, small)
    fitted = wide.fitted(small)
    assert len(made) >= 10
    for f in fields(made):
        np.testing.assert_array_equal(getattr(fitted, f.name), getattr(made, f.name), err_msg=f.name)
    assert wide.fitted(AgentConfig(**NET, window=21, history=8)).window == 21


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (AgentConfig(**NET, window=33, history=8), "9-beat window, the model reads 33"),
        (AgentConfig(**NET, window=8, history=8), "9-beat window, the model reads 8"),
        (AgentConfig(**NET, window=9, history=16), "8 history beats"),
    ],
)
def test_examples_narrower_than_the_model_are_refused(config: AgentConfig, message: str) -> None:
    data = bc_examples(synthetic_episodes(1, n_beats=24, seed=4), AgentConfig(**NET, window=9, history=8))
    with pytest.raises(BadInput, match=message):
        data.fitted(config, "--bc-mixed")
