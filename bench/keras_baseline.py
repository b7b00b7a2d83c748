"""The benchmark's baseline, built the way the seed team planned the API: a Flask app that loads
the Keras .h5 with ``keras.models.load_model`` and calls ``model.predict`` per request, served
by the same gunicorn settings as ``ecolens serve``.

Benchmark use only: it needs TensorFlow/Keras (the ``convert`` extra), which a device never has.
Run: ``python -m ecolens.bench.keras_baseline --h5 M.h5 --model M.tflite --port 8090``.
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path
from typing import Any

from ecolens.core.contract import make_result
from ecolens.core.metadata import read_metadata
from ecolens.core.preprocess import decode_image, to_model_input


def create_baseline_app(h5_path: Path, tflite_path: Path) -> Any:
    """Same decoding, preprocessing and result contract as the real API; the model is Keras."""
    import keras
    import numpy as np
    from flask import Flask, jsonify, request

    metadata = read_metadata(tflite_path)  # labels and input spec of the same trained model
    model = keras.models.load_model(h5_path, compile=False)
    model_info = {"name": metadata.name, "version": metadata.version, "sha256": "0" * 64}
    app = Flask(__name__, instance_path=str(Path(__file__).resolve().parent / "instance"))

    @app.post("/predict")
    def predict():
        rgb = decode_image(base64.b64decode(request.get_json()["image"]))
        tensor = to_model_input(rgb, metadata.input)[np.newaxis, ...]
        started = time.perf_counter()
        probabilities = model.predict(tensor, verbose=0)[0]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return jsonify(make_result(metadata.labels, probabilities, model_info, elapsed_ms))

    @app.get("/readyz")
    def readyz():
        return jsonify({"status": "ready"})

    return app


def main() -> None:
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h5", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="the matching .tflite")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    class BaselineServer(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", [f"127.0.0.1:{args.port}"])
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", None)
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return create_baseline_app(args.h5, args.model)

    BaselineServer().run()


if __name__ == "__main__":
    main()
