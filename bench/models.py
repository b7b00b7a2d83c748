"""`ecolens benchmark models`: Keras .h5 (the baseline) vs .tflite int8/float16/float32 on the
same images in one run: single-image latency (median of several rounds), size, agreement."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.bench.figures import Figures

RETURNS_FIGURES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--h5", type=Path, help="Keras model (default: shipped reference .h5)")
    parser.add_argument("--int8", type=Path, help="int8 .tflite (default: shipped reference)")
    parser.add_argument("--images", type=Path, help="image folder (default: shipped eval sample)")
    parser.add_argument("--count", type=int, default=40, help="images per round (default 40)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="TFLite interpreter threads")


def round_medians(run: Callable[[Any], Any], inputs: list[Any], rounds: int) -> list[float]:
    """Median single-call latency (ms) of each round over all inputs."""
    run(inputs[0])
    medians = []
    for _ in range(rounds):
        timings = []
        for item in inputs:
            started = time.perf_counter()
            run(item)
            timings.append((time.perf_counter() - started) * 1000.0)
        medians.append(statistics.median(timings))
    return medians


def run(args: argparse.Namespace) -> Figures:
    if not getattr(args, "verbose", False):  # TensorFlow's C++ start-up lines: only with -v
        from ecolens.convert.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    from ecolens.convert.converter import convert
    from ecolens.convert.loading import load_keras_model
    from ecolens.convert.options import ConvertOptions
    from ecolens.core.classifier import Classifier, to_probabilities
    from ecolens.core.preprocess import find_images, load_image, to_model_input
    from ecolens.models import eval_dir, reference_h5, reference_tflite

    h5 = args.h5 or reference_h5()
    images = find_images(args.images or eval_dir())[: args.count]
    rgbs = [load_image(p) for p in images]
    loaded = load_keras_model(h5)
    models: dict[str, Path] = {"int8": args.int8 or reference_tflite()}
    workdir = Path(tempfile.mkdtemp(prefix="ecolens-bench-"))
    for mode in ("float16", "float32"):
        out = workdir / f"model.{mode}.tflite"
        convert(ConvertOptions(source=h5, mode=mode, out=out, validate=False))
        models[mode] = out
    classifiers = {mode: Classifier(path, threads=args.threads) for mode, path in models.items()}
    spec = classifiers["int8"].metadata.input

    def keras_predict(rgb: np.ndarray) -> np.ndarray:
        return loaded.model.predict(to_model_input(rgb, spec)[np.newaxis], verbose=0)[0]

    def keras_call(rgb: np.ndarray) -> np.ndarray:
        return np.asarray(loaded.model(to_model_input(rgb, spec)[np.newaxis], training=False))[0]

    engines: dict[str, Callable[[np.ndarray], Any]] = {
        "keras .h5 predict() [baseline]": keras_predict,
        "keras .h5 __call__": keras_call,
    }
    for mode, classifier in classifiers.items():
        engines[f"tflite {mode}"] = classifier.predict
    sizes = {"keras .h5 predict() [baseline]": h5.stat().st_size, "keras .h5 __call__": h5.stat().st_size}
    sizes.update({f"tflite {m}": p.stat().st_size for m, p in models.items()})

    reference = [
        int(np.argmax(to_probabilities(np.asarray(keras_call(rgb)), loaded.output_kind))) for rgb in rgbs
    ]
    print(
        f"images: {len(rgbs)} from {args.images or eval_dir()}, rounds: {args.rounds}, "
        f"interpreter threads: {args.threads or 'default'}"
    )
    print(
        f"{'engine':<32} {'median ms':>10} {'min..max of rounds':>20} {'speed-up':>9} "
        f"{'size MB':>8} {'size ratio':>10} {'agreement':>10}"
    )
    baseline_ms = None
    speed_ups: dict[str, float] = {}
    size_ratios: dict[str, float] = {}
    for name, engine in engines.items():
        medians = round_medians(engine, rgbs, args.rounds)
        median = statistics.median(medians)
        baseline_ms = baseline_ms or median
        if name.startswith("tflite"):
            predicted = [int(np.argmax(classifiers[name.split()[1]].predict(rgb)[0])) for rgb in rgbs]
            agreement = float(np.mean([a == b for a, b in zip(predicted, reference)]))
        else:
            agreement = 1.0
        print(
            f"{name:<32} {median:>10.2f} {min(medians):>9.2f}..{max(medians):<9.2f} "
            f"{baseline_ms / median:>8.1f}x {sizes[name] / 1e6:>8.2f} "
            f"{sizes[name] / h5.stat().st_size:>10.3f} {agreement:>10.1%}"
        )
        speed_ups[name] = baseline_ms / median
        size_ratios[name] = sizes[name] / h5.stat().st_size
    baseline = next(iter(engines))
    return Figures(
        title=f"models: {len(rgbs)} images x {args.rounds} rounds, single image (median)",
        baseline=baseline,
        panels={"speed-up (higher is better)": speed_ups, "size (lower is better)": size_ratios},
    )
