"""`ecolens convert`: .h5/.keras -> .tflite with embedded metadata, proven against the source model
on real photos before it is installed at the output path (atomic: all or nothing).

The steps live beside this module: the input spec (inputspec.py), the metadata (embedded.py), each
mode tried and judged (attempts.py), the proof (validate.py), the terminal summary (summary.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ecolens.convert import inputrange
from ecolens.convert import labels as labels_mod
from ecolens.convert.attempts import Attempt, Session, larger_calibration, retry_summary
from ecolens.convert.embedded import build_metadata
from ecolens.convert.graph import is_model
from ecolens.convert.h5meta import read_h5_metadata
from ecolens.convert.inputspec import preprocessing, settle_output_kind
from ecolens.convert.loading import load_keras_model
from ecolens.convert.options import ConvertOptions
from ecolens.convert.photos import plan
from ecolens.convert.progress import progress
from ecolens.convert.quantize import AUTO_ORDER, load_rgbs, spread
from ecolens.convert.quiet import native_output_silenced
from ecolens.convert.selective import SCREEN_ENOUGH
from ecolens.convert.validate import (
    EvalSet,
    latency,
    load_eval,
    proof,
    quality,
    source_probabilities,
    tflite_ms,
)
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec, ModelMetadata

log = progress("convert")


class ValidationFailed(EcoLensError):
    """The converted model disagrees with its source, or is not right at all."""


def default_out(source: Path, mode: str) -> Path:
    return source.with_name(f"{source.stem}.{mode}.tflite")


def report_path_for(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".tflite") + ".report.json")


def umask_mode() -> int:
    """0o666 less the process umask: what open() would have given a new file."""
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


def convert(options: ConvertOptions) -> dict[str, Any]:
    """Convert, prove, install atomically; returns the report (also written as JSON)."""
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
    photos = plan(options.source, stored, options.calibration, options.eval)
    calibration = load_rgbs(photos.calibration_paths, options.calibration_count, "calibration")
    log(f"{len(calibration)} calibration photos from {photos.calibration_folder}")
    eval_folder = photos.eval_folder
    evalset = load_eval(eval_folder, labels, paths=photos.eval_paths) if options.validate else None
    if evalset is not None:
        log(f"proof on {len(evalset.rgbs)} photos: {photos.source}")
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

    loaded_paths = set(spread(photos.calibration_paths, options.calibration_count))
    spare = [path for path in photos.calibration_paths if path not in loaded_paths]
    session = Session(options, loaded, meta_for, calibration, evalset if options.validate else None, spare)
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
                larger_calibration(photos.calibration_paths, len(calibration))
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
            "photos": photos.source,
            "attempts": [a.row for a in attempts],
            **({"int8_retry": int8_retry} if int8_retry else {}),
            "min_agreement": options.min_agreement,
            "min_agreement_all": options.min_agreement_all,
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
                full = [a for a in attempts if a.mode == "int8"]
                if final.mode == "int8-selective" and full:  # the cost of the layers kept in float
                    report["validation"]["int8_latency_ms"] = tflite_ms(full[-1].path, evalset.rgbs, 10)
                    report["validation"]["int8_bytes"] = full[-1].row["bytes"]
            report["proof"] = proof(final.probabilities, evalset, labels, positive)
            if report["proof"]["failure"]:
                report["proof"].update(
                    preprocessing_verdict(options, loaded, prep, evalset, labels, session.source_probs)
                )
        report["seconds"] = round(time.perf_counter() - started, 1)
        report["passed"] = final is not None and not (report.get("proof") or {}).get("evidence")
        verdict = report.get("proof") or {}
        note = verdict.get("property") or "written: --allow-degenerate"
        report["warnings"] = [f"{verdict['failure']} ({note})"] if verdict.get("failure") else []
        screened = final.row.get("screen_photos") if final else None
        if screened is not None and screened < SCREEN_ENOUGH:
            report["warnings"].append(
                f"int8-selective chose its layers on {screened} photos calibration did not use (fewer than "
                f"{SCREEN_ENOUGH}: 97 % and 99 % agreement look alike on so few); prove it on more "
                "photos of the site with --eval"
            )
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
        failure, evidence = verdict.get("failure"), verdict.get("evidence")
        if evidence and not options.allow_degenerate:
            raise ValidationFailed(
                f"{failure}: its input range looks wrong ({evidence}; input range "
                f"{report['preprocessing']['input_range']} from {prep.sources['input_range']}); "
                f"pass --input-range to set it, or --allow-degenerate to write it anyway; "
                f"{out} was not written (report: {report_path})"
            )
        for warning in report["warnings"]:
            log(f"WARNING: {warning}")
        os.chmod(final.path, umask_mode())
        os.replace(final.path, out)
    finally:
        for attempt in attempts:
            attempt.path.unlink(missing_ok=True)
    log(f"wrote {out}")
    return report


def preprocessing_verdict(
    options: ConvertOptions,
    loaded: Any,
    prep: Any,
    evalset: EvalSet,
    labels: tuple[str, ...],
    source_probs: Any,
) -> dict[str, Any]:
    """A proof that fails is a question about the input range, answered only on evidence:
    another range clearly better on the same photos (``evidence``: refuse), else a property of
    the model itself (``property``: the source answers the same way; warn and write)."""
    range_name = inputrange.name_of(prep.spec.mean, prep.spec.std, prep.spec.color_order)
    stated = bool(options.input_range or options.mean or options.std)
    truth = [labels.index(t) if t is not None else None for t in evalset.truth]
    evidence = None
    if not stated:  # a stated range was cross-checked before converting (inputspec.py)
        evidence = inputrange.evidence_against(
            range_name,
            lambda batch: source_probabilities(loaded.model, batch, loaded.output_kind),
            evalset.rgbs,
            prep.spec,
            labels,
            truth,
        )
    if evidence:
        return {"evidence": evidence}
    positive = labels[-1]
    same = proof(source_probs, evalset, labels, positive)["failure"] if source_probs is not None else None
    why = "the range you gave" if stated else f"its input range {range_name}"
    return {
        "evidence": None,
        "property": f"the source model does the same under {why}: a property of the model, not of the "
        "conversion"
        if same
        else f"under {why}; no other range does better on these photos",
    }
