"""What every request of one worker shares: built once per worker by :func:`build_state` (the
ASGI app factory and the Flask Blueprint both call it), read by the middlewares (as their
arguments) and the endpoints (``request_io.state_of``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecolens.core.classifier import Classifier
from ecolens.core.http.keys import KeyStore
from ecolens.edge.api import metrics
from ecolens.edge.api.access_log import AccessLog
from ecolens.edge.api.auth import ClientFilter
from ecolens.edge.api.inference import InferencePool
from ecolens.edge.api.model_holder import ModelHolder
from ecolens.edge.api.ratelimit import RateLimit
from ecolens.edge.api.settings import ApiConfig


@dataclass
class ApiState:
    """What every request of this worker shares."""

    config: ApiConfig
    keys: KeyStore
    clients: ClientFilter
    rate: RateLimit
    access_log: AccessLog
    holder: ModelHolder
    pool: InferencePool


def classifier_loader(config: ApiConfig) -> Callable[[Path], Classifier]:
    """How this worker builds its Classifier (one interpreter per worker process)."""

    def load(path: Path) -> Classifier:
        return Classifier.from_settings(config.model, path=path, max_pixels=config.limits.max_pixels)

    return load


def build_state(config: ApiConfig, keys: KeyStore | None = None) -> ApiState:
    """This worker's state; loads the model now (or in the background with wait_for_model:
    /readyz says when), so a worker accepts connections only once it can answer. Clear keys
    are hashed and dropped from ``config``."""
    if keys is None:
        keys = KeyStore.from_settings(config.auth)
    config.auth.keys = []  # only hashes are kept
    return ApiState(
        config=config,
        keys=keys,
        clients=ClientFilter(config.auth.allow_cidrs),
        rate=RateLimit(config.limits.rate),
        access_log=AccessLog(config.logging.access_log),
        holder=ModelHolder(
            config.model.resolved_path(),
            classifier_loader(config),
            wait=config.server.wait_for_model,
            poll_seconds=config.server.model_poll_seconds,
            on_loaded=lambda c: metrics.record_model(c.model_info),
        ).start(),
        pool=InferencePool(config.server.threads),
    )


def close_state(state: ApiState) -> None:
    """At worker exit: stop the model loader and the pool, drop this process's live gauges."""
    state.holder.stop()
    state.pool.close()
    metrics.worker_exiting()
