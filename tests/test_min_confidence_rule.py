"""`ecolens train`'s recommended `min_confidence`: chosen on the balanced accuracy of the answers a
threshold keeps, because plain accuracy is carried by the non-plastic majority (83 % of TrashNet)."""

from __future__ import annotations

import numpy as np
from ecolens.train.calibration import coverage_table, softmax
from ecolens.train.report import evaluation_report


def logits_for(confidence: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Two-class logits whose softmax gives ``confidence`` to class ``predicted``."""
    margin = np.log(confidence / (1.0 - confidence))
    logits = np.zeros((len(confidence), 2))
    logits[np.arange(len(confidence)), predicted] = margin
    return logits


def majority_carried_set() -> tuple[np.ndarray, np.ndarray]:
    """900 non-plastic items, all right at confidence 0.95; 100 plastic items: 40 right at 0.95,
    60 called non-plastic at 0.6. Plain accuracy 0.94 at every threshold up to 0.6, balanced 0.70;
    from 0.7 on only confident answers are kept: balanced 1.0."""
    labels = np.array([0] * 900 + [1] * 100)
    predicted = np.array([0] * 900 + [1] * 40 + [0] * 60)
    confidence = np.array([0.95] * 940 + [0.6] * 60)
    return logits_for(confidence, predicted), labels


def test_coverage_reports_balanced_accuracy_of_what_is_kept() -> None:
    logits, labels = majority_carried_set()
    rows = {r["min_confidence"]: r for r in coverage_table(softmax(logits), labels, (0.5, 0.7))}
    assert rows[0.5]["accuracy_kept"] == 0.94
    assert rows[0.5]["balanced_accuracy_kept"] == (1.0 + 0.4) / 2
    assert rows[0.7]["kept"] == 0.94
    assert rows[0.7]["balanced_accuracy_kept"] == 1.0


def test_recommendation_is_not_carried_by_the_majority_class() -> None:
    logits, labels = majority_carried_set()
    variants = {"validation": logits, "dark_chamber": logits}
    report = evaluation_report(variants, labels, temperature=1.0)
    # plain accuracy (0.94) would have recommended 0.5, where 60 % of plastic is missed
    assert report["calibration"]["recommended_min_confidence"] == 0.7


def test_no_threshold_good_enough_recommends_the_strictest_default() -> None:
    labels = np.array([0] * 50 + [1] * 50)
    confidence = np.full(100, 0.97)
    predicted = np.array([0] * 50 + [0] * 30 + [1] * 20)  # 60 % of plastic missed even when sure
    logits = logits_for(confidence, predicted)
    report = evaluation_report({"validation": logits, "clutter": logits}, labels, temperature=1.0)
    assert report["calibration"]["recommended_min_confidence"] == 0.9
