"""Keras model -> .tflite bytes in one of four modes.

int8 is full-integer: weights and activations int8, int8 (or uint8) input/output tensors,
activation ranges calibrated on a representative dataset preprocessed exactly as the edge does.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from ecolens.core.errors import EcoLensError
from ecolens.core.preprocess import find_images, load_image

T = TypeVar("T")

MODES = ("int8", "int8-selective", "float16", "dynamic", "float32")
# `--quantize auto`: the smallest mode that passes the gate, in this order. int8-selective is
# int8 with the few layers whose int8 error is largest kept in float (convert/selective.py).
AUTO_ORDER = ("int8", "int8-selective", "dynamic", "float16", "float32")
# int8 that fails the gate is tried once more on the whole calibration folder (and flipped copies)
# up to this many images before a larger mode is chosen.
CALIBRATION_CAP = 1000


def spread(items: list[T], limit: int) -> list[T]:
    """``items`` (paths, photos) evenly picked down to ``limit``: folders list by class."""
    if len(items) > limit:
        picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
        return [items[i] for i in picks]
    return list(items)


def calibration_images(folder: Path, limit: int) -> list[Path]:
    """Images below ``folder`` (recursively), evenly spread up to ``limit``."""
    if not folder.is_dir():
        raise EcoLensError(f"calibration folder not found: {folder}")
    files = find_images(folder)
    if not files:
        raise EcoLensError(f"calibration folder {folder} holds no images (.jpg, .png, ...)")
    return spread(files, limit)


def load_rgbs(source: Path | list[Path], limit: int, what: str) -> list[np.ndarray]:
    """Decode up front, so an unreadable image fails before any conversion starts; ``source``
    is a folder or a list of image paths."""
    paths = calibration_images(source, limit) if isinstance(source, Path) else spread(source, limit)
    rgbs = []
    for path in paths:
        try:
            rgbs.append(load_image(path))
        except EcoLensError as exc:
            raise EcoLensError(f"unreadable {what} image: {exc}") from exc
    return rgbs


def with_flipped_copies(rgbs: list[np.ndarray], cap: int) -> list[np.ndarray]:
    """``rgbs`` plus horizontally flipped copies, up to ``cap``: more activation-range samples
    from a small folder (a mirrored photo of waste is still a photo of waste)."""
    flipped = [np.ascontiguousarray(rgb[:, ::-1]) for rgb in rgbs[: max(0, cap - len(rgbs))]]
    return rgbs[:cap] + flipped


def representative_dataset(tensors: list[np.ndarray]) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for i, tensor in enumerate(tensors, 1):
            if i % 25 == 0 or i == len(tensors):
                print(f"[convert] calibrating {i}/{len(tensors)}", file=sys.stderr, flush=True)
            yield [tensor[np.newaxis, ...].astype(np.float32)]

    return generate


def forward_pass_converter(tf: Any, model: Any) -> Any | None:
    """A converter that exports only the model's forward pass (inference mode) and the variables
    it reads, or None for models without one known input (subclassed, multi-input).
    ``from_keras_model`` first saves the whole Keras object graph, tracing every layer's call
    functions: 33-36 s per conversion of a 64 px MobileNetV2 against 8 s this way, for the same
    bytes and answers, and a convert tries up to three modes."""
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    holder = tf.Module()
    # The signature must track what it reads: tf.Variables (a Keras 3 variable wraps one).
    holder.model_variables = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]
    spec = tf.TensorSpec(tuple(inputs[0].shape), inputs[0].dtype, name="input")
    holder.serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([holder.serve.get_concrete_function()], holder)


def to_tflite(
    model: Any,
    mode: str,
    calibration: list[np.ndarray] | None = None,
    io_type: str = "int8",
    verbose: bool = False,
) -> bytes:
    """Convert; ``calibration`` (preprocessed tensors) is required for int8. The forward pass
    is exported alone when it can be; should that fail, through ``from_keras_model`` (which
    accepts Keras 3 and tf_keras models alike). The accuracy proof judges either."""
    import tensorflow as tf

    if mode not in MODES:
        raise EcoLensError(f"unknown quantization {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "int8" and not calibration:
        raise EcoLensError("int8 quantization needs calibration images")
    try:
        fast = forward_pass_converter(tf, model)
    except Exception:  # tracing a model it cannot trace: the Keras route will say why
        fast = None
    if fast is not None:
        try:
            return run_converter(tf, fast, mode, calibration, io_type, verbose)
        except EcoLensError:
            print("[convert] the forward-pass export failed; using Keras' exporter", file=sys.stderr)
    keras_route = tf.lite.TFLiteConverter.from_keras_model(model)
    return run_converter(tf, keras_route, mode, calibration, io_type, verbose)


def run_converter(
    tf: Any, converter: Any, mode: str, calibration: list[np.ndarray] | None, io_type: str, verbose: bool
) -> bytes:
    """Set ``converter`` up for ``mode`` and run it."""
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = representative_dataset(calibration or [])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if io_type == "uint8" else tf.int8
        converter.inference_output_type = tf.uint8 if io_type == "uint8" else tf.int8
    try:
        # Keras' exporter prints the traced signature to stdout: keep stdout for the report.
        with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()):
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise EcoLensError(f"TFLite conversion failed: {str(exc).strip().splitlines()[0]}") from exc
