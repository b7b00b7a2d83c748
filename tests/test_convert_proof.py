"""The accuracy proof's verdict on answers whose truth we know: it must fail a model that
answers one class for nearly every photo of a mixed set, even when a few right answers of
the other class lift its balanced accuracy over the floor (a wrong input range does this),
and pass a weak model that merely leans towards the majority class."""

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


def verdict(truth: list[str], predicted: list[int]) -> dict:
    evalset = EvalSet(paths=[Path(f"{i}.jpg") for i in range(len(truth))], rgbs=[], truth=list(truth))
    return proof(answers(predicted), evalset, LABELS, "plastic")


def test_one_answer_for_nearly_every_photo_fails_though_balanced_accuracy_clears_the_floor() -> None:
    truth = ["non_plastic"] * 85 + ["plastic"] * 15
    # 3 of 15 plastics found, every non-plastic right: balanced 0.60 > 0.55, 97 % one answer.
    result = verdict(truth, [0] * 85 + [1] * 3 + [0] * 12)
    assert result["balanced_accuracy"] > result["required_balanced_accuracy"]
    assert "no better than always answering the majority class" in result["failure"]
    assert "answers 'non_plastic' for 97%" in result["failure"]


def test_a_weak_model_leaning_to_the_majority_passes() -> None:
    truth = ["non_plastic"] * 85 + ["plastic"] * 15
    # 6 of 15 plastics found, 3 false alarms: 91 % non-plastic answers, balanced 0.68.
    assert verdict(truth, [0] * 82 + [1] * 3 + [1] * 6 + [0] * 9)["failure"] is None


def test_below_the_floor_fails() -> None:
    truth = ["non_plastic"] * 50 + ["plastic"] * 50
    # 2 of 50 plastics found: balanced 0.52.
    assert "no better than always answering" in verdict(truth, [0] * 50 + [1] * 2 + [0] * 48)["failure"]


def test_a_set_that_is_itself_one_class_is_not_called_collapsed() -> None:
    truth = ["non_plastic"] * 95 + ["plastic"] * 5
    assert verdict(truth, [0] * 95 + [1] * 4 + [0])["failure"] is None


def test_one_class_present_reports_recall_and_never_refuses() -> None:
    """Four labels, photos of only one of them: a floor of 1/1 + 0.05 nothing could pass."""
    labels = ("cardboard", "plastic", "glass", "metal")
    evalset = EvalSet(paths=[Path(f"{i}.jpg") for i in range(20)], rgbs=[], truth=["plastic"] * 20)
    probs = np.full((20, 4), 0.02, dtype=np.float32)
    probs[:15, 1] = 0.94
    probs[15:, 2] = 0.94
    result = proof(probs, evalset, labels, "plastic")
    assert result["failure"] is None
    assert result["kind"] == "labelled, one class (plastic)" and result["recall"] == 0.75


def test_a_confident_model_is_not_called_collapsed() -> None:
    """Varied answers at ~1.0 confidence without labels: a well-trained model, not a broken one."""
    evalset = EvalSet(paths=[Path(f"{i}.jpg") for i in range(40)], rgbs=[], truth=[None] * 40)
    probs = np.tile(np.array([[0.9999, 0.0001], [0.0001, 0.9999]], dtype=np.float32), (20, 1))
    assert proof(probs, evalset, LABELS, "plastic")["failure"] is None


def test_printed_agreement_never_contradicts_the_verdict() -> None:
    from ecolens.convert.metrics import percent

    assert percent(0.97979, 0.98) == "97.98%"  # never "98.0%" below a 98 % floor
    assert percent(0.9799999, 0.98) == "97.9999%"
    assert percent(0.985, 0.98) == "98.5%"
    assert percent(0.98, 0.98) == "98.0%"
