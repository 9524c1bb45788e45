"""bench/relational_training.py: variant checkpoint folders and the choice of policies."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.relational_training import main, variant_tag


def _args(**kw: object) -> argparse.Namespace:
    base = {"aux_label_weight": 0.0, "hidden": 128, "bc_epochs": 10, "bc_lr": 1e-3, "seed": 1}
    base.update(kw)
    return argparse.Namespace(**base)


def test_variant_tag_names_each_flag_apart_from_the_first_recipe() -> None:
    """The first recipe keeps the bare folders; earlier variants keep their names; new flags add a part each."""
    assert variant_tag(_args()) == ("", "")
    assert variant_tag(_args(aux_label_weight=0.3, seed=2))[0] == "_label0.3_s2"
    tag, name = variant_tag(_args(aux_label_weight=0.3, hidden=256, bc_epochs=20, bc_lr=5e-4))
    assert tag == "_label0.3_h256_e20_lr0.0005"
    assert name == ", label head 0.3, width 256, 20 passes, BC rate 0.0005"
    assert len({variant_tag(_args(**kw))[0] for kw in ({"hidden": 256}, {"bc_epochs": 20}, {"bc_lr": 3e-4})}) == 3


def test_unknown_policy_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--policies accepts synthetic and mixed only; a wrong name exits 2 and writes nothing."""
    assert main(["--policies", "mixed,finetune", "--work", str(tmp_path / "w")]) == 2
    assert "choose among synthetic, mixed" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
