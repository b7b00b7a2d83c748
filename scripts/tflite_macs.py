"""Multiply-accumulate count of a .tflite model, per operator type, read from the model itself.

    python scripts/tflite_macs.py [MODEL.tflite]     # default: the shipped reference model

Counts convolutions, depthwise convolutions and fully connected layers (everything else in an
EfficientNet-Lite graph is a rounding error next to them). docs/pi-performance.md turns the
total into expected Raspberry Pi latency.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def count_macs(model: Path) -> tuple[Counter, dict]:
    """MACs per operator type, and the model's input tensor description."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(model),
        # The graph as written: the default XNNPACK delegate would fold ops away.
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()}
    macs: Counter = Counter()
    for op in interpreter._get_ops_details():
        name, inputs, outputs = op["op_name"], op["inputs"], op["outputs"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = shapes[outputs[0]]
        weights = shapes[inputs[1]]
        if name == "CONV_2D":  # filter [Cout, kh, kw, Cin]
            macs[name] += int(np.prod(out)) * weights[1] * weights[2] * weights[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, Cout]
            macs[name] += int(np.prod(out)) * weights[1] * weights[2]
        else:  # filter [out, in]
            macs[name] += int(np.prod(out)) * weights[1]
    return macs, interpreter.get_input_details()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="default: the reference model")
    args = parser.parse_args(argv)
    if args.model is None:
        from ecolens.models import reference_tflite

        args.model = reference_tflite()
    if not args.model.is_file():
        print(f"error: model not found: {args.model}", file=sys.stderr)
        return 2
    macs, tensor = count_macs(args.model)
    print(f"model: {args.model}")
    print(f"input: {[int(d) for d in tensor['shape']]} {np.dtype(tensor['dtype']).name}")
    for name, count in sorted(macs.items()):
        print(f"{name:20s} {count / 1e6:10.1f} M MACs")
    print(f"{'total':20s} {sum(macs.values()) / 1e6:10.1f} M MACs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
