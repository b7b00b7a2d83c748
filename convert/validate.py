"""Proof that a .tflite behaves like its source Keras model (agreement, probabilities) and that
the pair is right at all (accuracy against labels, or no collapse), on real photos fed exactly
as the edge feeds them: the .tflite's embedded preprocessing."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.labels import NEGATIVE_LABEL, POSITIVE_LABEL
from ecolens.convert.metrics import answer_stats, classification_metrics, collapse_reason
from ecolens.core.classifier import Classifier, to_probabilities
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import find_images, load_image, to_model_input

# Better than always answering the majority class means a balanced accuracy above 1/K by this.
PROOF_MARGIN = 0.05
# On labelled photos, one answer for this share of them (and 10 points above the truth's share).
LABELLED_COLLAPSE_SHARE = 0.95
# Agreement is counted on photos where the source's top-2 margin is above quantization noise;
# with fewer such photos than this, on every photo.
MIN_DECIDED = 20


@dataclass(frozen=True)
class EvalSet:
    paths: list[Path]
    rgbs: list[np.ndarray]
    truth: list[str | None]  # None where the folder does not name a label

    @property
    def labelled(self) -> list[int]:
        return [i for i, t in enumerate(self.truth) if t is not None]


def truth_for(folder: str, labels: tuple[str, ...]) -> str | None:
    """Folder named after a label (any case) -> that label; TrashNet materials -> plastic / non_plastic."""
    by_name = {label.lower(): label for label in labels}
    if folder.lower() in by_name:
        return by_name[folder.lower()]
    if set(labels) == {POSITIVE_LABEL, NEGATIVE_LABEL}:
        return POSITIVE_LABEL if folder == "plastic" else NEGATIVE_LABEL
    return None


def load_eval(
    folder: Path, labels: tuple[str, ...], limit: int | None = None, paths: list[Path] | None = None
) -> EvalSet:
    """Photos below ``folder`` (or only ``paths`` below it), labelled by their class folder."""
    if not folder.is_dir():
        raise EcoLensError(f"evaluation folder not found: {folder}")
    paths = find_images(folder) if paths is None else list(paths)
    if limit is not None and len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    if not paths:
        raise EcoLensError(f"evaluation folder {folder} holds no images")
    truth = []
    for path in paths:
        relative = path.relative_to(folder)
        truth.append(truth_for(relative.parts[0], labels) if len(relative.parts) > 1 else None)
    return EvalSet(paths, [load_image(p) for p in paths], truth)


def source_probabilities(model: Any, batch: np.ndarray, output_kind: str) -> np.ndarray:
    """The Keras model's probabilities for a batch of input tensors (same post-processing as the edge)."""
    raw = np.asarray(model.predict(batch, batch_size=32, verbose=0))
    return np.stack([to_probabilities(row, output_kind) for row in raw])


