"""The input spec a converted model carries, and where each fact of it came from: the flags, then
the .h5's EcoLens metadata, then the graph, the architecture or a check on real photos
(convert/inputrange.py); a range the user gave is cross-checked on the same photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ecolens.convert import inputrange
from ecolens.convert.loading import LoadedModel
from ecolens.convert.options import ConvertOptions
from ecolens.convert.progress import progress
from ecolens.convert.validate import EvalSet, source_probabilities
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import to_model_input

# Photos the input-range data check runs the source model on (per candidate range).
DATA_CHECK_PHOTOS = 64

log = progress("convert")


@dataclass
class Preprocessing:
    spec: InputSpec
    sources: dict[str, str] = field(default_factory=dict)


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
