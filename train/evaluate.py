"""`ecolens evaluate`: how good a .tflite is on labelled images, with the edge runtime itself
(what the bins run, never TensorFlow): an accuracy table, the confusion matrix and how well
its confidence matches its accuracy (reliability diagram, expected calibration error)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.metrics import classification_metrics
from ecolens.convert.validate import truth_for
from ecolens.core.classifier import Classifier
from ecolens.core.errors import EcoLensError, ImageError
from ecolens.core.preprocess import find_images

RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Prediction:
    path: str
    truth: str
    label: str
    confidence: float


def per_label(matrix: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of every label (rows: truth, columns: predicted)."""
    rows = []
    for i, label in enumerate(labels):
        tp, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {"label": label, "precision": float(precision), "recall": float(recall), "f1": float(f1),
             "support": int(actual)}
        )  # fmt: skip
    return rows


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion: honest for a handful of
    images, where 3 of 3 correct says "between 44 % and 100 %", not "100 %"."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / scale
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def reliability(
    predictions: list[Prediction], low: float = 0.0, bins: int = RELIABILITY_BINS
) -> dict[str, Any]:
    """Confidence in equal-width bins from ``low`` (1 / number of labels: the top score is never
    below it) to 1: per bin how many, their mean confidence and accuracy; ECE = the
    count-weighted mean gap between the two."""
    edges = np.linspace(low, 1.0, bins + 1)
    confidence = np.array([p.confidence for p in predictions])
    correct = np.array([p.label == p.truth for p in predictions], dtype=float)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row: dict[str, Any] = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": count}
        if count:
            row["confidence"] = float(confidence[members].mean())
            row["accuracy"] = float(correct[members].mean())
            row["correct"] = int(correct[members].sum())
            row["ci_low"], row["ci_high"] = wilson(row["correct"], count)
            ece += count / len(predictions) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece)}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    truth: str | None  # None where the folder does not name a label


def labelled_images(folder: Path, labels: tuple[str, ...]) -> list[LabelledImage]:
    """Images under ``folder`` with the label their first sub-folder names (the converter's
    rule, ``truth_for``); not decoded here, so one bad file cannot stop the evaluation."""
    if not folder.is_dir():
        raise EcoLensError(f"evaluation folder not found: {folder}")
    images = []
    for path in find_images(folder):
        relative = path.relative_to(folder)
        truth = truth_for(relative.parts[0], labels) if len(relative.parts) > 1 else None
        images.append(LabelledImage(path, truth))
    if not images:
        raise EcoLensError(f"evaluation folder {folder} holds no images")
    return images


def predict(classifier: Classifier, data: Path) -> tuple[list[Prediction], int]:
    """Every labelled image under ``data``; bad images get one line on stderr and are skipped."""
    images = labelled_images(data, classifier.labels)
    unlabelled = [image.path for image in images if image.truth is None]
    if len(unlabelled) == len(images):
        raise EcoLensError(
            f"{data}: no labelled images; put them in sub-folders named after the model's labels "
            f"({', '.join(classifier.labels)}) or after TrashNet materials"
        )
    predictions, failures = [], 0
    for image in images:
        if image.truth is None:
            continue
        try:
            result = classifier.classify_file(image.path)
        except ImageError as exc:
            failures += 1
            print(f"ecolens evaluate: skipped {image.path}: {exc}", file=sys.stderr)
            continue
        predictions.append(Prediction(str(image.path), image.truth, result["label"], result["confidence"]))
    return predictions, failures


def evaluate(model: Path, data: Path, threads: int | None = None) -> dict[str, Any]:
    classifier = Classifier(model, threads=threads)
    predictions, failures = predict(classifier, data)
    if not predictions:
        raise EcoLensError(f"{data}: none of the labelled images could be read")
    labels = list(classifier.labels)
    positive = classifier.metadata.positive_label or labels[-1]
    metrics = classification_metrics(
        [p.truth for p in predictions], [p.label for p in predictions], labels, positive
    )
    return {
        "model": {**classifier.model_info, "path": str(model)},
        "data": str(data),
        "skipped_images": failures,
        **metrics,
        "per_label": per_label(np.array(metrics["confusion_matrix"]), labels),
        "reliability": reliability(predictions, low=1 / len(labels)),
        "predictions": [p.__dict__ for p in predictions],
    }


def format_table(report: dict[str, Any]) -> str:
    model = report["model"]
    lines = [
        f"{model['name']} {model['version']} on {report['n']} images from {report['data']}",
        f"accuracy {report['accuracy']:.1%}, balanced accuracy {report['balanced_accuracy']:.1%}, "
        f"expected calibration error {report['reliability']['ece']:.3f}",
        "",
        f"{'label':<14}{'precision':>10}{'recall':>9}{'F1':>8}{'images':>8}",
    ]
    for row in report["per_label"]:
        lines.append(
            f"{row['label']:<14}{row['precision']:>10.1%}{row['recall']:>9.1%}{row['f1']:>8.3f}{row['support']:>8}"
        )
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    labels = report["labels"]
    width = max(len(label) for label in labels) + 2
    lines.append(" " * width + "".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """evaluation.json, and the two PNGs when matplotlib is installed (the `plots` extra)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "evaluation.json"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    try:
        from ecolens.train.plots import confusion_png, reliability_png
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        print(
            "ecolens evaluate: PNG pictures need matplotlib: pip install 'ecolens[plots]'",
            file=sys.stderr,
        )
        return written
    written.append(confusion_png(report, out / "confusion_matrix.png"))
    written.append(reliability_png(report, out / "reliability.png"))
    return written
