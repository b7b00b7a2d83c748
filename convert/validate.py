"""Proof that a .tflite still behaves like its source Keras model, on labelled images."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.dataset import NEGATIVE_LABEL, POSITIVE_LABEL
from ecolens.convert.metrics import classification_metrics
from ecolens.core.classifier import Classifier, to_probabilities
from ecolens.core.errors import EcoLensError
from ecolens.core.preprocess import find_images, load_image, to_model_input


@dataclass(frozen=True)
class EvalImage:
    path: Path
    truth: str | None  # None when the folder does not name a label


def truth_for(folder: str, labels: tuple[str, ...]) -> str | None:
    """Folder named after a label -> that label; TrashNet materials -> plastic / non_plastic."""
    if folder in labels:
        return folder
    if set(labels) == {POSITIVE_LABEL, NEGATIVE_LABEL}:
        return POSITIVE_LABEL if folder == "plastic" else NEGATIVE_LABEL
    return None


def eval_images(folder: Path, labels: tuple[str, ...]) -> list[EvalImage]:
    if not folder.is_dir():
        raise EcoLensError(f"evaluation folder not found: {folder}")
    images = []
    for path in find_images(folder):
        relative = path.relative_to(folder)
        truth = truth_for(relative.parts[0], labels) if len(relative.parts) > 1 else None
        images.append(EvalImage(path, truth))
    if not images:
        raise EcoLensError(f"evaluation folder {folder} holds no images")
    return images


def median_ms(run: Any, inputs: list[Any], repeats: int) -> float:
    """Median single-image latency over ``repeats`` calls cycling through ``inputs``."""
    run(inputs[0])  # warm-up
    timings = []
    for i in range(repeats):
        started = time.perf_counter()
        run(inputs[i % len(inputs)])
        timings.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(timings)


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
    spec = classifier.metadata.input
    images = eval_images(eval_folder, labels)
    rgbs = [load_image(image.path) for image in images]
    batch = np.stack([to_model_input(rgb, spec) for rgb in rgbs])
    raw = np.asarray(keras_model.predict(batch, batch_size=32, verbose=0))
    keras_probs = np.stack([to_probabilities(row, output_kind) for row in raw])
    tflite_probs = np.stack([classifier.predict(rgb)[0] for rgb in rgbs])
    keras_pred = [labels[i] for i in keras_probs.argmax(axis=1)]
    tflite_pred = [labels[i] for i in tflite_probs.argmax(axis=1)]
    agreement = float(np.mean([a == b for a, b in zip(keras_pred, tflite_pred)]))
    report: dict[str, Any] = {
        "images": len(images),
        "agreement": agreement,
        "max_probability_difference": float(np.abs(keras_probs - tflite_probs).max()),
        "mean_probability_difference": float(np.abs(keras_probs - tflite_probs).mean()),
        "source_bytes": source_path.stat().st_size,
        "tflite_bytes": tflite_path.stat().st_size,
    }
    report["size_ratio"] = report["tflite_bytes"] / report["source_bytes"]
    labelled = [i for i, image in enumerate(images) if image.truth is not None]
    positive = classifier.metadata.positive_label or labels[-1]
    if labelled:
        truth = [images[i].truth for i in labelled]
        report["source_metrics"] = classification_metrics(
            truth, [keras_pred[i] for i in labelled], labels, positive
        )
        report["tflite_metrics"] = classification_metrics(
            truth, [tflite_pred[i] for i in labelled], labels, positive
        )
    singles = [batch[i : i + 1] for i in range(min(len(batch), 16))]
    report["source_latency_ms"] = median_ms(
        lambda x: keras_model(x, training=False), singles, latency_repeats
    )
    report["tflite_latency_ms"] = median_ms(lambda rgb: classifier.predict(rgb), rgbs[:16], latency_repeats)
    return report
