"""Start-up: refuse unsafe or broken configurations with one clear line, then run gunicorn
(gthread workers; each worker builds the app and loads its own interpreter after the fork)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore
from ecolens.edge.api.settings import ApiConfig

log = logging.getLogger("ecolens.api")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def check_startup(config: ApiConfig, keys: KeyStore) -> None:
    """Everything that would otherwise fail later, or silently serve an open LAN API."""
    check_exposure(config.server, keys.enabled, "the API", "server")
    model_path = config.model.resolved_path()
    if config.server.wait_for_model and not model_path.is_file():
        log.warning("model %s is missing: serving 503 until it appears", model_path)
        return
    from ecolens.core.classifier import Classifier

    Classifier.from_settings(config.model, threads=1)  # fails here, with ModelError's message, if unusable


def interpreter_threads(config: ApiConfig) -> int:
    """Split the cores between workers unless [model] threads says otherwise."""
    if config.model.threads is not None:
        return config.model.threads
    return max(1, (os.cpu_count() or 1) // config.server.workers)


def gunicorn_options(config: ApiConfig) -> dict[str, Any]:
    server = config.server
    host = f"[{server.host}]" if ":" in server.host else server.host

    def child_exit(_arbiter: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    options: dict[str, Any] = {
        "bind": [f"{host}:{server.port}"],
        "workers": server.workers,
        "threads": server.threads,
        "worker_class": "gthread",
        "timeout": server.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,  # our JSON access log replaces gunicorn's
        "errorlog": "-",
        "loglevel": config.logging.level,
        "proc_name": "ecolens-api",
        "child_exit": child_exit,
        "preload_app": False,  # one model load per worker, after the fork
        "forwarded_allow_ips": "",
        # gunicorn >= 24 opens a control socket under $HOME; a hardened unit has no writable home.
        "control_socket_disable": True,
    }
    if server.tls:
        options["certfile"] = str(server.tls_cert)
        options["keyfile"] = str(server.tls_key)
    return options


def prepare_metrics_dir() -> Path | None:
    """Give the workers a clean shared directory for their metric files; return it when it is
    ours to delete at exit."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return None
    path = Path(tempfile.mkdtemp(prefix="ecolens-api-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def serve(config: ApiConfig) -> int:
    """Validate, then run gunicorn in this process until it is stopped."""
    from gunicorn.app.base import BaseApplication

    keys = KeyStore.from_settings(config.auth)
    config.auth.keys = []
    check_startup(config, keys)
    config.model.threads = interpreter_threads(config)
    owned_metrics_dir = prepare_metrics_dir()

    class EcoLensServer(BaseApplication):
        def load_config(self) -> None:
            for name, value in gunicorn_options(config).items():
                if name in self.cfg.settings:  # skip settings this gunicorn version lacks
                    self.cfg.set(name, value)

        def load(self) -> Any:
            from ecolens.edge.api.app import create_app

            return create_app(config, keys)

    log.info(
        "serving %s with %d worker(s) x %d thread(s), %d interpreter thread(s) each",
        config.server.url,
        config.server.workers,
        config.server.threads,
        config.model.threads,
    )
    try:
        EcoLensServer().run()
    finally:
        if owned_metrics_dir is not None:
            shutil.rmtree(owned_metrics_dir, ignore_errors=True)
    return 0
