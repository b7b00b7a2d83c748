"""The one classifier that `classify`, the MQTT daemon and the HTTP API all call.

load (model + metadata) -> preprocess (ecolens.core.preprocess) -> predict (runtime)
-> postprocess (probabilities -> result contract).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ecolens.core.contract import make_result
from ecolens.core.errors import ImageError, ModelError
from ecolens.core.metadata import ModelMetadata, read_metadata
from ecolens.core.preprocess import (
    DEFAULT_MAX_PIXELS,
    EncodedImage,
    decode_for_model,
    inspect_image,
    quantized_model_input,
    read_image_file,
    resize_for_model,
)
from ecolens.core.runtime import TFLiteModel

if TYPE_CHECKING:  # only a type here: `ecolens classify` starts without pydantic
    from ecolens.core.config import ModelSection


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_probabilities(raw: np.ndarray, kind: str) -> np.ndarray:
    """Model output vector -> one probability per label."""
    raw = raw.astype(np.float64)
    if kind == "sigmoid":
        positive = float(np.clip(raw[0], 0.0, 1.0))
        return np.array([1.0 - positive, positive])
    if kind == "logits":
        shifted = np.exp(raw - raw.max())
        return shifted / shifted.sum()
    total = raw.sum()
    return raw / total if total > 0 else np.full_like(raw, 1.0 / len(raw))


class Classifier:
    """A loaded model plus its metadata. Thread-safe: inference is serialised per instance."""

    def __init__(
        self,
        model_path: str | Path,
        threads: int | None = None,
        min_confidence: float = 0.0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        kernels: str = "auto",
    ) -> None:
        self.path = Path(model_path)
        self.metadata: ModelMetadata = read_metadata(self.path)
        self.model = TFLiteModel(self.path, threads=threads, kernels=kernels)
        self._check_consistency()
        self.sha256 = file_sha256(self.path)
        self.min_confidence = min_confidence
        self.max_pixels = max_pixels
        self.model_info = {
            "name": self.metadata.name,
            "version": self.metadata.version,
            "sha256": self.sha256,
            "quantization": self.metadata.quantization,
        }

    @classmethod
    def from_settings(
        cls,
        model: ModelSection,
        *,
        path: str | Path | None = None,
        threads: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Classifier:
        """The one way the daemon, the API and classify turn [model] into a classifier;
        ``path`` and ``threads`` override the section (a reload, a worker's share of cores)."""
        return cls(
            path if path is not None else model.resolved_path(),
            threads=threads if threads is not None else model.threads,
            min_confidence=model.min_confidence,
            max_pixels=max_pixels,
        )

    def _check_consistency(self) -> None:
        meta, model = self.metadata, self.model
        if model.input_shape != (meta.input.height, meta.input.width):
            raise ModelError(
                f"{self.path}: metadata says input {meta.input.height}x{meta.input.width}, "
                f"the model takes {model.input_shape[0]}x{model.input_shape[1]}"
            )
        if model.channels != meta.input.channels:
            raise ModelError(
                f"{self.path}: metadata says {meta.input.channels} input channel(s), "
                f"the model takes {model.channels}"
            )
        expected = 1 if meta.output == "sigmoid" else len(meta.labels)
        if model.output_size != expected:
            raise ModelError(
                f"{self.path}: {len(meta.labels)} labels in metadata but the model outputs "
                f"{model.output_size} values"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.metadata.labels

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """RGB uint8 image of any size -> (probabilities per label, inference milliseconds)."""
        return self.predict_resized(resize_for_model(rgb, self.metadata.input))

    def predict_encoded(self, image: EncodedImage) -> tuple[np.ndarray, float]:
        """An inspected encoded image -> (probabilities, inference ms): one reduced decode."""
        return self.predict_resized(decode_for_model(image, self.metadata.input))

    def predict_resized(self, resized: np.ndarray) -> tuple[np.ndarray, float]:
        """RGB uint8 already at the model's input size -> (probabilities, inference ms)."""
        tensor = quantized_model_input(resized, self.metadata.input, self.model.input_quantization)
        started = time.perf_counter()
        raw = self.model.run(tensor)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return to_probabilities(raw, self.metadata.output), elapsed_ms

    def result(
        self,
        probabilities: Sequence[float],
        inference_ms: float,
        seen_at: datetime | None = None,
        **optional: Any,
    ) -> dict[str, Any]:
        """Probabilities -> the result contract (used directly when frames are combined)."""
        return make_result(
            self.labels,
            probabilities,
            self.model_info,
            inference_ms,
            seen_at=seen_at,
            min_confidence=self.min_confidence,
            **optional,
        )

    def classify(self, rgb: np.ndarray, seen_at: datetime | None = None, **optional: Any) -> dict:
        probabilities, elapsed_ms = self.predict(rgb)
        return self.result(probabilities, elapsed_ms, seen_at=seen_at, **optional)

    def classify_encoded(self, image: EncodedImage, **optional: Any) -> dict[str, Any]:
        probabilities, elapsed_ms = self.predict_encoded(image)
        return self.result(probabilities, elapsed_ms, **optional)

    def classify_bytes(self, data: bytes, **optional: Any) -> dict[str, Any]:
        return self.classify_encoded(inspect_image(data, self.max_pixels), **optional)

    def classify_file(self, path: str | Path, **optional: Any) -> dict[str, Any]:
        image = read_image_file(path, self.max_pixels)
        try:
            return self.classify_encoded(image, source=str(path), **optional)
        except ImageError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
