"""Confidence that means something: temperature scaling, expected calibration error, the share
of confident wrong answers, and a reliability diagram drawn without plotting libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ecolens.convert.metrics import balanced_accuracy

BINS = 10
CONFIDENT = 0.9


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of softmax(logits / T): a log-spaced grid,
    then a finer one around the best (one parameter: no optimiser needed)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(50.0), 200))
    best = grid[int(np.argmin([nll(logits, labels, t) for t in grid]))]
    fine = np.linspace(best / 1.05, best * 1.05, 101)
    return float(fine[int(np.argmin([nll(logits, labels, t) for t in fine]))])


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: count, mean confidence, accuracy (top-1)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(1.0 / probabilities.shape[1], 1.0, bins + 1)
    rows = []
    for i in range(bins):
        upper = confidence <= edges[i + 1] if i == bins - 1 else confidence < edges[i + 1]
        inside = (confidence >= edges[i]) & upper
        n = int(inside.sum())
        rows.append(
            {
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "n": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    total = len(labels)
    return float(
        sum(
            r["n"] / total * abs(r["confidence"] - r["accuracy"])
            for r in reliability(probabilities, labels, bins)
            if r["n"]
        )
    )


def confident_error_share(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float = CONFIDENT
) -> float:
    """Share of the wrong answers given with confidence above ``threshold`` (the ones that
    `min_confidence` cannot catch)."""
    wrong = probabilities.argmax(axis=1) != labels
    if not wrong.any():
        return 0.0
    return float((probabilities.max(axis=1)[wrong] > threshold).mean())


def coverage_table(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: tuple[float, ...]
) -> list[dict]:
    """For each candidate `min_confidence`: share of answers kept, their accuracy and their
    balanced accuracy (plain accuracy is dominated by the majority class: 83 % of TrashNet is
    non-plastic, so a threshold can look right 90 % of the time while missing most plastic)."""
    confidence = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    rows = []
    for t in thresholds:
        kept = confidence >= t
        any_kept = bool(kept.any())
        balanced = balanced_accuracy(labels[kept], predicted[kept]) if any_kept else None
        rows.append(
            {
                "min_confidence": t,
                "kept": float(kept.mean()),
                "accuracy_kept": float(correct[kept].mean()) if any_kept else None,
                "balanced_accuracy_kept": balanced,
            }
        )
    return rows


def draw_reliability(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], size: int = 420) -> None:
    """Reliability diagram (accuracy against confidence per bin, one line per curve) as a PNG."""
    from PIL import Image, ImageDraw

    margin = 50
    image = Image.new("RGB", (size + 2 * margin, size + 2 * margin), "white")
    draw = ImageDraw.Draw(image)

    def xy(confidence: float, accuracy: float) -> tuple[float, float]:
        # x from 0.5 (a 2-class model's lowest top-1 confidence) to 1.0; y from 0 to 1.
        return margin + (confidence - 0.5) * 2 * size, margin + (1 - accuracy) * size

    draw.rectangle([margin, margin, margin + size, margin + size], outline="black")
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        x, _ = xy(tick, 0)
        draw.line([x, margin + size, x, margin + size + 5], fill="black")
        draw.text((x - 10, margin + size + 8), f"{tick:.1f}", fill="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = xy(0.5, tick)
        draw.line([margin - 5, y, margin, y], fill="black")
        draw.text((margin - 40, y - 6), f"{tick:.2f}", fill="black")
    draw.line([*xy(0.5, 0.5), *xy(1.0, 1.0)], fill=(150, 150, 150), width=1)
    draw.text((margin + size // 2 - 40, margin + size + 26), "confidence", fill="black")
    draw.text((8, margin - 30), "accuracy per confidence bin (grey: perfect calibration)", fill="black")
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for i, (name, (probabilities, labels)) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        points = [
            xy(r["confidence"], r["accuracy"]) for r in reliability(probabilities, labels) if r["n"] >= 5
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        ece = expected_calibration_error(probabilities, labels)
        draw.text((margin + 10, margin + 10 + 16 * i), f"{name} (ECE {ece:.3f})", fill=colour)
    image.save(path)
