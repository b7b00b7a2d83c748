"""``ecolens serve --server flask``: the Flask app under gunicorn (gthread workers), from the same
validated settings as the default server. ``edge.api.server.serve`` has already made the checks
(exposure, TLS pair, the model loads) and prepared the configuration (keys as hashes only,
interpreter threads, the shared metrics directory); this only maps it onto gunicorn."""

from __future__ import annotations

import logging.config
from typing import Any

from ecolens.edge.api.settings import ApiConfig
from gunicorn.app.base import BaseApplication

KEEPALIVE_SECONDS = 5  # as uvicorn's timeout_keep_alive in edge.api.server


def gunicorn_options(config: ApiConfig) -> dict[str, Any]:
    """The gunicorn settings: ``timeout`` (a worker whose main loop is silent that long is
    killed and replaced) and ``graceful_timeout`` (what a stopping worker gets to finish) are
    ``server.timeout``; ``keepalive`` closes an idle kept-alive connection, as under uvicorn."""
    server = config.server
    host = f"[{server.host}]" if ":" in server.host else server.host
    options: dict[str, Any] = {
        "bind": [f"{host}:{server.port}"],
        "workers": server.workers,
        "worker_class": "gthread",
        "threads": server.flask_threads,
        "timeout": server.timeout,
        "graceful_timeout": server.timeout,
        "keepalive": KEEPALIVE_SECONDS,
        "accesslog": None,  # our JSON access log replaces gunicorn's
        "errorlog": "-",
        "loglevel": "warning" if config.logging.level == "info" else config.logging.level,
        "forwarded_allow_ips": "",  # like uvicorn's proxy_headers=False: the peer is the client
        "preload_app": False,  # each worker loads its own interpreter
        "worker_exit": worker_exit,
    }
    if server.tls:
        options["certfile"] = str(server.tls_cert)
        options["keyfile"] = str(server.tls_key)
    return options


def worker_exit(_server: Any, worker: Any) -> None:
    """What the ASGI app's lifespan does at exit: stop the loader and pool, drop live gauges."""
    from ecolens.edge.api.flask.blueprint import EXTENSION
    from ecolens.edge.api.state import close_state

    state = getattr(getattr(worker, "wsgi", None), "extensions", {}).get(EXTENSION)
    if state is not None:
        close_state(state)


class GunicornServer(BaseApplication):
    """gunicorn with the options above and :func:`create_flask_app` in each worker."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        super().__init__()

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.config).items():
            self.cfg.set(name, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25 opens one otherwise
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        from ecolens.edge.api.flask.blueprint import create_flask_app

        return create_flask_app(self.config)


def run_gunicorn(config: ApiConfig, log_config: dict[str, Any]) -> None:
    """Serve until stopped (gunicorn exits the process on a fatal error, with its message)."""
    logging.config.dictConfig(log_config)
    GunicornServer(config).run()
