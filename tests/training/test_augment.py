"""training.augment: rare action types lifted to a minimum share with exact labels."""

from __future__ import annotations

import os

import numpy as np
import pytest

from editorbot.engine import actions as vocab
from editorbot.training import augment as A
from editorbot.training.labels.dataset import build_dataset
from tests.training.labels.pairs import STRUCT_WALK, make_pair


@pytest.fixture(scope="module")
def labels_npz(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("aug_pairs"))
    make_pair(folder, "one", 21, STRUCT_WALK)
    out = os.path.join(folder, "bc_rich.npz")
    build_dataset(folder, out, cache=False, quiet=True)
    return out


def test_rare_walk_is_exact_and_covers_the_song():
    rng = np.random.default_rng(0)
    for rare in ("STUTTER", "DISTORTION", "CUT"):
        walk = A.rare_walk(37, rare, rng)
        lab = A.walk_labels(walk, 37)
        assert sum(vocab.SIZE_BEATS[vocab.size_index(s)] for _, s, _ in walk) == 37
        assert (lab[:, 0] == vocab.type_index(rare)).any()
        assert np.all(vocab.AMOUNT_MASK[lab[:, 0], lab[:, 2]])


def test_augment_lifts_every_type_to_min_share(labels_npz, tmp_path):
    from editorbot.training.bc import BCData
    from editorbot.training.config import AgentConfig

    out = tmp_path / "bc_aug.npz"
    pairs = tmp_path / "aug_pairs"
    report = A.augment_file(labels_npz, out, min_share=0.03, seed=1, pairs_out=pairs, cache=False)
    assert report.n_added > 0 and report.n_after == report.n_before + report.n_added
    assert min(report.before.values()) < 0.03
    assert min(report.after.values()) >= 0.03 - 1e-9, report.after
    assert abs(sum(report.after.values()) - 1.0) < 1e-6
    bc = BCData.load(out)
    bc.check(AgentConfig())
    with np.load(out, allow_pickle=False) as z:
        aug = z["augmented"]
        assert aug.sum() == report.n_added
        assert np.all(z["confidence"][aug] == 1.0)
        assert len(z["pair_names"]) > len(z["raw_paths"])
    # rendered pairs: one per augmented walk, each with its plan
    edits = sorted(os.listdir(pairs / "desired_output"))
    assert edits and len(edits) == len(os.listdir(pairs / "labels"))
    with pytest.raises(Exception, match="is the input file"):  # BadInput
        A.augment_file(labels_npz, labels_npz)
