"""The endpoints. /predict is a thin adapter: parse -> Classifier -> the result contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ecolens.core.classifier import Classifier
from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.preprocess import decode_image, image_size
from ecolens.edge.api import metrics
from ecolens.edge.api.errors import from_image_error
from ecolens.edge.api.openapi import openapi_document
from ecolens.edge.api.parsing import parse_request
from flask import Blueprint, Response, current_app, g, jsonify, request

api = Blueprint("api", __name__)


def _state() -> dict[str, Any]:
    return current_app.extensions["ecolens"]


@api.post("/predict")
def predict() -> Response:
    state = _state()
    classifier = state["holder"].get()
    payload = parse_request(request, state["config"].limits.max_batch)
    names = [f"images[{i}]" if payload.batch else "" for i in range(len(payload.images))]
    # Check every header first: a bad or oversized image fails the request before any
    # inference is spent on the others.
    for data, where in zip(payload.images, names):
        try:
            check_header(data, classifier.max_pixels)
        except ImageError as exc:
            raise from_image_error(exc, where) from None
    results = []
    for data, where in zip(payload.images, names):
        try:
            rgb = decode_image(data, classifier.max_pixels)
        except ImageError as exc:
            raise from_image_error(exc, where) from None
        result = classifier.classify(rgb, request_id=g.request_id)
        metrics.record_result(result["label"], result["inference_ms"])
        results.append(result)
    g.labels = [r["label"] for r in results]
    return jsonify(results if payload.batch else results[0])


def check_header(data: bytes, max_pixels: int) -> None:
    """Reject undecodable or oversized images from their header alone (no decoding)."""
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )


@api.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "alive"})


@api.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    holder = _state()["holder"]
    if holder.ready:
        return jsonify({"status": "ready", "model": holder.get().model_info})
    return jsonify({"status": "not_ready", "reason": holder.problem}), 503


@api.get("/v1/model")
def model() -> Response:
    return jsonify(model_description(_state()["holder"].get()))


def model_description(classifier: Classifier) -> dict[str, Any]:
    """What is served, from the model's own metadata."""
    meta = asdict(classifier.metadata)
    meta["labels"] = list(classifier.labels)
    return {
        **meta,
        "sha256": classifier.sha256,
        "runtime": classifier.model.runtime,
        "min_confidence": classifier.min_confidence,
        "max_pixels": classifier.max_pixels,
    }


@api.get("/metrics", endpoint="metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@api.get("/openapi.json")
def openapi() -> Response:
    config = _state()["config"]
    return jsonify(openapi_document(config.limits.max_batch, auth=_state()["keys"].enabled))
