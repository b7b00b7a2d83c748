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


def _scores(report: dict[str, Any]) -> str:
    """Balanced accuracy first: on an unbalanced set (165:33) plain accuracy flatters a model
    that favours the big class."""
    return f"balanced accuracy {report['balanced_accuracy']:.1%} (plain accuracy {report['accuracy']:.1%})"


def confusion_png(report: dict[str, Any], path: Path) -> Path:
    labels = report["labels"]
    matrix = report["confusion_matrix"]
    shares = [[value / max(1, sum(row)) for value in row] for row in matrix]
    fig, ax = plt.subplots(figsize=(4.8, 4.5), dpi=150)
    ax.imshow(shares, cmap="Greens", vmin=0, vmax=1)  # coloured by the row's share, not the count
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            color = "white" if shares[i][j] > 0.6 else "black"
            ax.text(j, i, f"{value}\n{shares[i][j]:.0%}", ha="center", va="center", color=color, fontsize=11)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), [f"{label}\n({sum(row)})" for label, row in zip(labels, matrix)])
    ax.set_xlabel("predicted\n% of the row: row-normalised (each true label's row sums to 100 %)", fontsize=8)
    ax.set_ylabel("true label (images)")
    ax.set_title(f"Confusion matrix\n{_scores(report)}\n{_title(report)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


FEW_IMAGES = 10  # a reliability bin with fewer is drawn pale: its accuracy is mostly noise


def reliability_png(report: dict[str, Any], path: Path) -> Path:
    """Accuracy per confidence bin with its 95 % Wilson interval and its image count; bins of
    fewer than FEW_IMAGES images pale. Dots at 1.0 are drawn whole (the axis goes on above)."""
    bins = [b for b in report["reliability"]["bins"] if b["count"]]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.8, 5.4), dpi=150, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    low = report["reliability"]["bins"][0]["low"]
    top.plot([low, 1], [low, 1], color="#888", linestyle="--", linewidth=1, label="perfectly calibrated")
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    width = report["reliability"]["bins"][0]["high"] - report["reliability"]["bins"][0]["low"]
    colours = ["#4b9e84" if b["count"] >= FEW_IMAGES else "#b9dccf" for b in bins]
    top.bar(centers, [b["accuracy"] for b in bins], width=width * 0.9, color=colours,
            label=f"accuracy (pale: < {FEW_IMAGES} images)")  # fmt: skip
    errors = [  # rounding may put an end a hair inside the point
        [max(0.0, b["accuracy"] - b["ci_low"]) for b in bins],
        [max(0.0, b["ci_high"] - b["accuracy"]) for b in bins],
    ]
    top.errorbar([b["confidence"] for b in bins], [b["accuracy"] for b in bins], yerr=errors, fmt="o",
                 color="#e0672b", ecolor="#e0672b", capsize=2, clip_on=False,
                 label="mean confidence, accuracy, 95 % interval")  # fmt: skip
    for center, b in zip(centers, bins):
        top.annotate(f"{b['correct']}/{b['count']}", (center, 0.02), ha="center", fontsize=6, rotation=90)
    top.set_ylim(0, 1.4)  # room for the dots at 1.0 and, above them, the legend
    top.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=7, ncol=1, framealpha=1)
    ece = report["reliability"]["ece"]
    top.set_title(f"Reliability, ECE {ece:.3f}\n{_scores(report)}\n{_title(report)}", fontsize=9)
    bottom.bar(centers, [b["count"] for b in bins], width=width * 0.9, color="#999")
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence (in each bar: correct / images)", fontsize=9)
    bottom.set_xlim(low, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


SERIES_COLOURS = ("#4b9e84", "#e0672b", "#3b6fb6", "#b58f00", "#8a5fb0")


def _short(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _ratio_panel(ax: Any, measure: str, bars: Mapping[str, float], baseline: str) -> None:
    """Horizontal bars, one per name, the baseline's 1.0 dashed."""
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


def _value_panel(
    ax: Any, measure: str, groups: Mapping[str, Mapping[str, float]], colour: Mapping[str, str]
) -> None:
    """Vertical bars of measured values, each labelled with its value: one cluster per group
    with one colour per series (the same in every panel), or, for one group, one green bar per
    series; the baseline's bars grey."""
    import textwrap

    series = list(dict.fromkeys(name for bars in groups.values() for name in bars))
    single = len(groups) == 1 and "" in groups
    width = 0.8 / (1 if single else len(series))
    for index, name in enumerate(series):
        xs, heights = [], []
        for position, bars in enumerate(groups.values()):
            if name in bars:
                xs.append(index if single else position - 0.4 + width * (index + 0.5))
                heights.append(bars[name])
        shade = colour[name] if not single else "#999" if colour[name] == "#999" else SERIES_COLOURS[0]
        container = ax.bar(xs, heights, width=width, color=shade, label=name)
        ax.bar_label(container, [_short(h) for h in heights], fontsize=7, padding=1)
    if single:
        ax.set_xticks(range(len(series)), [textwrap.fill(n, 14) for n in series], fontsize=7)
    else:
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
        ax.legend(fontsize=7, loc="upper center", ncols=len(series), frameon=False)
    heights = [v for bars in groups.values() for v in bars.values()] or [1.0]
    low, high = min(0.0, min(heights)), max(0.0, max(heights))
    span = (high - low) or 1.0
    ax.set_ylim(low - (0.18 * span if low < 0 else 0.0), high + (0.18 if single else 0.32) * span)
    ax.axhline(0, color="#444", linewidth=0.6)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(measure, fontsize=9)


def _series_colours(values: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str) -> dict[str, str]:
    names = dict.fromkeys(n for groups in values.values() for bars in groups.values() for n in bars)
    palette = iter(SERIES_COLOURS * (1 + len(names) // len(SERIES_COLOURS)))
    return {name: "#999" if name == baseline else next(palette) for name in names}


def ratio_bars_png(
    title: str,
    baseline: str,
    panels: Mapping[str, Mapping[str, float]],
    path: Path,
    values: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    note: str = "",
) -> Path:
    """A benchmark's picture: one horizontal bar chart per ratio panel (the baseline's 1.0
    marked), then the measured values (two per row) as clustered bars, the baseline grey."""
    values = values or {}
    ratio_heights = [0.45 * len(bars) + 0.6 for bars in panels.values()]
    value_rows = (len(values) + 1) // 2
    heights = ratio_heights + [2.4] * value_rows
    columns = 2 if len(values) > 1 else 1
    fig = plt.figure(figsize=(7.6 if columns == 2 else 6.4, 0.9 + sum(heights)), dpi=150)
    grid = fig.add_gridspec(len(heights), columns, height_ratios=heights)
    colours = _series_colours(values, baseline)
    for row, (measure, bars) in enumerate(panels.items()):
        _ratio_panel(fig.add_subplot(grid[row, :]), measure, bars, baseline)
    for index, (measure, groups) in enumerate(values.items()):
        row, column = len(panels) + index // columns, index % columns
        last_alone = index == len(values) - 1 and column == 0
        ax = fig.add_subplot(grid[row, :] if last_alone else grid[row, column])
        _value_panel(ax, measure, groups, colours)
    marked = "(1.0x, dashed)" if panels else "(grey)"
    fig.suptitle(f"{title}\nbaseline {marked}: {baseline}", fontsize=10)
    if note:  # e.g. the machine and its load average, so a picture says where it was measured
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=6, color="#555", wrap=True)
    fig.tight_layout(rect=(0, 0.025 if note else 0, 1, 1))
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
