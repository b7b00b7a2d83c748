"""Training curves: the loss and accuracy Keras reports after every epoch, on the training views
and on the validation photos, kept beside the report (JSON, and a PNG with the `plots` extra) so a
run that over- or under-fits shows it without rerunning."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MEASURES = ("loss", "accuracy", "val_loss", "val_accuracy")


def epochs_of(history: Any, stage: str) -> list[dict[str, Any]]:
    """One dict per epoch from a keras History (validation keys absent when there was none)."""
    figures = history.history
    count = len(figures.get("loss", []))
    return [
        {"stage": stage, "epoch": i + 1} | {key: float(figures[key][i]) for key in MEASURES if key in figures}
        for i in range(count)
    ]


def write_curves(out: Path, epochs: list[dict[str, Any]], title: str) -> list[Path]:
    """OUT.curves.json always; OUT.curves.png when matplotlib is installed, else one line saying how."""
    json_path = out.with_suffix(".curves.json")
    json_path.write_text(json.dumps({"epochs": epochs}, indent=2) + "\n")
    try:
        from ecolens.train.plots import training_curves_png
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        print(
            f"[train] training curves in {json_path}; for a PNG too: pip install 'ecolens[plots]'",
            file=sys.stderr,
            flush=True,
        )
        return [json_path]
    if not epochs:
        return [json_path]
    return [json_path, training_curves_png(epochs, title, out.with_suffix(".curves.png"))]
