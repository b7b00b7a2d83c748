"""The endpoints. /predict is a thin adapter: body -> parse -> headers checked -> the worker's
inference pool -> the result contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ecolens.core.classifier import Classifier
from ecolens.edge.api import metrics
from ecolens.edge.api.inference import image_names, inspect_all
from ecolens.edge.api.openapi import openapi_document
from ecolens.edge.api.parsing import parse_request
from ecolens.edge.api.request_io import json_response, read_request_body, state_of
from ecolens.edge.api.tfserving import tf_serving_routes
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def predict(request: Request) -> Response:
    state = state_of(request)
    classifier = state.holder.get()
    limits = state.config.limits
    payload = await parse_request(request.headers, await read_request_body(request), limits.max_batch)
    names = image_names(len(payload.images), payload.batch)
    images = inspect_all(payload.images, names, classifier.max_pixels, limits.max_batch_pixels)
    info = request.scope["ecolens"]
    results = await state.pool.classify(classifier, images, names, info.request_id)
    info.labels = [r["label"] for r in results]
    return json_response(results if payload.batch else results[0])


async def healthz(_request: Request) -> Response:
    return json_response({"status": "alive"})


async def readyz(request: Request) -> Response:
    holder = state_of(request).holder
    if holder.ready:
        return json_response({"status": "ready", "model": holder.get().model_info})
    return json_response({"status": "not_ready", "reason": holder.problem}, 503)


async def model(request: Request) -> Response:
    return json_response(model_description(state_of(request).holder.get()))


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


async def metrics_endpoint(_request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


async def openapi(request: Request) -> Response:
    state = state_of(request)
    return json_response(openapi_document(state.config.limits.max_batch, auth=state.keys.enabled))


def routes() -> list[Route]:
    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/v1/model", model, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *tf_serving_routes(),
    ]
