"""adapt's guard against a lucky gain: the paired bootstrap bound of a balanced accuracy gain, on
constructed answers whose chance and real gains are known."""

from __future__ import annotations

import numpy as np
from ecolens.convert.metrics import balanced_accuracy, balanced_accuracy_gain_bound


def test_a_real_gain_keeps_a_positive_bound() -> None:
    truth = np.array([0] * 80 + [1] * 20)
    before = np.array([0] * 80 + [0] * 14 + [1] * 6)  # plastic recall 0.3
    after = np.array([0] * 78 + [1] * 2 + [1] * 16 + [0] * 4)  # 0.8, two more false plastic
    gain = balanced_accuracy(truth, after) - balanced_accuracy(truth, before)
    bound = balanced_accuracy_gain_bound(truth, before, after)
    assert gain > 0.2
    assert 0.1 < bound < gain


def test_a_gain_of_a_few_lucky_items_is_not_trusted() -> None:
    """58 frames, 12 plastic: two plastic items more right, one plastic and one non-plastic
    less is +0.03 of balanced accuracy, above the 0.02 asked for, and within what a few items
    moving by chance give on such a split (noise labels gained +0.049 there)."""
    rng = np.random.default_rng(3)
    truth = np.array([0] * 46 + [1] * 12)
    before = np.where(rng.random(58) < 0.3, 1 - truth, truth)
    after = before.copy()
    after[np.flatnonzero((truth == 1) & (before != truth))[:2]] = 1
    wrongs = np.flatnonzero((truth == 1) & (before == truth))[:1]
    after[wrongs] = 0
    after[np.flatnonzero((truth == 0) & (before == truth))[:1]] = 1
    gain = balanced_accuracy(truth, after) - balanced_accuracy(truth, before)
    assert 0.02 < gain < 0.1
    assert balanced_accuracy_gain_bound(truth, before, after) <= 0


def test_the_same_answers_bound_zero() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1])
    answers = np.array([0, 1, 0, 1, 0, 1])
    assert balanced_accuracy_gain_bound(truth, answers, answers) == 0.0
