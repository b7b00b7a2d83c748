"""Whether `ecolens adapt` may write its model: base and adapted compared on the held-out frames
and base images, and the rule (a gain of at least ``min_gain`` that is not chance, and at most
``max_base_drop`` forgotten on the base domain) that refuses with :class:`NotBetter` otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ecolens.convert.labels import POSITIVE_LABEL
from ecolens.convert.metrics import balanced_accuracy_gain_bound, classification_metrics
from ecolens.core.errors import EcoLensError
from ecolens.train.adapt.fit import SiteHead, softmax
from ecolens.train.adapt.options import AdaptOptions
from ecolens.train.calibration import expected_calibration_error


class NotBetter(EcoLensError):
    """The adapted model does not beat the base model on the held-out frames: nothing written."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def evaluate(probabilities: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    truth = [labels[i] for i in y]
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    metrics = classification_metrics(truth, predicted, labels, POSITIVE_LABEL)
    return {
        "n": metrics["n"],
        "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "plastic_f1": round(metrics["f1"], 4),
        "ece": round(expected_calibration_error(probabilities, y), 4),
        "confusion_matrix": metrics["confusion_matrix"],
    }


@dataclass(frozen=True)
class HeldOut:
    """Trunk features and labels of held-out images: the site's frames or the base images."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """The report's comparison part, and the unrounded figures the rule decides on."""

    scores: dict[str, Any]
    gain: float
    drop: float
    gain_bound: float


def compare(
    fitted: SiteHead, w0: np.ndarray, b0: np.ndarray, field: HeldOut, base: HeldOut, labels: tuple[str, ...]
) -> Comparison:
    """Base (``w0``, ``b0``) and adapted model on the held-out frames and base images, what the
    fit chose and how open its gate is on each."""
    held = {"base": softmax(field.x @ w0 + b0), "adapted": softmax(fitted.logits(field.x, w0, b0))}
    base_images_held = {
        "base": softmax(base.x @ w0 + b0),
        "adapted": softmax(fitted.logits(base.x, w0, b0)),
    }
    scores: dict[str, Any] = {
        "field_held_out": {name: evaluate(p, field.y, labels) for name, p in held.items()},
        "base_held_out": {name: evaluate(p, base.y, labels) for name, p in base_images_held.items()},
        "fitted": {
            # one fit per (base share, regularisation) pair, averaged
            "regularisation": list(fitted.chosen.strengths),
            "base_share": list(fitted.chosen.base_shares),
            "positive_logit_shift": round(fitted.chosen.shift, 4),
            "temperature": round(fitted.chosen.temperature, 4),
            # how open the site gate is: ~1 on the site's frames, ~0 on the base domain
            "gate_mean": {
                "field_held_out": round(float(fitted.gate(field.x).mean()), 4),
                "base_held_out": round(float(fitted.gate(base.x).mean()), 4),
            },
        },
    }
    field_scores, base_scores = scores["field_held_out"], scores["base_held_out"]
    gain = field_scores["adapted"]["balanced_accuracy"] - field_scores["base"]["balanced_accuracy"]
    drop = base_scores["base"]["balanced_accuracy"] - base_scores["adapted"]["balanced_accuracy"]
    # a gain on a few dozen frames can be luck: how low it is in 1 of 10 resamplings of them
    gain_bound = balanced_accuracy_gain_bound(
        field.y, held["base"].argmax(axis=1), held["adapted"].argmax(axis=1)
    )
    scores["gain"], scores["base_drop"] = round(gain, 4), round(drop, 4)
    scores["gain_lower_bound"] = round(gain_bound, 4)
    return Comparison(scores, gain, drop, gain_bound)


def judge(report: dict[str, Any], comparison: Comparison, options: AdaptOptions) -> None:
    """Raise :class:`NotBetter` (the report marked not written) unless the adapted model may be
    written: it gains enough on the held-out frames, not by chance, and keeps the base domain."""
    field_scores, base_scores = report["field_held_out"], report["base_held_out"]
    held_out = field_scores["base"]["n"]
    before_after = (
        f"balanced accuracy {field_scores['base']['balanced_accuracy']:.3f} -> "
        f"{field_scores['adapted']['balanced_accuracy']:.3f}"
    )
    if comparison.gain < options.min_gain:
        report["written"] = False
        raise NotBetter(
            f"adapted model is not better on the {held_out} held-out frames: {before_after} "
            f"(needs +{options.min_gain:.2f}); nothing written",
            report,
        )
    if options.min_gain > 0 and comparison.gain_bound <= 0:
        report["written"] = False
        raise NotBetter(
            f"adapted model's gain on the {held_out} held-out frames may be chance: {before_after}, "
            f"but {comparison.gain_bound:+.3f} or less in 1 of 10 resamplings of them (label more frames); "
            "nothing written",
            report,
        )
    if comparison.drop > options.max_base_drop:
        report["written"] = False
        raise NotBetter(
            f"adapted model forgets the base domain: balanced accuracy on {base_scores['base']['n']} "
            f"held-out base images {base_scores['base']['balanced_accuracy']:.3f} -> "
            f"{base_scores['adapted']['balanced_accuracy']:.3f} (at most -{options.max_base_drop:.2f}); "
            "nothing written",
            report,
        )
