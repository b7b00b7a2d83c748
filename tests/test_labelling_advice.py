"""`ecolens adapt` says when a class has enough labelled frames to run (8) but too few for a
steady threshold (40): measured in docs/field-adaptation.md, 22 plastic frames gave 0.76-0.80 on
the same hidden frames from run to run, 39 gave 0.85."""

from __future__ import annotations

import numpy as np
from ecolens.train.adapt.frames import STEADY_PER_CLASS, labelling_advice

LABELS = ("non_plastic", "plastic")


def frames(non_plastic: int, plastic: int) -> np.ndarray:
    return np.array([0] * non_plastic + [1] * plastic)


def test_few_plastic_frames_are_named() -> None:
    advice = labelling_advice(frames(112, 22), LABELS)
    assert advice is not None
    assert "only 22 plastic frames labelled" in advice and "How many frames to label" in advice


def test_both_classes_named_when_both_are_short() -> None:
    advice = labelling_advice(frames(30, 12), LABELS)
    assert advice is not None and "30 non_plastic and 12 plastic" in advice


def test_enough_of_each_class_says_nothing() -> None:
    assert labelling_advice(frames(222, STEADY_PER_CLASS), LABELS) is None
    assert labelling_advice(frames(222, STEADY_PER_CLASS - 1), LABELS) is not None
