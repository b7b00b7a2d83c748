"""What `ecolens train` reports: plain validation beside the out-of-domain set, before and after
temperature scaling, in one dict (written as .metrics.json) and a short log."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from ecolens.convert.labels import LABELS, POSITIVE_LABEL
from ecolens.convert.metrics import classification_metrics
from ecolens.train.calibration import (
    CONFIDENT,
    confident_error_share,
    coverage_table,
    expected_calibration_error,
    softmax,
)

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# The recommended `min_confidence`: the lowest threshold above which the out-of-domain answers
# kept have at least this balanced accuracy (each class's answers right this often on average).
TARGET_BALANCED_ACCURACY = 0.85


def scored(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Classification metrics plus the calibration figures of one set of predictions."""
    metrics = classification_metrics(
        [LABELS[i] for i in labels], [LABELS[i] for i in probabilities.argmax(axis=1)], LABELS, POSITIVE_LABEL
    )
    metrics.update(
        ece=expected_calibration_error(probabilities, labels) if len(labels) else 0.0,
        confident_wrong_share=confident_error_share(probabilities, labels, CONFIDENT),
    )
    return metrics


def evaluation_report(
    logits: dict[str, np.ndarray], labels: np.ndarray, temperature: float
) -> dict[str, Any]:
    """``logits``: "validation" and one entry per out-of-domain variant, all over the same photos."""
    variants = [k for k in logits if k != "validation"]
    ood_logits = np.concatenate([logits[k] for k in variants])
    ood_labels = np.tile(labels, len(variants))
    report = scored(softmax(logits["validation"], temperature), labels)
    report["split"] = "validation"
    ood = scored(softmax(ood_logits, temperature), ood_labels)
    ood["variants"] = {
        k: {
            key: value
            for key, value in scored(softmax(logits[k], temperature), labels).items()
            if key in ("balanced_accuracy", "f1", "recall", "precision", "confident_wrong_share")
        }
        for k in variants
    }
    report["ood"] = ood
    coverage = coverage_table(softmax(ood_logits, temperature), ood_labels, THRESHOLDS) if len(labels) else []
    good = [
        r["min_confidence"]
        for r in coverage
        if r["balanced_accuracy_kept"] is not None and r["balanced_accuracy_kept"] >= TARGET_BALANCED_ACCURACY
    ]
    report["calibration"] = {
        "temperature": temperature,
        "uncalibrated": {
            "validation_ece": scored(softmax(logits["validation"]), labels)["ece"],
            "ood_ece": scored(softmax(ood_logits), ood_labels)["ece"],
            "ood_confident_wrong_share": confident_error_share(softmax(ood_logits), ood_labels),
        },
        "ood_coverage": coverage,
        "validation_coverage": coverage_table(softmax(logits["validation"], temperature), labels, THRESHOLDS)
        if len(labels)
        else [],
        "recommended_min_confidence": min(good) if good else 0.9,
    }
    return report


def log_report(report: dict[str, Any]) -> None:
    def line(message: str) -> None:
        print(f"[train] {message}", file=sys.stderr, flush=True)

    line(
        f"validation: balanced accuracy {report['balanced_accuracy']:.3f}, plastic precision "
        f"{report['precision']:.3f} recall {report['recall']:.3f} F1 {report['f1']:.3f}, "
        f"ECE {report['ece']:.3f}"
    )
    ood = report["ood"]
    line(
        f"out of domain ({ood['n']} images): balanced accuracy {ood['balanced_accuracy']:.3f}, plastic F1 "
        f"{ood['f1']:.3f}, ECE {ood['ece']:.3f}, "
        f"wrong answers above {CONFIDENT}: {ood['confident_wrong_share']:.2f}"
    )
    for name, variant in ood["variants"].items():
        line(
            f"  {name:20s} balanced accuracy {variant['balanced_accuracy']:.3f}  "
            f"plastic F1 {variant['f1']:.3f}"
        )
    calibration = report["calibration"]
    line(
        f"calibration: T = {calibration['temperature']:.3f}; recommended min_confidence "
        f"{calibration['recommended_min_confidence']}"
    )
