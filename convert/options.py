"""What a run of `ecolens convert` is asked to do (the command's flags, as one value)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ConvertOptions:
    source: Path
    mode: str = "auto"
    out: Path | None = None
    calibration: Path | None = None
    calibration_count: int = 200
    eval: Path | None = None
    validate: bool = True
    min_agreement: float = 0.98  # where the source decides (margin above quantization noise)
    min_agreement_all: float = 0.95  # on every proof photo, near-ties included
    max_probability_difference: float = 0.02
    labels: tuple[str, ...] | None = None
    labels_file: Path | None = None
    positive_label: str | None = None
    input_range: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color_order: str | None = None
    resize: str | None = None
    name: str | None = None
    version: str | None = None
    io_type: str = "int8"
    allow_degenerate: bool = False
    verbose: bool = False
    # an extra check of each attempt's probabilities on the proof photos (EvalSet): a reason it
    # fails, or None (`ecolens adapt`: the converted model must keep the gain it measured)
    gate: Callable[[Any, Any], str | None] | None = None
