"""`ecolens convert`: .h5/.keras -> .tflite with embedded metadata, proven against the source model
on real photos before it is installed at the output path (atomic: all or nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert import inputrange
from ecolens.convert import labels as labels_mod
from ecolens.convert.graph import is_model
from ecolens.convert.h5meta import read_h5_metadata
from ecolens.convert.loading import LoadedModel, load_keras_model
from ecolens.convert.quantize import (
    AUTO_ORDER,
    CALIBRATION_CAP,
    calibration_images,
    to_tflite,
    with_flipped_copies,
)
from ecolens.convert.quiet import native_output_silenced
from ecolens.convert.validate import (
    EvalSet,
    agreement,
    latency,
    load_eval,
    proof,
    quality,
    source_inputs,
    source_probabilities,
    tflite_probabilities,
)
from ecolens.core.errors import EcoLensError, ModelError
from ecolens.core.metadata import InputSpec, ModelMetadata, embed_metadata
from ecolens.core.preprocess import load_image, to_model_input

from ecolens import __version__

# Photos the input-range data check runs the source model on (per candidate range).
DATA_CHECK_PHOTOS = 64


class ValidationFailed(EcoLensError):
    """The converted model disagrees with its source, or is not right at all."""


@dataclass
class ConvertOptions:
    source: Path
    mode: str = "auto"
    out: Path | None = None
    calibration: Path | None = None
    calibration_count: int = 200
    eval: Path | None = None
    validate: bool = True
    min_agreement: float = 0.98
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


@dataclass
class Preprocessing:
    spec: InputSpec
    sources: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[convert] {message}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_out(source: Path, mode: str) -> Path:
    return source.with_name(f"{source.stem}.{mode}.tflite")


def report_path_for(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".tflite") + ".report.json")


def load_rgbs(folder: Path, limit: int, what: str) -> list[np.ndarray]:
    """Decode up front, so an unreadable image fails before any conversion starts."""
    rgbs = []
    for path in calibration_images(folder, limit):
        try:
            rgbs.append(load_image(path))
        except EcoLensError as exc:
            raise EcoLensError(f"unreadable {what} image: {exc}") from exc
    return rgbs


def settle_output_kind(loaded: LoadedModel, rgbs: list[np.ndarray], spec: InputSpec) -> None:
    """Outputs that already sum to 1 on real photos are probabilities, whatever the last layer
    looks like (a softmax hidden in a Lambda): never softmax them a second time."""
    if loaded.output_kind != "logits":
        return
    batch = np.stack([to_model_input(rgb, spec) for rgb in rgbs[:16]])
    raw = np.asarray(loaded.model(batch, training=False), dtype=np.float64)
    if raw.min() >= 0.0 and np.allclose(raw.sum(axis=1), 1.0, atol=1e-3):
        loaded.output_kind = "probabilities"
        loaded.output_source = "data: outputs already sum to 1 on real photos"


def truth_indices(evalset: EvalSet | None, labels: tuple[str, ...]) -> tuple[list, list[int | None]]:
    """Labelled eval photos (evenly picked) and their label indices, for the data check."""
    if evalset is None or not evalset.labelled:
        return [], []
    known = evalset.labelled
    picks = [known[i] for i in np.linspace(0, len(known) - 1, min(len(known), 96)).round().astype(int)]
    return [evalset.rgbs[i] for i in picks], [labels.index(evalset.truth[i]) for i in picks]


def preprocessing(
    options: ConvertOptions,
    loaded: LoadedModel,
    stored_input: dict[str, Any],
    labels: tuple[str, ...],
    rgbs: list[np.ndarray],
    evalset: EvalSet | None,
    teachable_machine: bool,
) -> tuple[Preprocessing, dict[str, Any]]:
    """The input spec and where each fact of it came from: flags, then the .h5's EcoLens
    metadata, then the graph / architecture / data (ecolens.convert.inputrange)."""
    height, width = loaded.input_size
    resize = options.resize or stored_input.get("resize", "stretch")
    base = InputSpec(height=height, width=width, channels=loaded.channels, resize=resize)
    sources = {
        "size": "model input shape",
        "channels": "model input shape",
        "resize": "flag --resize"
        if options.resize
        else ".h5 metadata"
        if "resize" in stored_input
        else "default",
    }
    checks: dict[str, Any] = {}
    if options.input_range:
        rng = inputrange.RANGES[options.input_range]
        spec, source = inputrange.spec_with(base, rng), f"flag --input-range {options.input_range}"
    elif options.mean or options.std:
        spec = InputSpec(
            height=height,
            width=width,
            channels=loaded.channels,
            resize=resize,
            mean=options.mean or (0.0, 0.0, 0.0),
            std=options.std or (1.0, 1.0, 1.0),
        )
        source = "flags --mean/--std"
    elif "mean" in stored_input and "std" in stored_input:
        spec = InputSpec(
            height=height,
            width=width,
            channels=loaded.channels,
            resize=resize,
            color_order=stored_input.get("color_order", "RGB"),
            mean=tuple(stored_input["mean"]),
            std=tuple(stored_input["std"]),
        )
        source = ".h5 metadata (ecolens train)"
    else:
        extra_rgbs, truth = truth_indices(evalset, labels)
        photos = rgbs[:DATA_CHECK_PHOTOS] + extra_rgbs
        finding, stats = inputrange.infer(
            loaded.model,
            lambda batch: source_probabilities(loaded.model, batch, loaded.output_kind),
            photos,
            base,
            labels,
            truth=[None] * len(rgbs[:DATA_CHECK_PHOTOS]) + truth,
            teachable_machine=teachable_machine,
        )
        spec, source = inputrange.spec_with(base, finding.range), finding.source
        checks = {
            name: {k: v for k, v in value.items() if k != "probabilities"} for name, value in stats.items()
        }
    if options.input_range or options.mean or options.std:
        extra_rgbs, truth = truth_indices(evalset, labels)
        photos = rgbs[:DATA_CHECK_PHOTOS] + extra_rgbs
        doubt = inputrange.cross_check(
            inputrange.name_of(spec.mean, spec.std, spec.color_order),
            source,
            lambda batch: source_probabilities(loaded.model, batch, loaded.output_kind),
            photos,
            spec,
            truth=[None] * len(rgbs[:DATA_CHECK_PHOTOS]) + truth,
        )
        if doubt and not options.allow_degenerate:
            raise EcoLensError(f"{doubt}; check --input-range, or pass --allow-degenerate to write it anyway")
        if doubt:
            log(f"WARNING: {doubt} (going on: --allow-degenerate)")
            checks["doubt"] = doubt
    if options.color_order:
        spec = InputSpec(**{**spec.__dict__, "color_order": options.color_order})
        sources["color_order"] = "flag --color-order"
    else:
        sources["color_order"] = source
    sources["input_range"] = source
    sources["mean_std"] = source
    return Preprocessing(spec, sources), checks


def build_metadata(
    options: ConvertOptions,
    loaded: LoadedModel,
    stored: dict[str, Any],
    labels: tuple[str, ...],
    prep: Preprocessing,
    mode: str,
    provenance: dict[str, str],
) -> ModelMetadata:
    positive = options.positive_label or stored.get("positive_label")
    if positive is None and "plastic" in labels:
        positive = "plastic"
    spec = prep.spec
    metadata = ModelMetadata(
        name=options.name or stored.get("name") or options.source.stem,
        version=options.version or stored.get("version") or "0.0.0",
        labels=labels,
        input=spec,
        output=loaded.output_kind,
        positive_label=positive,
        quantization=mode,
        source_sha256=sha256_of(options.source),
        source_file=options.source.name,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra={
            "converter": f"ecolens {__version__}",
            "keras_flavour": loaded.flavour,
            "input_range": inputrange.name_of(spec.mean, spec.std, spec.color_order),
            "provenance": provenance,
            # Calibration already inside the graph (`ecolens train`): recorded so it is never applied twice.
            **({"temperature_in_graph": stored["temperature"]} if "temperature" in stored else {}),
        },
    )
    try:
        metadata.check()
    except ModelError as exc:
        raise EcoLensError(str(exc)) from exc
    return metadata


def write_private(directory: Path, name: str, data: bytes) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(tmp_name)


def umask_mode() -> int:
    """0o666 less the process umask: what open() would have given a new file."""
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


@dataclass
class Attempt:
    mode: str
    path: Path
    row: dict[str, Any]
    probabilities: np.ndarray | None


class Session:
    """One conversion: the loaded model, its metadata and the photos, tried in several modes."""

    def __init__(self, options: ConvertOptions, loaded: LoadedModel, meta_for, calibration, evalset):
        self.options = options
        self.loaded = loaded
        self.meta_for = meta_for
        self.calibration = calibration
        self.evalset = evalset
        self.source_probs: np.ndarray | None = None

    def attempt(self, mode: str, directory: Path, calibration: list[np.ndarray] | None = None) -> Attempt:
        """Convert in ``mode`` and judge it; int8 calibrates on ``calibration`` (default: the
        `--calibration-count` photos)."""
        metadata = self.meta_for(mode)
        started = time.perf_counter()
        rgbs = self.calibration if calibration is None else calibration
        tensors = [to_model_input(rgb, metadata.input) for rgb in rgbs] if mode == "int8" else None
        with native_output_silenced(not self.options.verbose):
            flatbuffer = to_tflite(self.loaded.model, mode, tensors, self.options.io_type)
        path = write_private(
            directory, f"{self.options.source.stem}.{mode}.tflite", embed_metadata(flatbuffer, metadata)
        )
        row: dict[str, Any] = {
            "mode": mode,
            "bytes": path.stat().st_size,
            "seconds": round(time.perf_counter() - started, 2),
            **({"calibration_images": len(rgbs)} if mode == "int8" else {}),
        }
        if self.evalset is None:
            row.update(passed=True, why="not validated (--no-validate)")
            return Attempt(mode, path, row, None)
        if self.source_probs is None:
            batch = source_inputs(self.evalset.rgbs, metadata.input)
            self.source_probs = source_probabilities(self.loaded.model, batch, self.loaded.output_kind)
        with native_output_silenced(not self.options.verbose):  # LiteRT announces its delegate
            probs = tflite_probabilities(path, self.evalset.rgbs)
        row.update(agreement(self.source_probs, probs))
        limit_diff = (
            max(self.options.max_probability_difference, 0.05)
            if mode == "int8"
            else (self.options.max_probability_difference)
        )
        problems = []
        if row["agreement"] < self.options.min_agreement:
            problems.append(
                f"top-1 agreement {row['agreement']:.1%} is below {self.options.min_agreement:.0%}"
            )
        if row["median_probability_difference"] > limit_diff:
            problems.append(
                f"median |p difference| {row['median_probability_difference']:.3f} is above {limit_diff}"
            )
        row["passed"] = not problems
        row["why"] = "; ".join(problems) or (
            f"agreement {row['agreement']:.1%}, "
            f"median |p difference| {row['median_probability_difference']:.3f}"
        )
        return Attempt(mode, path, row, probs)


def larger_calibration(folder: Path, used: int) -> list[np.ndarray] | None:
    """The int8 retry's photos: every image of the folder up to CALIBRATION_CAP, plus flipped
    copies while under it; None when that is no more than the ``used`` photos."""
    rgbs = with_flipped_copies(load_rgbs(folder, CALIBRATION_CAP, "calibration"), CALIBRATION_CAP)
    return rgbs if len(rgbs) > used else None


def retry_summary(first: dict[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
    """Whether more calibration helped int8 (for the report)."""
    return {
        "calibration_images": [first["calibration_images"], retry["calibration_images"]],
        "agreement": [first["agreement"], retry["agreement"]],
        "median_probability_difference": [
            first["median_probability_difference"],
            retry["median_probability_difference"],
        ],
        "passed": retry["passed"],
        "helped": retry["passed"] or retry["agreement"] > first["agreement"],
        "note": "TFLite already quantizes int8 weights per channel; calibration sets activation ranges",
    }


def convert(options: ConvertOptions) -> dict[str, Any]:
    """Convert, prove, install atomically; returns the report (also written as JSON)."""
    from ecolens.models import calibration_dir, eval_dir

    started = time.perf_counter()
    log(f"loading {options.source}")
    with native_output_silenced(not options.verbose):
        loaded = load_keras_model(options.source)
    if loaded.saved_batch is not None:
        log(f"saved with fixed batch size {loaded.saved_batch}: rebuilt with batch 1")
    stored = read_h5_metadata(options.source) if options.source.suffix == ".h5" else {}
    expected = 2 if loaded.output_kind == "sigmoid" else loaded.outputs
    labels, labels_source, numbered = labels_mod.resolve(
        options.source, expected, options.labels, options.labels_file, tuple(stored.get("labels", ()))
    )
    teachable_machine = numbered and bool(loaded.model.layers) and is_model(loaded.model.layers[0])
    calibration_folder = options.calibration or calibration_dir()
    calibration = load_rgbs(calibration_folder, options.calibration_count, "calibration")
    log(f"{len(calibration)} calibration photos from {calibration_folder}")
    eval_folder = options.eval or eval_dir()
    evalset = load_eval(eval_folder, labels) if options.validate else None
    height, width = loaded.input_size
    settle_output_kind(loaded, calibration, InputSpec(height, width, loaded.channels))
    prep, range_checks = preprocessing(
        options, loaded, stored.get("input", {}), labels, calibration, evalset, teachable_machine
    )
    log(
        f"input range {inputrange.name_of(prep.spec.mean, prep.spec.std, prep.spec.color_order)} "
        f"({prep.sources['input_range']})"
    )
    provenance = {
        **prep.sources,
        "labels": labels_source,
        "output": f"{loaded.output_kind} ({loaded.output_source})",
        "batch": f"rebuilt to batch 1 from saved batch {loaded.saved_batch}"
        if loaded.saved_batch
        else "free",
    }
    if teachable_machine:
        provenance["format"] = "Teachable Machine export (numbered labels.txt, nested Sequential)"

    def meta_for(mode: str) -> ModelMetadata:
        return build_metadata(options, loaded, stored, labels, prep, mode, provenance)

    session = Session(options, loaded, meta_for, calibration, evalset if options.validate else None)
    requested = options.mode
    report_out = options.out or default_out(options.source, requested)
    report_out.parent.mkdir(parents=True, exist_ok=True)
    order = AUTO_ORDER if requested == "auto" else (requested,)
    attempts: list[Attempt] = []
    chosen: Attempt | None = None
    int8_retry: dict[str, Any] | None = None
    try:
        for mode in order:
            log(f"converting to {mode}")
            attempt = session.attempt(mode, report_out.parent)
            attempts.append(attempt)
            log(f"{mode}: {'passed' if attempt.row['passed'] else 'failed'} ({attempt.row['why']})")
            more = (
                larger_calibration(calibration_folder, len(calibration))
                if mode == "int8" and not attempt.row["passed"] and options.validate
                else None
            )
            if more is not None:
                log(f"retrying int8 with {len(more)} calibration images (folder + flipped copies)")
                first, attempt = attempt, session.attempt(mode, report_out.parent, more)
                attempts.append(attempt)
                int8_retry = retry_summary(first.row, attempt.row)
                log(f"int8: {'passed' if attempt.row['passed'] else 'failed'} ({attempt.row['why']})")
            if attempt.row["passed"]:
                chosen = attempt
                break
        would_pass = None
        if chosen is None and requested != "auto":
            for mode in (m for m in AUTO_ORDER if m != requested):
                attempt = session.attempt(mode, report_out.parent)
                attempts.append(attempt)
                if attempt.row["passed"]:
                    would_pass = attempt
                    break
        out = options.out or default_out(options.source, chosen.mode if chosen else requested)
        report: dict[str, Any] = {
            "source": str(options.source),
            "output": str(out),
            "requested_mode": requested,
            "mode": chosen.mode if chosen else None,
            "preprocessing": {
                "input_range": inputrange.name_of(prep.spec.mean, prep.spec.std, prep.spec.color_order),
                "sources": provenance,
                "data_check": range_checks,
            },
            "attempts": [a.row for a in attempts],
            **({"int8_retry": int8_retry} if int8_retry else {}),
            "min_agreement": options.min_agreement,
        }
        final = chosen
        metadata = meta_for(final.mode) if final else meta_for(requested if requested != "auto" else "int8")
        report["metadata"] = json.loads(metadata.to_json())
        report_path = report_path_for(out)
        if final is not None and evalset is not None and final.probabilities is not None:
            positive = metadata.positive_label or labels[-1]
            report["validation"] = {
                "images": len(evalset.rgbs),
                "folder": str(eval_folder),
                **{k: v for k, v in final.row.items() if k not in ("mode", "passed", "why", "seconds")},
                "source_bytes": options.source.stat().st_size,
                "tflite_bytes": final.row["bytes"],
                "size_ratio": final.row["bytes"] / options.source.stat().st_size,
            }
            for key, probs in (
                ("source_metrics", session.source_probs),
                ("tflite_metrics", final.probabilities),
            ):
                metrics = quality(probs, evalset, labels, positive)
                if metrics is not None:
                    report["validation"][key] = metrics
            with native_output_silenced(not options.verbose):
                report["validation"].update(latency(loaded.model, final.path, evalset, 10))
            report["proof"] = proof(final.probabilities, evalset, labels, positive)
        report["seconds"] = round(time.perf_counter() - started, 1)
        report["passed"] = final is not None and not (report.get("proof") or {}).get("failure")
        report_path.write_text(json.dumps(report, indent=2, default=float) + "\n")
        report["report_path"] = str(report_path)
        if final is None:
            failed = [a for a in attempts if a.mode == attempts[0].mode][-1].row
            hint = (
                f"{would_pass.mode} passes ({would_pass.row['why']}): "
                f"use --quantize {would_pass.mode} or auto"
                if would_pass
                else "no mode passes"
                if requested != "auto"
                else f"tried {', '.join(a.mode for a in attempts)}"
            )
            raise ValidationFailed(
                f"{failed['mode']} does not match the source model ({failed['why']}); {hint}; "
                f"{out} was not written (report: {report_path})"
            )
        failure = (report.get("proof") or {}).get("failure")
        if failure and not options.allow_degenerate:
            raise ValidationFailed(
                f"{failure}: its input range may be wrong (input range "
                f"{report['preprocessing']['input_range']} from {prep.sources['input_range']}); "
                f"pass --input-range to set it, --eval with labelled photos of your classes, "
                f"or --allow-degenerate to write it anyway; {out} was not written (report: {report_path})"
            )
        if failure:
            log(f"WARNING: {failure} (written anyway: --allow-degenerate)")
        os.chmod(final.path, umask_mode())
        os.replace(final.path, out)
    finally:
        for attempt in attempts:
            attempt.path.unlink(missing_ok=True)
    log(f"wrote {out}")
    return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary for the terminal."""
    prep = report["preprocessing"]
    lines = [
        f"model: {report['output']} ({report['mode']})",
        f"input range:            {prep['input_range']} ({prep['sources']['input_range']})",
        f"labels:                 {', '.join(report['metadata']['labels'])} ({prep['sources']['labels']})",
        f"output:                 {prep['sources']['output']}",
    ]
    lines.append("quantization tried:")
    for row in report["attempts"]:
        verdict = "ok  " if row["passed"] else "fail"
        name = row["mode"]
        if "calibration_images" in row:
            name += f" ({row['calibration_images']} calibration images)"
        lines.append(
            f"  {name:<30} {verdict} {row['bytes'] / 1e6:6.2f} MB {row['seconds']:6.1f} s  {row['why']}"
        )
    retry = report.get("int8_retry")
    if retry:
        before, after = retry["agreement"]
        outcome = (
            "passed" if retry["passed"] else "helped, still failed" if retry["helped"] else "did not help"
        )
        lines.append(
            f"int8 calibration retry: {retry['calibration_images'][0]} -> {retry['calibration_images'][1]} "
            f"images, agreement {before:.1%} -> {after:.1%}: {outcome} "
            f"(weights are already quantized per channel)"
        )
    validation = report.get("validation")
    if validation:
        lines += [
            f"images compared:        {validation['images']}",
            f"top-1 agreement:        {validation['agreement']:.2%} (minimum {report['min_agreement']:.0%})",
            f"median |p difference|:  {validation['median_probability_difference']:.4f}",
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
    proof_ = report.get("proof")
    if proof_:
        lines.append(f"proof ({proof_['kind']}): {proof_['failure'] or 'passed'}")
    lines.append(f"report: {report.get('report_path')}")
    return "\n".join(lines)
