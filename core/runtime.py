"""Loads a .tflite into LiteRT (or tflite-runtime where LiteRT is absent) and runs it.

Handles quantized input/output tensors: callers pass float32 (quantized here) or a tensor
already in the input's dtype (see ``preprocess.quantized_model_input``), and get float32 back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.core.errors import MissingDependencyError, ModelError
from ecolens.core.native_stderr import native_info_to_debug
from ecolens.core.preprocess import InputQuantization

log = logging.getLogger(__name__)


def interpreter_class() -> tuple[type, str]:
    """The interpreter implementation available here, and its name for logs/metadata."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tflite-runtime"
    except ImportError as exc:
        raise MissingDependencyError(
            "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
        ) from exc


# Which int8/float kernels LiteRT runs: "auto" is its default (XNNPACK, chosen by CPU feature);
# "builtin" its own optimised kernels; "reference" the plain portable ones. They round
# differently, so scores differ slightly between them and between CPUs (tests/support/parity.py).
KERNELS = ("auto", "builtin", "reference")


def op_resolver(kernels: str) -> Any:
    """LiteRT's OpResolverType for a ``KERNELS`` name."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
    try:
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:  # tflite-runtime names it the same way
        from tflite_runtime.interpreter import OpResolverType  # type: ignore[import-not-found]
    return {
        "auto": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": OpResolverType.BUILTIN_REF,
    }[kernels]


class TFLiteModel:
    """One interpreter for one model file; ``run`` is serialised because an interpreter
    is not thread-safe (concurrent callers wait on the lock)."""

    def __init__(self, path: str | Path, threads: int | None = None, kernels: str = "auto") -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        interpreter_cls, self.runtime = interpreter_class()
        try:
            with native_info_to_debug(log):
                options = {} if kernels == "auto" else {"experimental_op_resolver_type": op_resolver(kernels)}
                self._interpreter: Any = interpreter_cls(model_path=str(path), num_threads=threads, **options)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path} is not a valid TFLite model: {exc}") from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor")
        self._input = inputs[0]
        self._output = outputs[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 4 or shape[3] not in (1, 3):
            raise ModelError(f"{path}: expected an NHWC image input (RGB or grey), got shape {shape}")
        self.input_shape: tuple[int, int] = (shape[1], shape[2])
        self.channels = shape[3]
        self.input_dtype = np.dtype(self._input["dtype"])
        scale, zero_point = self._input["quantization"]
        self.input_quantization = InputQuantization(self.input_dtype, float(scale), int(zero_point))
        self.output_size = int(np.prod(self._output["shape"][1:]))
        # (scale, zero_point) of a quantized output; (0.0, 0) for a float one.
        self.output_quantization: tuple[float, int] = tuple(self._output["quantization"])  # type: ignore[assignment]
        self._lock = threading.Lock()

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Run one (H, W, channels) tensor, float32 or already in the input's dtype; returns the
        dequantized float32 output vector."""
        batch = tensor[np.newaxis, ...]
        if batch.dtype != self.input_dtype:
            batch = self.input_quantization.quantize(batch)
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])
        return self._dequantize(raw).reshape(-1)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.float32:
            return raw
        scale, zero_point = self._output["quantization"]
        return (raw.astype(np.float32) - zero_point) * scale
