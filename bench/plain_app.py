"""The benchmark's lower bound: the LiteRT app a user would write by hand, FastAPI + uvicorn,
same .tflite, OpenCV decode and area resize, float normalisation and quantization, answering
the label and scores. No auth, no limits, no metrics, no access log, no request ids: what
`ecolens serve` must cost no more than.

Benchmark use only. Run: ``python -m ecolens.bench.plain_app --model M.tflite --port 8091``.
"""

from __future__ import annotations

import argparse
import base64
import os

import cv2
import numpy as np
from fastapi import FastAPI, Request

MODEL_ENV = "ECOLENS_PLAIN_APP_MODEL"


def create_plain_app() -> FastAPI:
    from ai_edge_litert.interpreter import Interpreter
    from ecolens.core.metadata import read_metadata

    model = os.environ[MODEL_ENV]
    metadata = read_metadata(model)  # labels and mean/std of the same model
    interpreter = Interpreter(model_path=model, num_threads=1)
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = given["quantization"]
    out_scale, out_zero = taken["quantization"]
    size = (metadata.input.width, metadata.input.height)
    mean = np.asarray(metadata.input.mean, np.float32)
    std = np.asarray(metadata.input.std, np.float32)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await request.json()
        data = np.frombuffer(base64.b64decode(body["image"]), np.uint8)
        rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = (cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) - mean) / std
        q = np.clip(np.round(x / in_scale + in_zero), -128, 127).astype(np.int8)[np.newaxis]
        interpreter.set_tensor(given["index"], q)
        interpreter.invoke()
        out = (interpreter.get_tensor(taken["index"])[0].astype(np.float32) - out_zero) * out_scale
        scores = {label: round(float(p), 6) for label, p in zip(metadata.labels, out)}
        return {"label": max(scores, key=scores.get), "scores": scores}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"status": "ready"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ[MODEL_ENV] = args.model
    uvicorn.run(
        "ecolens.bench.plain_app:create_plain_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