def source_inputs(rgbs: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    return np.stack([to_model_input(rgb, spec) for rgb in rgbs])


def margins(probs: np.ndarray) -> np.ndarray:
    """Per photo: the top probability less the second (how decided the answer is)."""
    ordered = np.sort(probs, axis=1)
    return ordered[:, -1] - ordered[:, -2] if probs.shape[1] > 1 else ordered[:, -1]


def agreement(source_probs: np.ndarray, tflite_probs: np.ndarray, noise: float = 0.0) -> dict[str, float]:
    """Top-1 agreement counted where the source's margin is above ``noise`` (a photo the source
    itself calls 50/50 flips with any rounding), on every photo too, and |probability
    difference| (per photo: the largest over classes)."""
    diff = np.abs(source_probs - tflite_probs).max(axis=1)
    same = source_probs.argmax(axis=1) == tflite_probs.argmax(axis=1)
    decided = margins(source_probs) > noise
    if decided.sum() < min(MIN_DECIDED, len(same)):
        decided = np.ones_like(same)  # too few decided photos to judge on: count them all
    return {
        "agreement": float(np.mean(same[decided])),
        "agreement_all_photos": float(np.mean(same)),
        "decided_photos": int(decided.sum()),
        "median_probability_difference": float(np.median(diff)),
        "max_probability_difference": float(diff.max()),
        "mean_probability_difference": float(np.abs(source_probs - tflite_probs).mean()),
    }


def tflite_probabilities(tflite_path: Path, rgbs: list[np.ndarray]) -> np.ndarray:
    classifier = Classifier(tflite_path)
    return np.stack([classifier.predict(rgb)[0] for rgb in rgbs])


def quality(
    probs: np.ndarray, evalset: EvalSet, labels: tuple[str, ...], positive: str
) -> dict[str, Any] | None:
    """Accuracy metrics on the labelled photos, or None when none are labelled."""
    known = evalset.labelled
    if not known:
        return None
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    truth = [evalset.truth[i] for i in known]
    return classification_metrics(truth, [predicted[i] for i in known], labels, positive)


def proof(probs: np.ndarray, evalset: EvalSet, labels: tuple[str, ...], positive: str) -> dict[str, Any]:
    """Is the converted model right at all? With labels: better than always answering the
    majority class; without: not collapsed onto one answer. ``failure`` says why not."""
    metrics = quality(probs, evalset, labels, positive)
    stats = answer_stats(probs)
    verdict: dict[str, Any] = {"answers": stats, "labelled_photos": len(evalset.labelled)}
    if metrics is not None and len(evalset.labelled) >= 10:
        counts = [metrics["confusion_matrix"][i] for i in range(len(labels))]
        present = sum(1 for row in counts if sum(row) > 0)
        if present == 1:  # one class in the photos: its recall says something, a floor does not
            only = next(i for i, row in enumerate(counts) if sum(row) > 0)
            verdict.update(
                kind=f"labelled, one class ({labels[only]})",
                recall=counts[only][only] / metrics["n"],
                failure=None,
            )
            return verdict
        majority = max(sum(row) for row in counts) / metrics["n"]
        floor = 1.0 / max(1, present) + PROOF_MARGIN
        verdict.update(
            kind="labelled",
            accuracy=metrics["accuracy"],
            balanced_accuracy=metrics["balanced_accuracy"],
            majority_share=majority,
            required_balanced_accuracy=floor,
        )
        answered = [sum(row[j] for row in counts) / metrics["n"] for j in range(len(labels))]
        top = int(np.argmax(answered))
        # One answer for nearly every photo, far more often than the truth holds it, is a collapse
        # even when a few other answers lift balanced accuracy just over the floor (a wrong input
        # range: 98% one class at balanced 0.56 where the truth holds 83%).
        truth_share = sum(counts[top]) / metrics["n"]
        collapsed = answered[top] >= LABELLED_COLLAPSE_SHARE and answered[top] - truth_share >= 0.1
        verdict["failure"] = (
            None
            if metrics["balanced_accuracy"] > floor and not collapsed
            else (
                f"on {metrics['n']} labelled photos the converted model is no better than always "
                f"answering the majority class (accuracy {metrics['accuracy']:.0%}, balanced "
                f"{metrics['balanced_accuracy']:.2f}, majority share {majority:.0%}, "
                f"answers {labels[top]!r} for {answered[top]:.0%})"
            )
        )
        return verdict
    reason = collapse_reason(stats, labels)
    verdict.update(kind="collapse check", failure=f"the converted model {reason}" if reason else None)
    return verdict


def median_ms(run: Any, inputs: list[Any], repeats: int) -> float:
    """Median single-image latency over ``repeats`` calls cycling through ``inputs``."""
    run(inputs[0])  # warm-up
    timings = []
    for i in range(repeats):
        started = time.perf_counter()
        run(inputs[i % len(inputs)])
        timings.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(timings)


def tflite_ms(tflite_path: Path, rgbs: list[np.ndarray], repeats: int) -> float:
    """Median single-image LiteRT latency of a .tflite, as the edge runs it."""
    return median_ms(Classifier(tflite_path).predict, rgbs[:16], repeats)


def latency(keras_model: Any, tflite_path: Path, evalset: EvalSet, repeats: int) -> dict[str, float]:
    classifier = Classifier(tflite_path)
    batch = source_inputs(evalset.rgbs[:16], classifier.metadata.input)
    singles = [batch[i : i + 1] for i in range(len(batch))]
    return {
        "source_latency_ms": median_ms(lambda x: keras_model(x, training=False), singles, repeats),
        "tflite_latency_ms": tflite_ms(tflite_path, evalset.rgbs, repeats),
    }


def compare(
    keras_model: Any,
    output_kind: str,
    tflite_path: Path,
    eval_folder: Path,
    source_path: Path,
    latency_repeats: int = 30,
) -> dict[str, Any]:
    """Run both models on every eval image and report agreement, quality, sizes and latency."""
    classifier = Classifier(tflite_path)
    labels = classifier.labels
    positive = classifier.metadata.positive_label or labels[-1]
    evalset = load_eval(eval_folder, labels)
    source = source_probabilities(
        keras_model, source_inputs(evalset.rgbs, classifier.metadata.input), output_kind
    )
    tflite = tflite_probabilities(tflite_path, evalset.rgbs)
    report: dict[str, Any] = {"images": len(evalset.rgbs), **agreement(source, tflite)}
    report["source_bytes"] = source_path.stat().st_size
    report["tflite_bytes"] = tflite_path.stat().st_size
    report["size_ratio"] = report["tflite_bytes"] / report["source_bytes"]
    for key, probs in (("source_metrics", source), ("tflite_metrics", tflite)):
        metrics = quality(probs, evalset, labels, positive)
        if metrics is not None:
            report[key] = metrics
    report.update(latency(keras_model, tflite_path, evalset, latency_repeats))
    return report
