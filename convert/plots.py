"""Pictures of an evaluation, a training run and a benchmark (matplotlib, the `plots` extra;
workstation only, never on a bin)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402


def _title(report: dict[str, Any]) -> str:
    model = report["model"]
    return f"{model['name']} {model['version']} · {report['n']} images"


def confusion_png(report: dict[str, Any], path: Path) -> Path:
    labels = report["labels"]
    matrix = report["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=150)
    ax.imshow(matrix, cmap="Greens")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            share = value / max(1, sum(row))
            color = "white" if value > peak * 0.6 else "black"
            ax.text(j, i, f"{value}\n{share:.0%}", ha="center", va="center", color=color, fontsize=11)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true label")
    ax.set_title(f"Confusion matrix, accuracy {report['accuracy']:.1%}\n{_title(report)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_png(report: dict[str, Any], path: Path) -> Path:
    bins = [b for b in report["reliability"]["bins"] if b["count"]]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.8, 5.2), dpi=150, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    low = report["reliability"]["bins"][0]["low"]
    top.plot([low, 1], [low, 1], color="#888", linestyle="--", linewidth=1, label="perfectly calibrated")
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    width = report["reliability"]["bins"][0]["high"] - report["reliability"]["bins"][0]["low"]
    top.bar(centers, [b["accuracy"] for b in bins], width=width * 0.9, color="#4b9e84", label="accuracy")
    top.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#e0672b",
             label="(mean confidence, accuracy)")  # fmt: skip
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="lower right", fontsize=8)
    top.set_title(f"Reliability, ECE {report['reliability']['ece']:.3f}\n{_title(report)}", fontsize=10)
    bottom.bar(centers, [b["count"] for b in bins], width=width * 0.9, color="#999")
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence")
    bottom.set_xlim(low, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def ratio_bars_png(title: str, baseline: str, panels: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """One horizontal bar chart per measure, the baseline's 1.0 marked: a benchmark's ratios."""
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(6.4, 0.9 + sum(0.45 * len(b) + 0.6 for b in panels.values())), dpi=150,
        squeeze=False,
    )  # fmt: skip
    for ax, (measure, bars) in zip(axes[:, 0], panels.items()):
        names = list(bars)
        values = [bars[n] for n in names]
        ax.barh(range(len(names)), values, color=["#999" if n == baseline else "#4b9e84" for n in names])
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.axvline(1.0, color="#e0672b", linestyle="--", linewidth=1)
        for i, value in enumerate(values):
            ax.text(value, i, f" {value:.2f}x", va="center", fontsize=8)
        ax.set_xlim(0, max(values + [1.0]) * 1.2)
        ax.set_title(measure, fontsize=9)
    fig.suptitle(f"{title}\nbaseline (1.0x, dashed): {baseline}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curves_png(epochs: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Loss and accuracy per epoch, training solid and validation dashed, stages one after another."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), dpi=150)
    x = list(range(1, len(epochs) + 1))
    for ax, measure in zip(axes, ("loss", "accuracy")):
        for key, style, label in ((measure, "-", "training"), (f"val_{measure}", "--", "validation")):
            points = [(i, e[key]) for i, e in zip(x, epochs) if key in e]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3, label=label)
        for i in range(1, len(epochs)):
            if epochs[i]["stage"] != epochs[i - 1]["stage"]:
                ax.axvline(i + 0.5, color="#888", linewidth=1, linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel(measure)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    if any("accuracy" in e or "val_accuracy" in e for e in epochs):
        axes[1].set_ylim(0, 1.02)
    stages = " then ".join(dict.fromkeys(e["stage"] for e in epochs))
    fig.suptitle(f"Training curves, {title} ({stages})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
