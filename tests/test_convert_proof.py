"""The accuracy proof's verdict on answers whose truth we know: it must fail a model that
answers one class for nearly every photo of a mixed set, even when a few right answers of
the other class lift its balanced accuracy over the floor (a wrong input range does this)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ecolens.convert.validate import EvalSet, proof

LABELS = ("non_plastic", "plastic")


def answers(predicted: list[int]) -> np.ndarray:
    """Confident two-class probabilities for these predicted indices."""
    probs = np.full((len(predicted), 2), 0.02, dtype=np.float32)
    probs[np.arange(len(predicted)), predicted] = 0.98
    return probs


def evalset(truth: list[str]) -> EvalSet:
    return EvalSet(paths=[Path(f"{i}.jpg") for i in range(len(truth))], rgbs=[], truth=list(truth))


def test_nearly_one_answer_on_a_mixed_set_fails_though_balanced_accuracy_clears_the_floor() -> None:
    truth = ["non_plastic"] * 50 + ["plastic"] * 50
    # Every non-plastic right, 14 of 50 plastics found: balanced 0.64 > 0.55, answers 86 % one class.
    predicted = [0] * 50 + [1] * 14 + [0] * 36
    assert proof(answers(predicted), evalset(truth), LABELS, "plastic")["failure"] is None
    # 2 plastics found: balanced 0.52, fails on the floor alone.
    predicted = [0] * 50 + [1] * 2 + [0] * 48
    assert (
        "no better than always answering the majority class"
        in proof(answers(predicted), evalset(truth), LABELS, "plastic")["failure"]
    )
    # 8 of 60 plastics found among 40 non-plastics: balanced 0.57 > 0.55, yet 92 % one answer.
    truth = ["non_plastic"] * 40 + ["plastic"] * 60
    predicted = [0] * 40 + [1] * 8 + [0] * 52
    verdict = proof(answers(predicted), evalset(truth), LABELS, "plastic")
    assert verdict["balanced_accuracy"] > verdict["required_balanced_accuracy"]
    assert "answers 'non_plastic' for 92%" in verdict["failure"]


def test_a_set_that_is_itself_one_class_is_not_called_collapsed() -> None:
    truth = ["non_plastic"] * 95 + ["plastic"] * 5
    predicted = [0] * 95 + [1] * 4 + [0]
    assert proof(answers(predicted), evalset(truth), LABELS, "plastic")["failure"] is None
