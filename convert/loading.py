"""Load a trained Keras model from .h5 (Keras 2 or Keras 3) or .keras, with one clear error
for every way the file can be unusable."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.errors import EcoLensError, MissingDependencyError, ModelError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class LoadedModel:
    model: Any
    flavour: str  # "keras3" or "tf_keras" (legacy Keras 2)
    input_size: tuple[int, int]
    outputs: int
    output_kind: str  # "probabilities", "logits" or "sigmoid"


def file_kind(path: Path) -> str:
    """'h5' or 'keras' by content, not by name."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == HDF5_SIGNATURE:
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras"
    raise ModelError(f"{path} is not a Keras model file (expected HDF5 .h5 or a .keras archive)")


def _load_keras3(path: Path) -> Any:
    import keras  # imported (and found) before the try in load_keras_model

    return keras.models.load_model(path, compile=False)


def _load_tf_keras(path: Path) -> Any:
    try:
        import tf_keras
    except ImportError as exc:
        raise MissingDependencyError(
            f"{path} looks like a Keras 2 file that Keras 3 cannot read; "
            "install tf_keras to load it: pip install --no-deps tf_keras"
        ) from exc
    return tf_keras.models.load_model(path, compile=False)


def load_keras_model(path: str | Path) -> LoadedModel:
    """Keras 3 first; legacy Keras-2 HDF5 files that Keras 3 rejects go through tf_keras."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    kind = file_kind(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401 - a missing convert extra is reported as such, not as a bad file

    try:
        model, flavour = _load_keras3(path), "keras3"
    except Exception as keras3_error:  # Keras raises many types for incompatible files
        if kind != "h5":
            raise ModelError(f"cannot load {path}: {keras3_error}") from keras3_error
        try:
            model, flavour = _load_tf_keras(path), "tf_keras"
        except EcoLensError:
            raise
        except Exception as legacy_error:
            raise ModelError(
                f"cannot load {path} with Keras 3 ({first_line(keras3_error)}) "
                f"nor with tf_keras ({first_line(legacy_error)})"
            ) from legacy_error
    return describe(model, flavour, path)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def output_kind(model: Any, outputs: int) -> str:
    """Read the last layer's activation: softmax -> probabilities, sigmoid -> sigmoid, else logits."""
    layer = model.layers[-1]
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "") or layer.__class__.__name__.lower()
    if "softmax" in name:
        return "probabilities"
    if "sigmoid" in name:
        if outputs != 1:
            raise ModelError("a sigmoid output with several units is multi-label, not a class vector")
        return "sigmoid"
    if outputs == 1:
        raise ModelError("the model has a single linear output: not a class vector")
    return "logits"


def describe(model: Any, flavour: str, path: Path) -> LoadedModel:
    """Check the model is an image classifier the edge can run and read its shapes."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{path}: expected one image input and one output")
    in_shape = tuple(model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or in_shape[3] != 3 or in_shape[1] is None or in_shape[2] is None:
        raise ModelError(f"{path}: expected a fixed-size RGB image input (N, H, W, 3), got {in_shape}")
    if len(out_shape) != 2 or out_shape[1] is None:
        raise ModelError(f"{path}: output shape {out_shape} is not a class vector (N, classes)")
    outputs = int(out_shape[1])
    return LoadedModel(
        model=model,
        flavour=flavour,
        input_size=(int(in_shape[1]), int(in_shape[2])),
        outputs=outputs,
        output_kind=output_kind(model, outputs),
    )
