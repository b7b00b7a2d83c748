"""What `ecolens adapt` leaves behind: the adapted .h5 with its metadata (next version, where it
came from, what was fitted), the report beside it as .adapt.json, and the table it prints."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ecolens.convert.labels import POSITIVE_LABEL
from ecolens.convert.progress import progress
from ecolens.core.metadata import InputSpec
from ecolens.train.adapt.options import AdaptOptions
from ecolens.train.saving import save_h5

log = progress("adapt")


def write_adapted(
    model: Any,
    options: AdaptOptions,
    stored: dict[str, Any],
    labels: tuple[str, ...],
    spec: InputSpec,
    report: dict[str, Any],
) -> None:
    """The adapted model at ``options.out`` (the base's metadata, updated) and its report beside
    it; the report gains ``written``, ``out`` and ``version``."""
    version = options.version or next_version(str(stored.get("version", "1.0.0")))
    metadata = dict(stored)
    metadata.update(
        labels=list(labels),
        positive_label=POSITIVE_LABEL,
        version=version,
        adapted_from={"file": options.base.name, "version": stored.get("version")},
        adaptation={"gain": report["gain"], "base_drop": report["base_drop"], **report["fitted"]},
        # its site gate opens only on the site's frames: int8 must be calibrated on them
        # (`ecolens convert` refuses it without --calibration: convert/photos.py)
        needs_site_frames=True,
    )
    if "input" not in metadata:
        metadata["input"] = dataclasses.asdict(spec)
    save_h5(model, options.out, metadata)
    report.update(written=True, out=str(options.out), version=version)
    write_report(options, report)
    log(f"saved {options.out} (version {version})")


def write_report(options: AdaptOptions, report: dict[str, Any]) -> None:
    options.out.with_suffix(".adapt.json").write_text(json.dumps(report, indent=2) + "\n")


def next_version(version: str) -> str:
    """1.0.0 -> 1.0.1; anything without a trailing number gets '.1'."""
    head, _, last = version.rpartition(".")
    if last.isdigit():
        return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)
    return f"{version}.1"


def format_report(report: dict[str, Any]) -> str:
    """A small table: base vs adapted on the held-out field frames and base images."""
    lines = [f"{'':42}{'balanced acc':>14}{'plastic F1':>12}{'ECE':>8}"]
    for part, title in (("field_held_out", "field frames"), ("base_held_out", "base images")):
        for which in ("base", "adapted"):
            m = report[part][which]
            name = f"{which} model, {m['n']} held-out {title}"
            lines.append(f"{name:<42}{m['balanced_accuracy']:>14.3f}{m['plastic_f1']:>12.3f}{m['ece']:>8.3f}")
    lines.append(
        f"gain {report['gain']:+.3f} on field frames ({report['gain_lower_bound']:+.3f} or more in 9 of "
        f"10 resamplings), {-report['base_drop']:+.3f} on base images; "
        f"temperature {report['fitted']['temperature']:.2f}, "
        f"threshold shift {report['fitted']['positive_logit_shift']:+.2f}"
    )
    deployed = report.get("deployed")
    if deployed:
        lines.append(
            f"deployable model: {deployed['tflite']} ({deployed['mode']}, {deployed['bytes'] / 1e6:.2f} MB), "
            f"balanced accuracy {deployed['held_out_balanced_accuracy']:.3f} on the held-out frames, "
            f"agreement with the .h5 {deployed['agreement']:.1%}"
        )
    return "\n".join(lines)
