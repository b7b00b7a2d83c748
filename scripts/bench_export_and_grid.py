"""Two speed-ups of this stop against their baselines, in one run, interleaved rounds, medians:
`ecolens convert`'s forward-pass export vs Keras' exporter (dynamic mode, the Teachable Machine
shape: MobileNetV2 0.35 at 64 px in a Sequential), and adapt's batched grid (60 fits in one pass)
vs 60 separate fits (3024 features, 800 rows, 100 Adam steps). Prints seconds and ratios.

    .venv/bin/python scripts/bench_export_and_grid.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def report(name: str, baseline: list[float], ours: list[float]) -> None:
    base, new = statistics.median(baseline), statistics.median(ours)
    print(f"{name}: baseline median {base:.1f} s, ours {new:.1f} s, {base / new:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds

    import tensorflow as tf
    import tf_keras
    from ecolens.convert.quantize import forward_pass_converter, run_converter
    from ecolens.train.adapt.fit import fit_dense, fit_dense_many

    trunk = tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None
    )
    model = tf_keras.Sequential(
        [trunk, tf_keras.layers.GlobalAveragePooling2D(), tf_keras.layers.Dense(2, activation="softmax")]
    )
    keras_route, forward = [], []
    for r in range(rounds):
        keras_route.append(
            seconds(
                lambda: run_converter(
                    tf, tf.lite.TFLiteConverter.from_keras_model(model), "dynamic", None, "int8", False
                )
            )
        )
        forward.append(
            seconds(
                lambda: run_converter(tf, forward_pass_converter(tf, model), "dynamic", None, "int8", False)
            )
        )
        print(
            f"  round {r + 1}: keras exporter {keras_route[-1]:.1f} s, forward pass {forward[-1]:.1f} s",
            flush=True,
        )
    report("convert (dynamic)", keras_route, forward)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(800, 3024)), rng.integers(0, 2, 800)
    w0, b0 = rng.normal(scale=0.01, size=(3024, 2)), np.zeros(2)
    weights = rng.uniform(size=(60, 800)) * (rng.uniform(size=(60, 800)) > 0.2)  # 0: a held-out row
    strengths = np.tile([0.3, 1.0, 3.0, 10.0], 15)
    separate, batched = [], []
    for r in range(rounds):
        separate.append(
            seconds(lambda: [fit_dense(x, y, weights[i], w0, b0, strengths[i], 100) for i in range(60)])
        )
        batched.append(seconds(lambda: fit_dense_many(x, y, weights, w0, b0, strengths, 100)))
        print(
            f"  round {r + 1}: 60 separate fits {separate[-1]:.1f} s, batched {batched[-1]:.1f} s", flush=True
        )
    report("adapt grid (60 fits)", separate, batched)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
