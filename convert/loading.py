"""Load a trained Keras model from .h5 (Keras 2 or Keras 3) or .keras, with one clear error
for every way the file can be unusable, and read what the edge needs from it."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.convert.graph import final_layer
from ecolens.core.errors import EcoLensError, MissingDependencyError, ModelError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
WEIGHTS_ONLY = "holds only weights; re-save with model.save()"


@dataclass
class LoadedModel:
    model: Any
    flavour: str  # "keras3" or "tf_keras" (legacy Keras 2)
    input_size: tuple[int, int]
    outputs: int
    output_kind: str  # "probabilities", "logits" or "sigmoid"
    channels: int = 3
    output_source: str = "final layer"
    saved_batch: int | None = None  # the fixed batch size the file was saved with, if any


def file_kind(path: Path) -> str:
    """'h5' or 'keras' by content, not by name; weights-only and corrupt files named as such."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == HDF5_SIGNATURE:
        check_h5(path)
        return "h5"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
        if "config.json" not in members:
            if "model.weights.h5" in members:
                raise ModelError(f"{path} {WEIGHTS_ONLY}")
            raise ModelError(f"{path} is a ZIP archive but not a .keras model (no config.json)")
        return "keras"
    raise ModelError(f"{path} is not a Keras model file (expected HDF5 .h5 or a .keras archive)")


def check_h5(path: Path) -> None:
    """A readable HDF5 file that holds a model architecture, not only weights."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            has_config = "model_config" in handle.attrs
            has_groups = len(handle.keys()) > 0
            weights_only = "layer_names" in handle.attrs or {"layers", "vars"} <= set(handle.keys())
    except OSError as exc:
        raise ModelError(f"{path} is a damaged or truncated HDF5 file ({first_line(exc)})") from exc
    if has_config:
        return
    if weights_only or has_groups:
        raise ModelError(f"{path} {WEIGHTS_ONLY}")
    raise ModelError(f"{path} is an HDF5 file without a Keras model in it")


def _load_keras3(path: Path) -> Any:
    import keras  # imported (and found) before the try in load_keras_model

    return keras.models.load_model(path, compile=False)


def _load_tf_keras(path: Path) -> Any:
    try:
        import tf_keras
    except ImportError as exc:
        raise MissingDependencyError(
            f"{path} looks like a Keras 2 file that Keras 3 cannot read; "
            "install the converter's extra to load it: pip install 'ecolens[convert]'"
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
            raise ModelError(f"cannot load {path}: {first_line(keras3_error)}") from keras3_error
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


def activation_name(layer: Any) -> str:
    """'softmax', 'sigmoid', 'linear', ... for a Dense/Activation/Softmax layer (both Kerases)."""
    if layer.__class__.__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    if isinstance(activation, str):
        return activation
    name = getattr(activation, "__name__", "")
    if name:
        return name
    function = str(getattr(layer, "function", "") or getattr(layer, "symbol", ""))
    return "softmax" if "softmax" in function else "sigmoid" if "sigmoid" in function else "linear"


def output_kind(model: Any, outputs: int) -> tuple[str, str]:
    """The final activation, found inside nested models: softmax -> probabilities, sigmoid ->
    sigmoid, else logits; and where it was found (for the report)."""
    layer = final_layer(model)
    name = activation_name(layer)
    where = f"{name} in layer {layer.name!r}"
    if "softmax" in name:
        return "probabilities", where
    if "sigmoid" in name:
        if outputs != 1:
            raise ModelError("a sigmoid output with several units is multi-label, not a class vector")
        return "sigmoid", where
    if outputs == 1:
        raise ModelError("the model has a single linear output: not a class vector")
    return "logits", where


def without_fixed_batch(config: Any) -> Any:
    """The model config with every saved batch size replaced by None (in place; returned)."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key in ("batch_shape", "batch_input_shape") and isinstance(value, list | tuple) and value:
                config[key] = [None, *value[1:]]
            else:
                without_fixed_batch(value)
    elif isinstance(config, list):
        for value in config:
            without_fixed_batch(value)
    return config


def rebuild_unbatched(model: Any, path: Path) -> Any:
    """The same model and weights with a free batch dimension, so it converts to batch 1."""
    try:
        clone = type(model).from_config(without_fixed_batch(model.get_config()))
        clone.set_weights(model.get_weights())
    except Exception as exc:  # custom layers may not round-trip their config
        raise ModelError(
            f"{path} was saved with a fixed batch size and cannot be rebuilt with batch 1 "
            f"({first_line(exc)}); re-save it with a free batch size (keras.Input(shape=...))"
        ) from exc
    return clone


def describe(model: Any, flavour: str, path: Path) -> LoadedModel:
    """Check the model is an image classifier the edge can run and read its shapes."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{path}: expected one image input and one output")
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4 or in_shape[3] not in (1, 3) or in_shape[1] is None or in_shape[2] is None:
        raise ModelError(
            f"{path}: expected a fixed-size image input (N, H, W, 3) or (N, H, W, 1), got {in_shape}"
        )
    saved_batch = in_shape[0]
    if saved_batch is not None:
        model = rebuild_unbatched(model, path)
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None:
        raise ModelError(f"{path}: output shape {out_shape} is not a class vector (N, classes)")
    outputs = int(out_shape[1])
    kind, source = output_kind(model, outputs)
    return LoadedModel(
        model=model,
        flavour=flavour,
        input_size=(int(in_shape[1]), int(in_shape[2])),
        outputs=outputs,
        output_kind=kind,
        channels=int(in_shape[3]),
        output_source=source,
        saved_batch=int(saved_batch) if saved_batch is not None else None,
    )
