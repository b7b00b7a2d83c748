"""`ecolens adapt`'s one entry point: frames -> trunk features -> the site's layer -> compared on
held-out frames -> written only when better (the steps are in the modules beside this one; the
method is in the package's docstring)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ecolens.convert.labels import POSITIVE_LABEL
from ecolens.convert.progress import progress
from ecolens.train.adapt.decision import HeldOut, compare, judge
from ecolens.train.adapt.fit import BASE_SHARE_GRID, FieldData, fit_site_head
from ecolens.train.adapt.frames import (
    check_counts,
    extract,
    folds_of,
    labelled,
    labelling_advice,
    site_frames,
)
from ecolens.train.adapt.model import base_model, gated_model, input_spec, split_head
from ecolens.train.adapt.options import AdaptOptions
from ecolens.train.adapt.output import write_adapted, write_report

log = progress("adapt")


def adapt(options: AdaptOptions) -> dict[str, Any]:
    """Fit, compare on held-out frames, write ``options.out`` only when better; returns the report."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    frames = site_frames(options)
    loaded, stored, labels = base_model(options.base)
    features, head = split_head(loaded.model)
    spec = input_spec(stored, loaded.input_size)
    positive = labels.index(POSITIVE_LABEL)

    fit_y, hold_y = labelled(frames.fit, labels), labelled(frames.holdout, labels)
    check_counts(f"the fitting part of {options.data}", fit_y, labels)
    check_counts(f"the held-out part of {options.data}", hold_y, labels)
    log(
        f"{len(frames.field)} field frames: {len(frames.fit)} to fit, {len(frames.holdout)} held out; "
        f"{len(frames.base_train)} base images mixed in, {len(frames.base_held)} base images held out"
    )
    advice = labelling_advice(np.concatenate([fit_y, hold_y]), labels)
    if advice:
        log(advice)

    fit_x = extract(features, frames.fit, spec, "field (fit)")
    fit_mirrored = extract(features, frames.fit, spec, "field (fit)", mirror=True)
    hold_x = extract(features, frames.holdout, spec, "field (held-out)")
    base_x = extract(features, frames.base_train, spec, "base (mixed in)")
    base_hold_x = extract(features, frames.base_held, spec, "base (held-out)")
    base_y, base_hold_y = labelled(frames.base_train, labels), labelled(frames.base_held, labels)

    w0, b0 = (np.asarray(v, dtype=np.float64) for v in head.get_weights())
    field = FieldData(fit_x, fit_mirrored, fit_y, folds_of(frames.fit))
    shares = BASE_SHARE_GRID if options.base_share is None else (options.base_share,)
    fitted = fit_site_head(field, base_x, base_y, w0, b0, positive, shares)

    comparison = compare(fitted, w0, b0, HeldOut(hold_x, hold_y), HeldOut(base_hold_x, base_hold_y), labels)
    report: dict[str, Any] = {
        "base_model": str(options.base),
        "data": str(options.data),
        "field_frames": {"fit": len(frames.fit), "held_out": len(frames.holdout)},
        "advice": advice,
        "base_images": {"mixed_in": len(frames.base_train), "held_out": len(frames.base_held)},
        **comparison.scores,
    }
    judge(report, comparison, options)

    if options.refit_all:
        hold_mirrored = extract(features, frames.holdout, spec, "field (held-out)", mirror=True)
        every = FieldData(
            np.concatenate([fit_x, hold_x]),
            np.concatenate([fit_mirrored, hold_mirrored]),
            np.concatenate([fit_y, hold_y]),
            folds_of([*frames.fit, *frames.holdout]),
        )
        fitted = fit_site_head(every, base_x, base_y, w0, b0, positive, shares)
        report["refit_on_all"] = len(every.y)
        log(f"refitted on all {len(every.y)} labelled field frames")
    write_adapted(gated_model(loaded.model, features, w0, b0, fitted), options, stored, labels, spec, report)
    if options.tflite is not None:
        from ecolens.train.adapt.deploy import deploy

        report["deployed"] = deploy(options.out, options.tflite, frames, report, labels)
        write_report(options, report)
    return report
