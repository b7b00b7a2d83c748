"""`ecolens inspect MODEL`: what a user checks before deploying: input shape and range (with
where it came from), labels, output kind, quantization, metadata and the file's SHA-256.
A .tflite needs only the edge runtime; a .h5/.keras needs the convert extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecolens.core.classifier import file_sha256
from ecolens.core.errors import EcoLensError, ModelError


def inspect_tflite(path: Path) -> dict[str, Any]:
    from ecolens.convert.inputrange import name_of
    from ecolens.convert.quiet import native_output_silenced
    from ecolens.core.metadata import read_metadata
    from ecolens.core.runtime import TFLiteModel

    with native_output_silenced():  # LiteRT announces its delegate on stderr
        model = TFLiteModel(path)
    tensor = model._input
    info: dict[str, Any] = {
        "file": str(path),
        "format": "tflite",
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "input_shape": [int(d) for d in tensor["shape"]],
        "input_dtype": str(model.input_dtype),
        "input_quantization": list(tensor["quantization"]),
        "runtime": model.runtime,
    }
    try:
        meta = read_metadata(path)
    except ModelError as exc:
        info["metadata"] = None
        info["problem"] = str(exc)
        return info
    spec = meta.input
    info.update(
        input_range=meta.extra.get("input_range") or name_of(spec.mean, spec.std, spec.color_order),
        input_range_source=meta.extra.get("provenance", {}).get("input_range", "not recorded"),
        labels=list(meta.labels),
        output=meta.output,
        quantization=meta.quantization,
        metadata=json.loads(meta.to_json()),
    )
    return info


def inspect_keras(path: Path, verbose: bool = False, photos: Path | None = None) -> dict[str, Any]:
    from ecolens.convert import inputrange, labels
    from ecolens.convert.graph import is_model
    from ecolens.convert.h5meta import read_h5_metadata
    from ecolens.convert.inputspec import DATA_CHECK_PHOTOS
    from ecolens.convert.loading import load_keras_model
    from ecolens.convert.quantize import load_rgbs
    from ecolens.convert.quiet import native_output_silenced
    from ecolens.convert.validate import source_probabilities
    from ecolens.core.metadata import InputSpec

    with native_output_silenced(not verbose):
        loaded = load_keras_model(path)
    stored = read_h5_metadata(path) if path.suffix == ".h5" else {}
    count = 2 if loaded.output_kind == "sigmoid" else loaded.outputs
    info: dict[str, Any] = {
        "file": str(path),
        "format": f"{path.suffix.lstrip('.')} ({loaded.flavour})",
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "input_shape": [loaded.saved_batch, *loaded.input_size, loaded.channels],
        "output": f"{loaded.output_kind} ({loaded.output_source})",
        "quantization": "none (Keras float32)",
    }
    try:
        names, where, numbered = labels.resolve(path, count, None, None, tuple(stored.get("labels", ())))
        info["labels"], info["labels_source"] = list(names), where
    except EcoLensError as exc:
        numbered = False
        names = tuple(f"class{i}" for i in range(count))
        info["labels"], info["labels_source"] = None, str(exc)
    stored_input = stored.get("input", {})
    if "mean" in stored_input:
        info["input_range"] = inputrange.name_of(
            stored_input["mean"], stored_input["std"], stored_input.get("color_order", "RGB")
        )
        info["input_range_source"] = ".h5 metadata (ecolens train)"
        return info
    spec = InputSpec(*loaded.input_size, channels=loaded.channels)
    claim = inputrange.from_graph(loaded.model) or inputrange.from_architecture(
        loaded.model, numbered and is_model(loaded.model.layers[0])
    )
    if photos is None:
        # Not an EcoLens model: the shipped waste photos say nothing of its range (a cat/dog
        # model is confident about nonsense on them). The graph or architecture may; the data
        # check needs photos of its own domain.
        if claim is not None:
            info["input_range"], info["input_range_source"] = claim.range.name, claim.source
            info["input_range_checked"] = "not against photos (give --photos DIR of its own domain)"
        else:
            info["input_range"] = None
            info["input_range_source"] = (
                "unknown from the file alone: give --photos DIR (photos of this model's own domain) "
                "to check it against data"
            )
        return info
    rgbs = load_rgbs(photos, DATA_CHECK_PHOTOS, "photos")
    try:
        finding, _ = inputrange.infer(
            loaded.model,
            lambda batch: source_probabilities(loaded.model, batch, loaded.output_kind),
            rgbs,
            spec,
            names,
            teachable_machine=numbered and is_model(loaded.model.layers[0]),
        )
        info["input_range"], info["input_range_source"] = finding.range.name, finding.source
    except EcoLensError as exc:
        info["input_range"], info["input_range_source"] = None, str(exc)
    return info


def inspect(path: Path, verbose: bool = False, photos: Path | None = None) -> dict[str, Any]:
    """``photos``: the model's own domain, for the input range's data check of a Keras model
    that is not EcoLens's own (never the shipped waste photos)."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() == ".tflite":
        return inspect_tflite(path)
    return inspect_keras(path, verbose, photos)


def format_inspection(info: dict[str, Any]) -> str:
    keys = (
        "file",
        "format",
        "sha256",
        "bytes",
        "input_shape",
        "input_dtype",
        "input_quantization",
        "input_range",
        "input_range_source",
        "input_range_checked",
        "labels",
        "labels_source",
        "output",
        "quantization",
        "problem",
    )
    shown = {key: ", ".join(map(str, v)) if isinstance(v, list) else v for key, v in info.items()}
    lines = [f"{key + ':':<20}{shown[key]}" for key in keys if key in shown]
    meta = info.get("metadata")
    if meta:
        lines.append(f"{'name/version:':<20}{meta['name']} {meta['version']}")
        lines.append(f"{'source sha256:':<20}{meta.get('source_sha256')}")
        for fact, source in meta.get("extra", {}).get("provenance", {}).items():
            lines.append(f"  {fact + ':':<18}{source}")
    return "\n".join(lines)
