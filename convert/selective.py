"""int8 with the layers that most change the model's answers kept in float ("int8-selective").

MobileNet-family models (depthwise convolutions, ReLU6, Teachable Machine exports) lose answers
in full int8 although every layer's own int8 error is close to ideal rounding: TFLite's
quantization debugger (``tf.lite.experimental.QuantizationDebugger``) measured 0.23-0.63
quantization steps RMSE, and at most 0.4 % noise-to-signal, on every one of the 66 layers of a
real Teachable Machine export whose full int8 changed 10 % of its decided answers. Local error does
not say which layers matter; what the error does to the output does. So after one calibration
(the debugger's), each layer is quantized *alone*, every other layer in float, and the change of
the output probabilities on 64 calibration photos is its **sensitivity** (on that export, 8
layers by sensitivity kept 98.1 % of 310 unseen decided answers where the first 4 and the worst 4
by local error kept 95.5 %). Candidates keep the k most sensitive layers in float for growing k;
the first that keeps the source's answers on photos calibration did not use (``Screen``) within
MAX_LATENCY_RATIO of full int8's latency is proven like every mode (convert/attempts.py).

Re-quantizing the calibrated model with a denylist is TensorFlow's ``mlir_quantize`` (what the
debugger itself calls): 0.2 s per candidate against a fresh calibration for each through the
debugger's public ``options`` setter. Input and output stay float32 tensors (the edge feeds any)."""

from __future__ import annotations

import contextlib
import csv
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from ecolens.convert.loading import first_line
from ecolens.convert.quantize import forward_pass_converter, representative_dataset
from ecolens.convert.validate import agreement
from ecolens.core.classifier import to_probabilities
from ecolens.core.errors import EcoLensError

# Photos each layer's sensitivity is measured on (drawn from the calibration photos).
SENSITIVITY_PHOTOS = 64
# At most this many photos in the screen (calibration photos not calibrated on, then proof).
SCREEN_CAP = 1000
# Under this many screen photos a candidate at 97 % agreement passes a 99 % screen by luck too often
# to call the choice measured (the summary says so).
SCREEN_ENOUGH = 300
# Photos the debugger runs to list the quantized layers (calibration uses all of them).
DEBUG_PHOTOS = 8
# How many of the most sensitive layers a candidate keeps in float, tried in this order.
KEPT_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)
# A candidate slower than this many times full int8 is not int8's point on a Pi (issue #24).
MAX_LATENCY_RATIO = 1.5


def layer_names(dump: str) -> list[str]:
    """Names of the quantized layers in the debugger's CSV dump, in graph order (tensor indices
    grow from the input)."""
    rows = [
        (int(values["tensor_idx"]), values["tensor_name"])
        for values in csv.DictReader(io.StringIO(dump))
        if float(values.get("scale") or 0.0) > 0 and values.get("tensor_name")
    ]
    return [name for _, name in sorted(rows)]


def ranked(sensitivity: dict[str, float]) -> list[str]:
    """Layers, the one whose int8 alone changes the output most first (ties: graph order)."""
    order = {name: i for i, name in enumerate(sensitivity)}
    return sorted(sensitivity, key=lambda name: (-sensitivity[name], order[name]))


def steps(layers: int) -> list[int]:
    """How many layers to keep in float, in the order to try them: every step below the number
    of layers, then all but the last quantized one."""
    return [k for k in KEPT_STEPS if k < layers] or [max(layers - 1, 1)]


