"""Binary/multi-class metrics in plain numpy (no scikit-learn on the path to a report)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_metrics(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str], positive: str
) -> dict:
    """Accuracy, balanced accuracy, precision/recall/F1 of ``positive`` and the confusion matrix
    (rows: true label, columns: predicted label, in ``labels`` order)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, predicted):
        matrix[index[t], index[p]] += 1
    total = matrix.sum()
    per_class_recall = [matrix[i, i] / matrix[i].sum() for i in range(len(labels)) if matrix[i].sum() > 0]
    k = index[positive]
    tp = matrix[k, k]
    precision = tp / matrix[:, k].sum() if matrix[:, k].sum() else 0.0
    recall = tp / matrix[k].sum() if matrix[k].sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": int(total),
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "balanced_accuracy": float(np.mean(per_class_recall)) if per_class_recall else 0.0,
        "positive_label": positive,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean per-class recall over the classes present in ``truth``: always answering the
    majority class scores 1/K here, whatever the class balance."""
    truth_a, predicted_a = np.asarray(truth), np.asarray(predicted)
    recalls = [float(np.mean(predicted_a[truth_a == c] == c)) for c in np.unique(truth_a)]
    return float(np.mean(recalls)) if recalls else 0.0


def answer_stats(probabilities: np.ndarray) -> dict:
    """How varied a model's answers are: the most frequent answer, its share, median confidence."""
    top = probabilities.argmax(axis=1)
    counts = np.bincount(top, minlength=probabilities.shape[1])
    index = int(counts.argmax())
    return {
        "n": int(len(top)),
        "top_index": index,
        "top_share": float(counts[index] / max(1, len(top))),
        "median_confidence": float(np.median(probabilities.max(axis=1))) if len(top) else 0.0,
    }


# Without labels, a model is called collapsed when one class takes this share of varied photos.
# A high median confidence alone is not a collapse: a well-trained model is confident (a
# saturated confidence says "wrong range" only against a calmer range: convert/inputrange.py).
COLLAPSE_SHARE = 0.9


def collapse_reason(stats: dict, labels: Sequence[str]) -> str | None:
    """Why these answers look collapsed, or None."""
    if stats["top_share"] >= COLLAPSE_SHARE:
        return f"answers {labels[stats['top_index']]!r} for {stats['top_share']:.0%} of {stats['n']} photos"
    return None


def balanced_accuracy_gain_bound(
    truth: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    quantile: float = 0.1,
    rounds: int = 2000,
    seed: int = 0,
) -> float:
    """The ``quantile`` of the balanced accuracy gain from ``before`` to ``after`` predictions
    over paired bootstrap resamplings of the items (within each class, so class counts stay):
    a gain measured on a few dozen items can be chance, and this says how low it plausibly is."""
    rng = np.random.default_rng(seed)
    gains = np.zeros(rounds)
    classes = np.unique(truth)
    for c in classes:
        members = np.flatnonzero(truth == c)
        picks = members[rng.integers(0, len(members), size=(rounds, len(members)))]
        gains += ((after[picks] == c).mean(axis=1) - (before[picks] == c).mean(axis=1)) / len(classes)
    return float(np.quantile(gains, quantile)) if len(classes) else 0.0


def percent(value: float, threshold: float) -> str:
    """``value`` as a percentage with as many decimals as it takes not to contradict the
    verdict against ``threshold`` (97.98 % is printed so, never as 98.0 % below a 98 % floor)."""
    for digits in (1, 2, 3, 4):
        text = f"{value * 100:.{digits}f}"
        if (float(text) < threshold * 100) == (value < threshold):
            return f"{text}%"
    return f"{np.floor(value * 1e6) / 1e4:.4f}%"  # just below: truncated, never rounded up
