"""One conversion tried in one quantization mode: the .tflite written privately beside the output
and judged against the source model (top-1 agreement where the source's answer is decided,
probability difference), the int8 retry on a larger calibration set when the first int8 try
fails, and int8 with the layers that most change its answers kept in float (convert/selective.py)."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.loading import LoadedModel
from ecolens.convert.metrics import percent
from ecolens.convert.options import ConvertOptions
from ecolens.convert.progress import progress
from ecolens.convert.quantize import CALIBRATION_CAP, load_rgbs, spread, to_tflite, with_flipped_copies
from ecolens.convert.quiet import native_output_silenced
from ecolens.convert.selective import (
    MAX_LATENCY_RATIO,
    SCREEN_CAP,
    SENSITIVITY_PHOTOS,
    Screen,
    SelectiveInt8,
    latency_ratio,
    ranked,
    split_for_screen,
    steps,
)
from ecolens.convert.validate import agreement, source_inputs, source_probabilities, tflite_probabilities
from ecolens.core.metadata import embed_metadata
from ecolens.core.preprocess import to_model_input

log = progress("convert")


def write_private(directory: Path, name: str, data: bytes) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(tmp_name)


@dataclass
class Attempt:
    mode: str
    path: Path
    row: dict[str, Any]
    probabilities: np.ndarray | None


class Session:
    """One conversion: the loaded model, its metadata and the photos, tried in several modes."""

    def __init__(
        self,
        options: ConvertOptions,
        loaded: LoadedModel,
        meta_for,
        calibration,
        evalset,
        spare_paths: list[Path] | None = None,
    ):
        self.options = options
        self.loaded = loaded
        self.meta_for = meta_for
        self.calibration = calibration
        self.evalset = evalset
        # calibration photos beyond --calibration-count: more photos for int8-selective's screen
        self.spare_paths = spare_paths or []
        self.source_probs: np.ndarray | None = None

    def attempt(self, mode: str, directory: Path, calibration: list[np.ndarray] | None = None) -> Attempt:
        """Convert in ``mode`` and judge it; int8 calibrates on ``calibration`` (default: the
        `--calibration-count` photos)."""
        if mode == "int8-selective":
            return self.selective(directory, calibration)
        metadata = self.meta_for(mode)
        started = time.perf_counter()
        rgbs = self.calibration if calibration is None else calibration
        tensors = [to_model_input(rgb, metadata.input) for rgb in rgbs] if mode == "int8" else None
        with native_output_silenced(not self.options.verbose):
            flatbuffer = to_tflite(self.loaded.model, mode, tensors, self.options.io_type)
        extra = {"calibration_images": len(rgbs)} if mode == "int8" else {}
        return self.judge(mode, flatbuffer, directory, started, extra)

    def selective(self, directory: Path, calibration: list[np.ndarray] | None) -> Attempt:
        """int8 calibrated once, then re-quantized keeping the k layers whose int8 most changes
        the output in float, for growing k (convert/selective.py). A candidate is proven once it
        passes the screen (``screen_for``) within MAX_LATENCY_RATIO of full int8's latency; the
        first that passes the proof is kept. Every candidate is in the report's ``candidates``."""
        metadata = self.meta_for("int8-selective")
        started = time.perf_counter()
        rgbs = self.calibration if calibration is None else calibration
        tensors = [to_model_input(rgb, metadata.input) for rgb in rgbs]
        calibrated, kept_out = split_for_screen(tensors)
        with native_output_silenced(not self.options.verbose):
            model = SelectiveInt8(
                self.loaded.model, calibrated, self.loaded.output_kind, self.options.verbose
            )
            sensitivity = model.sensitivity(spread(calibrated, SENSITIVITY_PHOTOS), log)
            full_int8 = model.quantized([])
        order = ranked(sensitivity)
        total = sum(sensitivity.values()) or 1.0
        screen = self.screen_for(kept_out, calibrated, metadata.input)
        extra: dict[str, Any] = {
            "calibration_images": len(calibrated),
            "calibration_seconds": round(time.perf_counter() - started, 2),
            "screen_photos": screen.unseen,
            "candidates": [],
        }
        attempt: Attempt | None = None
        flatbuffer = full_int8
        refusal = ""
        for kept in steps(len(order)):
            step = time.perf_counter()
            with native_output_silenced(not self.options.verbose):
                flatbuffer = model.quantized(order[:kept])
                measured = screen.measure(model.probabilities(flatbuffer, screen.tensors))
            candidate: dict[str, Any] = {
                "kept": kept,
                "screen_agreement": round(measured["agreement"], 4),
                "screen_agreement_all_photos": round(measured["agreement_all_photos"], 4),
                "error_share_left": round(sum(sensitivity[name] for name in order[kept:]) / total, 3),
            }
            extra["candidates"].append(candidate)
            extra["kept_in_float"] = kept_report(order[:kept], sensitivity, total)
            if not screen.passes(measured):
                candidate["seconds"] = round(time.perf_counter() - step, 2)
                continue
            with native_output_silenced(not self.options.verbose):
                ratio = latency_ratio(flatbuffer, full_int8, calibrated[0])
            candidate["latency_vs_int8"] = round(ratio, 2)
            if ratio > MAX_LATENCY_RATIO:
                refusal = (
                    f"keeping {kept} layers in float costs {ratio:.2f}x full int8's latency "
                    f"(at most {MAX_LATENCY_RATIO}x)"
                )
                break
            if attempt is not None:
                attempt.path.unlink(missing_ok=True)
            attempt = self.judge("int8-selective", flatbuffer, directory, started, dict(extra))
            candidate.update(
                proof_agreement=attempt.row.get("agreement"),
                passed=attempt.row["passed"],
                seconds=round(time.perf_counter() - step, 2),
            )
            if attempt.row["passed"]:
                return attempt
        best = max(extra["candidates"], key=lambda c: c["screen_agreement"])
        refusal = refusal or (
            f"no candidate kept {screen.floors[0]:.1%} of the source's decided answers "
            f"({screen.floors[1]:.1%} of all) on {screen.unseen} photos calibration did not use "
            f"and passed the proof (best: {best['kept']} layers in float, {best['screen_agreement']:.1%})"
        )
        if attempt is None:
            attempt = self.judge("int8-selective", flatbuffer, directory, started, dict(extra))
        attempt.row["passed"] = False
        attempt.row["why"] = f"{refusal}; {attempt.row['why']}"
        return attempt

    def screen_for(self, kept_out: list[np.ndarray], calibrated: list[np.ndarray], spec: Any) -> Screen:
        """int8-selective's screen: the calibration photos it did not calibrate on (every third
        loaded one, then those beyond --calibration-count up to SCREEN_CAP) and the proof photos,
        where a candidate must keep the proof's floors halfway closer to 100 %. Counted on
        calibrated photos at the plain floors, a real export's candidates passed by luck (12
        layers: 98.0 % there, 95.7 % on 422 unseen photos): a photo calibration saw never clips."""
        proof = [to_model_input(rgb, spec) for rgb in self.evalset.rgbs] if self.evalset else []
        room = max(0, SCREEN_CAP - len(kept_out) - len(proof))
        spare = load_rgbs(self.spare_paths, room, "calibration") if self.spare_paths and room else []
        unused = kept_out + [to_model_input(rgb, spec) for rgb in spare]
        unseen = len(unused) + len(proof)  # what the report counts: calibration never saw these
        if not unused and not proof:  # a handful of photos and --no-validate: nothing else to use
            unused = calibrated
        parts = (
            [source_probabilities(self.loaded.model, np.stack(unused), self.loaded.output_kind)]
            if unused
            else []
        )
        source = np.concatenate([*parts, self.proof_source(spec)] if proof else parts)
        tensors = unused + proof
        floors = (1 + self.options.min_agreement) / 2, (1 + self.options.min_agreement_all) / 2
        return Screen(tensors, source, floors, 2 * self.allowed_difference("int8-selective"), unseen)

    def proof_source(self, spec: Any) -> np.ndarray:
        """The source model's probabilities on the proof photos, computed once per conversion."""
        if self.source_probs is None:
            batch = source_inputs(self.evalset.rgbs, spec)
            self.source_probs = source_probabilities(self.loaded.model, batch, self.loaded.output_kind)
        return self.source_probs

    def allowed_difference(self, mode: str) -> float:
        """The median |probability difference| a mode may show (int8 activations round more)."""
        if mode.startswith("int8"):
            return max(self.options.max_probability_difference, 0.05)
        return self.options.max_probability_difference

    def judge(self, mode: str, flatbuffer: bytes, directory: Path, started: float, extra: dict) -> Attempt:
        """Write the flatbuffer privately and compare it with the source on the proof photos."""
        metadata = self.meta_for(mode)
        path = write_private(
            directory, f"{self.options.source.stem}.{mode}.tflite", embed_metadata(flatbuffer, metadata)
        )
        row: dict[str, Any] = {
            "mode": mode,
            "bytes": path.stat().st_size,
            "seconds": round(time.perf_counter() - started, 2),
            **extra,
        }
        if self.evalset is None:
            row.update(passed=True, why="not validated (--no-validate)")
            return Attempt(mode, path, row, None)
        source_probs = self.proof_source(metadata.input)
        with native_output_silenced(not self.options.verbose):  # LiteRT announces its delegate
            probs = tflite_probabilities(path, self.evalset.rgbs)
        limit_diff = self.allowed_difference(mode)
        # a photo whose source answer is decided by less than twice the allowed probability
        # difference flips with quantization noise alone: agreement is counted on the others
        row.update(agreement(source_probs, probs, noise=2 * limit_diff))
        problems = []
        floor = self.options.min_agreement
        if row["agreement"] < floor:
            problems.append(
                f"top-1 agreement {percent(row['agreement'], floor)} is below {percent(floor, floor)} "
                f"(on {row['decided_photos']} photos the source decides by more than {2 * limit_diff:.2f})"
            )
        # Near-ties flip with quantization, but a model whose answers change on more than 1 in
        # 20 of its own photos is not the model its users trained (a 4-class export flipped 4 of
        # its 10 near-ties in int8 and agreed on 93 % of 70 photos while passing the line above).
        floor_all = self.options.min_agreement_all
        if row["agreement_all_photos"] < floor_all:
            problems.append(
                f"top-1 agreement on all {len(self.evalset.rgbs)} photos "
                f"{percent(row['agreement_all_photos'], floor_all)} is below {percent(floor_all, floor_all)}"
            )
        if row["median_probability_difference"] > limit_diff:
            problems.append(
                f"median |p difference| {row['median_probability_difference']:.3f} is above {limit_diff}"
            )
        if not problems and self.options.gate is not None:
            problem = self.options.gate(probs, self.evalset)
            if problem:
                problems.append(problem)
        row["passed"] = not problems
        row["why"] = "; ".join(problems) or (
            f"agreement {percent(row['agreement'], floor)}, "
            f"median |p difference| {row['median_probability_difference']:.3f}"
        )
        if "kept_in_float" in extra:
            row["why"] += f"; {len(extra['kept_in_float'])} layer(s) kept in float"
        return Attempt(mode, path, row, probs)


def kept_report(names: list[str], sensitivity: dict[str, float], total: float) -> list[dict[str, Any]]:
    """The layers kept in float and the share of int8's output error each one alone caused."""
    return [{"layer": name, "output_error_share": round(sensitivity[name] / total, 3)} for name in names]


def larger_calibration(paths: list[Path], used: int) -> list[np.ndarray] | None:
    """The int8 retry's photos: every calibration image up to CALIBRATION_CAP, plus flipped
    copies while under it; None when that is no more than the ``used`` photos."""
    rgbs = with_flipped_copies(load_rgbs(paths, CALIBRATION_CAP, "calibration"), CALIBRATION_CAP)
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
