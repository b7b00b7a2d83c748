"""int8 with the few layers whose int8 error is largest kept in float ("int8-selective").

MobileNet-family models (depthwise convolutions, ReLU6, Teachable Machine exports) lose a few
points of agreement in full int8. TFLite's quantization debugger
(``tf.lite.experimental.QuantizationDebugger``) calibrates once and measures every quantized
layer's own error against float (root mean squared error over the layer's quantization scale).
That error is local; what flips answers is error carried through the whole network, and it starts
in the first layers (on the MobileNetV2 archetype, the 8 worst layers by local error kept in float
raised agreement from 94.5 % to 95.7 %; the first 8 layers, to 98.8 %). So the n layers kept in
float are the first n quantized layers and the n worst by local error, for n = 2, 4, 8, 16, stopping
at the first that passes the proof; they are denylisted (``denylisted_nodes`` of the debugger's
``mlir_quantize``) and the calibrated model re-quantized: one calibration for every candidate.
Input and output stay float32 tensors (the edge feeds any of them)."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from ecolens.convert.quantize import forward_pass_converter, representative_dataset
from ecolens.core.errors import EcoLensError

# n of "the first n layers and the n worst", tried in this order until one passes the proof.
KEPT_STEPS = (2, 4, 8, 16)
# Photos the debugger compares float and int8 layers on (calibration uses all of them).
DEBUG_PHOTOS = 16


def layer_errors(dump: str) -> list[tuple[str, float, int]]:
    """(tensor name, RMSE / scale, tensor index) of each quantized layer from the debugger's CSV
    dump, in graph order (tensor indices grow from the input)."""
    rows = []
    for values in csv.DictReader(io.StringIO(dump)):
        scale = float(values.get("scale") or 0.0)
        mse = float(values.get("mean_squared_error") or 0.0)
        if scale > 0 and values.get("tensor_name"):
            rows.append((values["tensor_name"], float(np.sqrt(mse)) / scale, int(values["tensor_idx"])))
    return sorted(rows, key=lambda row: row[2])


def kept_layers(layers: list[tuple[str, float, int]], count: int) -> list[tuple[str, float, int]]:
    """The first ``count`` layers and the ``count`` worst by local error, in graph order."""
    worst = sorted(layers, key=lambda row: row[1], reverse=True)[:count]
    chosen = {row[0] for row in layers[:count]} | {row[0] for row in worst}
    return [row for row in layers if row[0] in chosen]


class SelectiveInt8:
    """One calibration and per-layer error measurement of a Keras model; ``quantized(n)`` gives
    the model with its ``n`` worst layers kept in float."""

    def __init__(self, model: Any, calibration: list[np.ndarray], verbose: bool = False) -> None:
        import tensorflow as tf

        self.tf = tf
        converter = forward_pass_converter(tf, model) or tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration)
        try:
            with quiet(verbose):
                self.debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=representative_dataset(calibration[:DEBUG_PHOTOS])
                )
                self.debugger.run()
                dump = io.StringIO()
                self.debugger.layer_statistics_dump(dump)
        except Exception as exc:  # the debugger raises what the converter raises
            raise EcoLensError(f"quantization debugger failed: {first_line(exc)}") from exc
        self.layers = layer_errors(dump.getvalue())
        self.verbose = verbose

    def steps(self) -> list[int]:
        """How many layers to keep in float, in the order to try them."""
        return [n for n in KEPT_STEPS if n <= len(self.layers)]

    def quantized(self, kept: int) -> bytes:
        """The calibrated model quantized with ``kept`` of its layers denylisted: no calibration
        and no debug model (the debugger's ``options`` setter would rebuild both)."""
        from tensorflow.lite.python import convert

        nodes = [name for name, _, _ in kept_layers(self.layers, kept)]
        try:
            with quiet(self.verbose):
                return convert.mlir_quantize(
                    self.debugger.calibrated_model,
                    disable_per_channel=False,
                    fully_quantize=False,
                    enable_numeric_verify=False,
                    denylisted_nodes=nodes,
                )
        except Exception as exc:
            raise EcoLensError(f"selective int8 quantization failed: {first_line(exc)}") from exc

    def kept(self, count: int) -> list[dict[str, Any]]:
        """The layers kept in float and their int8 error, for the report."""
        return [
            {"layer": name, "rmse_over_scale": round(error, 3)}
            for name, error, _ in kept_layers(self.layers, count)
        ]


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()):
        yield


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
