"""Start-up: refuse unsafe or broken configurations with one clear line, then run uvicorn
(httptools parser with a header deadline, one event loop per worker process; each worker builds
the app and loads its own interpreter), or, with ``server.kind = "flask"``, the Flask app under
gunicorn (``edge.api.flask.server``) from the same checks and settings."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError, MissingDependencyError
from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore, hash_key
from ecolens.edge.api.settings import ApiConfig

log = logging.getLogger("ecolens.api")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_CONFIG_ENV = "ECOLENS_API_WORKER_CONFIG"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_startup(config: ApiConfig, keys: KeyStore) -> None:
    """Everything that would otherwise fail later, or silently serve an open LAN API."""
    check_exposure(config.server, keys.enabled, "the API", "server")
    model_path = config.model.resolved_path()
    if config.server.wait_for_model and not model_path.is_file():
        log.warning("model %s is missing: serving 503 until it appears", model_path)
        return
    from ecolens.core.classifier import Classifier

    Classifier.from_settings(config.model, threads=1)  # fails here, with ModelError's message, if unusable


def require_flask() -> None:
    """``--server flask`` needs Flask and gunicorn (the ``flask`` extra): say which is missing."""
    for module, package in (("flask", "flask"), ("gunicorn", "gunicorn")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"ecolens serve --server flask needs the Python package {package!r}, which is not "
                "installed: pip install 'ecolens[flask]'"
            )


def interpreter_threads(config: ApiConfig) -> int:
    """Split the cores between workers unless [model] threads says otherwise."""
    if config.model.threads is not None:
        return config.model.threads
    return max(1, (os.cpu_count() or 1) // config.server.workers)


def log_config(level: str) -> dict[str, Any]:
    """The same line format as the rest of ecolens, in every worker (uvicorn applies it)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"uvicorn": {"level": "WARNING" if level == "info" else level.upper()}},
    }


def uvicorn_config(config: ApiConfig) -> Any:
    import uvicorn
    from ecolens.edge.api.protocol import HeaderTimeoutProtocol

    server = config.server
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "workers": server.workers,
        "factory": True,
        "http": HeaderTimeoutProtocol,
        "loop": "auto",  # uvloop where installed
        "lifespan": "on",
        "access_log": False,  # our JSON access log replaces uvicorn's
        "log_config": log_config(config.logging.level),
        "log_level": config.logging.level,
        "server_header": False,
        "proxy_headers": False,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": server.timeout,
    }
    if server.tls:
        options["ssl_certfile"] = str(server.tls_cert)
        options["ssl_keyfile"] = str(server.tls_key)
    uv = uvicorn.Config("ecolens.edge.api.app:app_from_environment", **options)
    uv.header_timeout = server.header_timeout  # read by HeaderTimeoutProtocol
    return uv


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
    """Validate, then run the chosen server in this process until it is stopped."""
    if config.server.kind == "flask":
        require_flask()
    keys = KeyStore.from_settings(config.auth)
    check_startup(config, keys)
    # Workers receive the configuration with the keys as hashes only.
    config.auth.key_hashes = sorted(set(config.auth.key_hashes) | {hash_key(k) for k in config.auth.keys})
    config.auth.keys = []
    config.model.threads = interpreter_threads(config)
    owned_metrics_dir = prepare_metrics_dir() if config.server.workers > 1 else None
    log.info(
        "serving %s (%s) with %d worker(s) x %d inference thread(s), %d interpreter thread(s) each",
        config.server.url,
        config.server.kind,
        config.server.workers,
        config.server.threads,
        config.model.threads,
    )
    try:
        if config.server.kind == "flask":
            from ecolens.edge.api.flask.server import run_gunicorn

            run_gunicorn(config, log_config(config.logging.level))
        else:
            run_uvicorn(config)
    finally:
        if owned_metrics_dir is not None:
            shutil.rmtree(owned_metrics_dir, ignore_errors=True)
    return 0


def run_uvicorn(config: ApiConfig) -> None:
    """uvicorn's workers each build the app from the configuration in the environment."""
    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    os.environ[WORKER_CONFIG_ENV] = json.dumps(config.model_dump(mode="json"))
    uv = uvicorn_config(config)
    if config.server.workers > 1:
        Multiprocess(uv, sockets=[uv.bind_socket()]).run()
        return
    server = Server(uv)
    server.run()
    if not server.started:
        raise ConfigError(f"could not start serving on {config.server.url} (see the log above)")
