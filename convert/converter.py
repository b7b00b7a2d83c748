"""`ecolens convert`: .h5/.keras -> quantized .tflite with embedded metadata, validated against
the source model before it is installed at the output path (atomic: all or nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecolens.convert.h5meta import read_h5_metadata
from ecolens.convert.loading import LoadedModel, load_keras_model
from ecolens.convert.quantize import load_calibration, to_tflite
from ecolens.convert.validate import compare
from ecolens.core.errors import EcoLensError, ModelError
from ecolens.core.metadata import InputSpec, ModelMetadata, embed_metadata

from ecolens import __version__


class ValidationFailed(EcoLensError):
    """The converted model disagrees with its source more than allowed."""


@dataclass
class ConvertOptions:
    source: Path
    mode: str = "int8"
    out: Path | None = None
    calibration: Path | None = None
    calibration_count: int = 200
    eval: Path | None = None
    validate: bool = True
    min_agreement: float = 0.98
    labels: tuple[str, ...] | None = None
    positive_label: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color_order: str | None = None
    resize: str | None = None
    name: str | None = None
    version: str | None = None
    io_type: str = "int8"


def log(message: str) -> None:
    print(f"[convert] {message}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_out(source: Path, mode: str) -> Path:
    return source.with_name(f"{source.stem}.{mode}.tflite")


def build_metadata(options: ConvertOptions, loaded: LoadedModel) -> ModelMetadata:
    """Flags win over what `ecolens train` stored in the .h5; labels are mandatory."""
    stored = read_h5_metadata(options.source) if options.source.suffix == ".h5" else {}
    stored_input = stored.get("input", {})
    labels = options.labels or tuple(stored.get("labels", ()))
    if not labels:
        raise EcoLensError(
            f"{options.source} does not name its labels: pass --labels, e.g. --labels non_plastic,plastic"
        )
    expected = 2 if loaded.output_kind == "sigmoid" else loaded.outputs
    if len(labels) != expected:
        raise EcoLensError(
            f"{len(labels)} labels ({', '.join(labels)}) but the model outputs {expected} classes"
        )
    positive = options.positive_label or stored.get("positive_label")
    if positive is None and "plastic" in labels:
        positive = "plastic"
    height, width = loaded.input_size
    spec = InputSpec(
        height=height,
        width=width,
        color_order=options.color_order or stored_input.get("color_order", "RGB"),
        resize=options.resize or stored_input.get("resize", "stretch"),
        mean=tuple(options.mean or stored_input.get("mean", (0.0, 0.0, 0.0))),
        std=tuple(options.std or stored_input.get("std", (1.0, 1.0, 1.0))),
    )
    metadata = ModelMetadata(
        name=options.name or stored.get("name") or options.source.stem,
        version=options.version or stored.get("version") or "0.0.0",
        labels=tuple(labels),
        input=spec,
        output=loaded.output_kind,
        positive_label=positive,
        quantization=options.mode,
        source_sha256=sha256_of(options.source),
        source_file=options.source.name,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={"converter": f"ecolens {__version__}", "keras_flavour": loaded.flavour},
    )
    try:
        metadata.check()
    except ModelError as exc:
        raise EcoLensError(str(exc)) from exc
    return metadata


def convert(options: ConvertOptions) -> dict[str, Any]:
    """Convert, validate, install atomically; returns the report (also written as JSON)."""
    from ecolens.models import calibration_dir, eval_dir

    out = options.out or default_out(options.source, options.mode)
    log(f"loading {options.source}")
    loaded = load_keras_model(options.source)
    metadata = build_metadata(options, loaded)
    calibration = None
    if options.mode == "int8":
        folder = options.calibration or calibration_dir()
        calibration = load_calibration(folder, metadata.input, options.calibration_count)
        log(f"{len(calibration)} calibration images from {folder}")
    log(f"converting to {options.mode} (this takes a while)")
    flatbuffer = to_tflite(loaded.model, options.mode, calibration, options.io_type)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(embed_metadata(flatbuffer, metadata))
        report: dict[str, Any] = {
            "source": str(options.source),
            "output": str(out),
            "mode": options.mode,
            "metadata": json.loads(metadata.to_json()),
        }
        if options.validate:
            folder = options.eval or eval_dir()
            log(f"validating against the source model on {folder}")
            report["validation"] = compare(loaded.model, loaded.output_kind, tmp, folder, options.source)
            report["min_agreement"] = options.min_agreement
            report["passed"] = report["validation"]["agreement"] >= options.min_agreement
        else:
            report["passed"] = True
        report_path = out.with_name(out.name.removesuffix(".tflite") + ".report.json")
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        report["report_path"] = str(report_path)
        if not report["passed"]:
            agreement = report["validation"]["agreement"]
            raise ValidationFailed(
                f"top-1 agreement {agreement:.1%} is below {options.min_agreement:.1%}; "
                f"{out} was not written (report: {report_path})"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log(f"wrote {out}")
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary for the terminal."""
    lines = [f"model: {report['output']} ({report['mode']})"]
    validation = report.get("validation")
    if validation:
        lines += [
            f"images compared:        {validation['images']}",
            f"top-1 agreement:        {validation['agreement']:.2%} (minimum {report['min_agreement']:.0%})",
            f"max |p difference|:     {validation['max_probability_difference']:.4f}",
            f"size:                   {validation['source_bytes'] / 1e6:.2f} MB -> "
            f"{validation['tflite_bytes'] / 1e6:.2f} MB (ratio {validation['size_ratio']:.3f})",
            f"median latency (1 img): source {validation['source_latency_ms']:.2f} ms, "
            f"tflite {validation['tflite_latency_ms']:.2f} ms",
        ]
        for key, title in (("source_metrics", "source"), ("tflite_metrics", "tflite")):
            metrics = validation.get(key)
            if metrics:
                lines.append(
                    f"{title:<7} accuracy {metrics['accuracy']:.3f}, "
                    f"balanced {metrics['balanced_accuracy']:.3f}, "
                    f"{metrics['positive_label']} F1 {metrics['f1']:.3f} (n={metrics['n']})"
                )
    lines.append(f"report: {report.get('report_path')}")
    return "\n".join(lines)
