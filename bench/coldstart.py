"""`ecolens benchmark coldstart`: the wall time of `ecolens classify IMAGE` (a new process each
time: imports, model load, one image) against a bare LiteRT script doing the same work by hand,
interleaved runs, medians. The difference is what EcoLens adds to every cold start."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecolens.bench.figures import Figures

RETURNS_FIGURES = True

BARE_SCRIPT = """
import sys
import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
bgr = cv2.imdecode(np.fromfile(sys.argv[2], np.uint8), cv2.IMREAD_COLOR)
height, width = given["shape"][1:3]
rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height), interpolation=cv2.INTER_AREA)
scale, zero = given["quantization"]
interpreter.set_tensor(given["index"], np.clip(np.round(rgb / scale + zero), -128, 127).astype(np.int8)[None])
interpreter.invoke()
print(interpreter.get_tensor(taken["index"]))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="the .tflite (default: reference model)")
    parser.add_argument("--image", type=Path, help="the image (default: a shipped sample)")
    parser.add_argument("--runs", type=int, default=15, help="runs of each (median)")


def run(args: argparse.Namespace) -> Figures:
    from ecolens.models import eval_dir, reference_tflite

    model = args.model or reference_tflite()
    image = args.image or sorted(eval_dir().rglob("*.jpg"))[0]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(BARE_SCRIPT)
    commands = {
        "bare LiteRT script": [sys.executable, script.name, str(model), str(image)],
        "ecolens classify": [sys.executable, "-m", "ecolens.cli", "classify", "--model", str(model)]
        + [str(image)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(args.runs):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, capture_output=True, check=True)
                times[name].append(time.perf_counter() - started)
    finally:
        Path(script.name).unlink()
    print(f"one image, {args.runs} interleaved runs each (new process every run):")
    for name, values in times.items():
        print(f"  {name:<20} median {statistics.median(values):.3f} s   min {min(values):.3f} s")
    difference = statistics.median(times["ecolens classify"]) - statistics.median(times["bare LiteRT script"])
    print(f"  ecolens classify - bare script: {difference * 1000:+.0f} ms (medians)")
    baseline = statistics.median(times["bare LiteRT script"])
    return Figures(
        title=f"cold start, one image, {args.runs} runs each (median)",
        baseline="bare LiteRT script",
        panels={
            "wall time vs bare script (lower is better)": {
                name: statistics.median(values) / baseline for name, values in times.items()
            }
        },
    )
