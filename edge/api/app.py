"""The Flask app factory: wiring only. Each job (auth, parsing, errors, metrics, logs, rate
limits) lives in its own module; the model work is the shared Classifier's."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from ecolens.core.classifier import Classifier
from ecolens.core.http.keys import KeyStore, presented_key
from ecolens.edge.api import metrics
from ecolens.edge.api.access_log import access_logger, log_access
from ecolens.edge.api.auth import ClientFilter
from ecolens.edge.api.errors import PayloadTooLarge, register_error_handlers
from ecolens.edge.api.model_holder import ModelHolder
from ecolens.edge.api.ratelimit import RateLimit
from ecolens.edge.api.routes import api
from ecolens.edge.api.settings import ApiConfig
from flask import Flask, Response, current_app, g, request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Endpoints that need a key when keys are configured.
PROTECTED = frozenset({"api.predict", "api.model", "api.metrics"})


def classifier_loader(config: ApiConfig):
    """How this worker builds its Classifier (one interpreter per worker process)."""

    def load(path: Path) -> Classifier:
        return Classifier.from_settings(config.model, path=path, max_pixels=config.limits.max_pixels)

    return load


def create_app(config: ApiConfig, keys: KeyStore | None = None) -> Flask:
    """Build the app and start loading the model in the background (/readyz says when)."""
    if keys is None:
        keys = KeyStore.from_settings(config.auth)
    config.auth.keys = []  # only hashes are kept
    # Explicit instance_path: Flask cannot locate one for the ecolens namespace package.
    app = Flask(__name__, instance_path=str(Path(__file__).resolve().parent / "instance"))
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_body_bytes
    app.json.sort_keys = False
    app.extensions["ecolens"] = {
        "config": config,
        "keys": keys,
        "clients": ClientFilter(config.auth.allow_cidrs),
        "rate": RateLimit(config.limits.rate),
        "access_log": access_logger(config.logging.access_log),
        "holder": ModelHolder(
            config.model.resolved_path(),
            classifier_loader(config),
            wait=config.server.wait_for_model,
            poll_seconds=config.server.model_poll_seconds,
            on_loaded=lambda c: metrics.record_model(c.model_info),
        ).start(),
    }
    register_error_handlers(app)
    app.before_request(_before)
    app.after_request(_after)
    app.register_blueprint(api)
    return app


def _before() -> None:
    g.started = time.perf_counter()
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex
    state = current_app.extensions["ecolens"]
    config: ApiConfig = state["config"]
    state["clients"].check(request.remote_addr)
    g.client = request.remote_addr or "unknown"
    protected = request.endpoint in PROTECTED and not (
        request.endpoint == "api.metrics" and config.auth.public_metrics
    )
    if protected and state["keys"].enabled:
        g.client = state["keys"].check(
            presented_key(request.headers.get("Authorization"), request.headers.get("X-API-Key"))
        )
    if request.endpoint == "api.predict":
        state["rate"].check(g.client)
        length = request.content_length
        if length is not None and length > config.limits.max_body_bytes:
            raise PayloadTooLarge(
                f"body of {length} bytes is over the limit of {config.limits.max_body_bytes} "
                "(limits.max_body_bytes)"
            )


def _after(response: Response) -> Response:
    state = current_app.extensions["ecolens"]
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    metrics.record_request(endpoint, request.method, response.status_code, seconds)
    if response.status_code >= 400 and response.is_json:
        error = (response.get_json(silent=True) or {}).get("error", {})
    else:
        error = {}
    labels = g.get("labels") or []
    log_access(
        state["access_log"],
        request_id=request_id,
        remote=request.remote_addr,
        client=g.get("client"),
        method=request.method,
        path=request.path,
        status=response.status_code,
        latency_ms=round(seconds * 1000.0, 3),
        bytes_in=request.content_length,
        label=labels[0] if len(labels) == 1 else None,
        labels=labels if len(labels) > 1 else None,
        error=error.get("code") if isinstance(error, dict) else None,
    )
    return response
