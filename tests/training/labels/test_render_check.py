"""training.labels.render_check: the inferred plan renders like the edit."""

from __future__ import annotations

from editorbot.training.labels.infer import PairLabels
from editorbot.training.labels.render_check import render_check


def test_inferred_plan_renders_like_the_edit(struct_result: PairLabels) -> None:
    d_plan, d_raw = render_check(struct_result)
    assert d_plan <= 0.2 * d_raw, (d_plan, d_raw)
