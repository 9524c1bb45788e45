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


def test_one_beat_keep_walks_visit_every_keep_beat_and_keep_the_edits() -> None:
    episodes = synthetic_episodes(2, n_beats=60, seed=5)
    config = AgentConfig(**NET, window=9, history=4)
    labelled = bc_examples(episodes, config)
    stepwise = bc_examples(episodes, config, keep_size=0)
    keep = stepwise.actions[:, 0] == 0
    assert np.all(stepwise.actions[keep, 1] == 0)
    assert len(stepwise) > len(labelled)
    # the edits are the labels' own: the same (type, size, amount) steps, in the same order
    edits = labelled.actions[labelled.actions[:, 0] != 0]
    np.testing.assert_array_equal(stepwise.actions[~keep], edits)


def test_type_balance_lifts_rare_types_and_keeps_the_mean_weight() -> None:
    data = bc_examples(synthetic_episodes(2, n_beats=60, seed=5), AgentConfig(**NET, window=9, history=4), keep_size=0)
    assert data.type_balanced(0.0) is data
    balanced = data.type_balanced(0.5)
    types = data.actions[:, 0]
    counts = np.bincount(types)
    rare, common = int(np.argmin(np.where(counts > 0, counts, len(data) + 1))), int(np.argmax(counts))
    assert rare != common
    assert balanced.confidence[types == rare].mean() > balanced.confidence[types == common].mean()
    ratio = balanced.confidence / data.confidence
    assert ratio.mean() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(ratio[types == rare][0] / ratio[types == common][0],
                               (counts[common] / counts[rare]) ** 0.5, rtol=1e-5)


def test_type_balance_power_is_checked() -> None:
    from editorbot.training.config import PPOConfig

    with pytest.raises(ValueError, match="bc_balance"):
        PPOConfig(bc_balance=1.5)


def test_label_type_is_each_window_beats_label_and_minus_one_past_the_song() -> None:
    episodes = synthetic_episodes(2, n_beats=40, seed=6)
    config = AgentConfig(**NET, window=9, history=4)
    data = bc_examples(episodes, config, keep_size=0)
    w, pad = config.window, config.window // 2
    assert data.label_type.shape == (len(data), w) and data.label_type.dtype == np.int64
    for i in range(len(data)):
        e = episodes[int(data.pair_ids[i])]
        cursor = round(float(data.position[i, pad, 0]) * e.n_beats)  # position column 0: beat / n_beats
        beats = np.arange(cursor - pad, cursor - pad + w)
        inside = (beats >= 0) & (beats < e.n_beats)
        np.testing.assert_array_equal(inside, ~data.padding_mask[i])
        np.testing.assert_array_equal(data.label_type[i, inside], e.labels[beats[inside], 0])
        assert np.all(data.label_type[i, ~inside] == -1)
    assert np.array_equal(data.label_type[:, pad], data.actions[:, 0])  # the cursor's label is the decision's


def test_a_file_without_label_type_loads_with_every_beat_unknown(tmp_path) -> None:
    from editorbot.training.bc import BCData

    data = bc_examples(synthetic_episodes(1, n_beats=24, seed=4), AgentConfig(**NET, window=9, history=4))
    path = data.save(tmp_path / "new.npz")
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if k != "label_type"}
    np.savez_compressed(tmp_path / "old.npz", **old)
    loaded = BCData.load(tmp_path / "old.npz")
    assert loaded.label_type.shape == data.label_type.shape and np.all(loaded.label_type == -1)
    np.testing.assert_array_equal(loaded.actions, data.actions)
    np.testing.assert_array_equal(BCData.load(path).label_type, data.label_type)
    loaded.fitted(AgentConfig(**NET, window=5, history=4))  # crops and checks the filled array too
    with np.load(path) as z:
        broken = {k: z[k] for k in z.files if k != "phrase"}
    np.savez_compressed(tmp_path / "broken.npz", **broken)
    with pytest.raises(BadInput, match="missing arrays: phrase"):
        BCData.load(tmp_path / "broken.npz")
