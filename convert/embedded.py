"""The metadata a converted model carries (name, version, labels, input spec, output kind,
quantization) with where each fact came from and which source file it was made from."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecolens.convert import inputrange
from ecolens.convert.inputspec import Preprocessing
from ecolens.convert.loading import LoadedModel
from ecolens.convert.options import ConvertOptions
from ecolens.core.errors import EcoLensError, ModelError
from ecolens.core.metadata import ModelMetadata

from ecolens import __version__


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_positive_label(labels: tuple[str, ...]) -> str | None:
    """The label that reads "plastic" in any case: Teachable Machine exports name their classes
    as typed ("Plastic"), and without a match the report's F1 would be of an arbitrary class."""
    return next((label for label in labels if label.strip().casefold() == "plastic"), None)


def build_metadata(
    options: ConvertOptions,
    loaded: LoadedModel,
    stored: dict[str, Any],
    labels: tuple[str, ...],
    prep: Preprocessing,
    mode: str,
    provenance: dict[str, str],
) -> ModelMetadata:
    positive = options.positive_label or stored.get("positive_label") or default_positive_label(labels)
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
