"""The model's own description of itself, embedded in the .tflite so a device needs nothing else.

Format: the .tflite flatbuffer followed by a ZIP archive holding ``ecolens.json`` (the same
"associated files" layout TFLite Support uses). Flatbuffer readers ignore the trailing bytes;
``zipfile`` finds the archive from the end of the file.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ecolens.core.errors import ModelError

METADATA_MEMBER = "ecolens.json"
METADATA_SCHEMA = "ecolens.model/1"

ResizePolicy = Literal["stretch", "center_crop", "letterbox"]
RESIZE_POLICIES = ("stretch", "center_crop", "letterbox")
OutputKind = Literal["probabilities", "logits", "sigmoid"]


@dataclass(frozen=True)
class InputSpec:
    """How an RGB image becomes the model's input tensor (``channels`` 1: converted to grey first)."""

    height: int
    width: int
    channels: int = 3
    color_order: Literal["RGB", "BGR"] = "RGB"
    resize: ResizePolicy = "stretch"
    # Per-channel (x - mean) / std applied to 0..255 pixel values, in ``color_order``
    # (a greyscale model uses the first value of each).
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the edge needs to turn an image into a labelled result."""

    name: str
    version: str
    labels: tuple[str, ...]
    input: InputSpec
    output: OutputKind = "probabilities"
    positive_label: str | None = None
    quantization: str = "float32"
    source_sha256: str | None = None
    source_file: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = METADATA_SCHEMA
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        """Parse and check a metadata dict; raises ModelError naming what is wrong."""
        try:
            if data.get("schema") != METADATA_SCHEMA:
                raise ModelError(f"unsupported metadata schema {data.get('schema')!r}")
            spec = dict(data["input"])
            spec["mean"] = tuple(float(v) for v in spec["mean"])
            spec["std"] = tuple(float(v) for v in spec["std"])
            meta = cls(
                name=str(data["name"]),
                version=str(data["version"]),
                labels=tuple(str(label) for label in data["labels"]),
                input=InputSpec(**spec),
                output=data.get("output", "probabilities"),
                positive_label=data.get("positive_label"),
                quantization=data.get("quantization", "float32"),
                source_sha256=data.get("source_sha256"),
                source_file=data.get("source_file"),
                created=data.get("created"),
                extra=dict(data.get("extra", {})),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model metadata is incomplete or malformed: {exc!r}") from exc
        meta.check()
        return meta

    def check(self) -> None:
        """Reject metadata the runtime could not honour."""
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ModelError(f"model metadata needs at least two distinct labels, got {self.labels}")
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise ModelError(f"positive label {self.positive_label!r} is not one of {self.labels}")
        spec = self.input
        if spec.height <= 0 or spec.width <= 0 or spec.channels not in (1, 3):
            raise ModelError(f"unsupported input shape {spec.height}x{spec.width}x{spec.channels}")
        if spec.resize not in RESIZE_POLICIES:
            raise ModelError(f"unknown resize policy {spec.resize!r}")
        if spec.color_order not in ("RGB", "BGR"):
            raise ModelError(f"unknown colour order {spec.color_order!r}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or any(s == 0 for s in spec.std):
            raise ModelError("normalization needs three means and three non-zero stds")
        if self.output not in ("probabilities", "logits", "sigmoid"):
            raise ModelError(f"unknown output kind {self.output!r}")
        if self.output == "sigmoid" and len(self.labels) != 2:
            raise ModelError("a sigmoid output needs exactly two labels (negative, positive)")


def embed_metadata(tflite: bytes, meta: ModelMetadata) -> bytes:
    """Return the flatbuffer with ``ecolens.json`` appended as a ZIP archive."""
    meta.check()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(METADATA_MEMBER, meta.to_json())
    return tflite + buffer.getvalue()


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read the embedded metadata of a .tflite file, with a clear error when absent."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(METADATA_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(
            f"{path} carries no EcoLens metadata (labels, input spec); "
            "convert it with `ecolens convert` or attach metadata with `ecolens convert --help`"
        ) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ModelError(f"{path}: embedded metadata is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: embedded metadata is not a JSON object")
    return ModelMetadata.from_dict(data)
