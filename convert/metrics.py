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