class SelectiveInt8:
    """One calibration of a Keras model; ``quantized(names)`` is that model in int8 with
    ``names`` kept in float, ``sensitivity`` what each layer's int8 does to the output."""

    def __init__(self, model: Any, calibration: list[np.ndarray], output_kind: str, verbose: bool = False):
        import tensorflow as tf
        from tensorflow.lite.python import convert

        if not hasattr(convert, "mlir_quantize"):
            raise EcoLensError(
                f"int8-selective needs TensorFlow's mlir_quantize, which TensorFlow {tf.__version__} lacks"
            )
        self._mlir_quantize = convert.mlir_quantize
        self.output_kind = output_kind
        self.verbose = verbose
        converter = forward_pass_converter(tf, model) or tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration)
        try:
            with quiet(verbose):
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=representative_dataset(calibration[:DEBUG_PHOTOS])
                )
                debugger.run()
                dump = io.StringIO()
                debugger.layer_statistics_dump(dump)
        except Exception as exc:  # the debugger raises what the converter raises
            raise EcoLensError(f"quantization debugger failed: {first_line(exc)}") from exc
        self.calibrated = debugger.calibrated_model
        self.layers = layer_names(dump.getvalue())
        if not self.layers:
            raise EcoLensError("selective int8: the debugger found no quantized layer")

    def quantized(self, kept: list[str]) -> bytes:
        """The calibrated model quantized with ``kept`` denylisted (no new calibration)."""
        try:
            with quiet(self.verbose):
                return self._mlir_quantize(
                    self.calibrated,
                    disable_per_channel=False,
                    fully_quantize=False,
                    enable_numeric_verify=False,
                    denylisted_nodes=list(kept),
                )
        except Exception as exc:
            raise EcoLensError(f"selective int8 quantization failed: {first_line(exc)}") from exc

    def probabilities(self, flatbuffer: bytes, tensors: list[np.ndarray]) -> np.ndarray:
        """The quantized model's probabilities (the edge's post-processing) for input tensors."""
        run = invoker(flatbuffer)
        return np.stack([to_probabilities(run(tensor), self.output_kind) for tensor in tensors])

    def sensitivity(self, tensors: list[np.ndarray], progress: Callable[[str], None]) -> dict[str, float]:
        """Per layer, in graph order: mean squared change of the output probabilities on
        ``tensors`` when that layer alone is int8 (all others float) against all in float."""
        reference = self.probabilities(self.quantized(self.layers), tensors)
        result: dict[str, float] = {}
        for i, name in enumerate(self.layers, 1):
            if i % 10 == 0 or i == len(self.layers):
                progress(f"int8-selective: layer sensitivity {i}/{len(self.layers)}")
            alone = self.quantized([other for other in self.layers if other != name])
            result[name] = float(np.mean((self.probabilities(alone, tensors) - reference) ** 2))
        return result


def split_for_screen(tensors: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(photos to calibrate on, photos kept out for the screen): every third photo is kept out
    (folders list by class, so both halves hold every class); with fewer than 9, none."""
    if len(tensors) < 9:
        return tensors, []
    return [t for i, t in enumerate(tensors) if i % 3], tensors[::3]


@dataclass
class Screen:
    """Photos a candidate must keep the source's answers on before its proof, and how well."""

    tensors: list[np.ndarray]
    source: np.ndarray  # the source model's probabilities for ``tensors``
    floors: tuple[float, float]  # agreement where the source decides, and on every photo
    noise: float  # the margin under which the source's answer counts as undecided
    unseen: int  # how many of ``tensors`` calibration did not use (0: it had to screen on its own)

    def measure(self, probabilities: np.ndarray) -> dict[str, float]:
        return agreement(self.source, probabilities, noise=self.noise)

    def passes(self, measured: dict[str, float]) -> bool:
        return measured["agreement"] >= self.floors[0] and measured["agreement_all_photos"] >= self.floors[1]


def invoker(flatbuffer: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """One LiteRT interpreter on ``flatbuffer`` with float input and output (what int8-selective
    writes): tensor -> raw output vector."""
    from ecolens.core.runtime import interpreter_class

    interpreter_cls, _ = interpreter_class()
    interpreter = interpreter_cls(model_content=flatbuffer)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(tensor: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source, tensor[np.newaxis, ...].astype(np.float32))
        interpreter.invoke()
        return np.array(interpreter.get_tensor(target)[0])

    return run


def latency_ratio(candidate: bytes, baseline: bytes, tensor: np.ndarray, rounds: int = 5) -> float:
    """Median over ``rounds`` of candidate / baseline single-image latency, the two timed in
    alternation so a busy core slows both alike."""
    runs = [invoker(candidate), invoker(baseline)]
    for run in runs:
        run(tensor)  # warm-up
    per_round = max(3, int(0.05 / max(timed(runs[1], tensor, 1), 1e-5)))
    ratios = [timed(runs[0], tensor, per_round) / timed(runs[1], tensor, per_round) for _ in range(rounds)]
    return statistics.median(ratios)


def timed(run: Callable[[np.ndarray], np.ndarray], tensor: np.ndarray, times: int) -> float:
    started = time.perf_counter()
    for _ in range(times):
        run(tensor)
    return (time.perf_counter() - started) / times


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()):
        yield
