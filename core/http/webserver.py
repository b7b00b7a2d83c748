"""The small threaded HTTP server and API-key guard shared by the read-only web pages (the fleet
dashboard, the bin page): werkzeug's threaded server is enough for a handful of people looking,
and the keys are the API's (hashed, constant-time)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.http.errors import Unauthorized, error_body
from ecolens.core.http.exposure import ListenSection
from ecolens.core.http.hosts import KnownHostsOnly
from ecolens.core.http.keys import KeyStore, presented_key


def require_keys(app: Any, keys: KeyStore, realm: str) -> None:
    """Every route of the Flask ``app`` needs one of ``keys`` (when any are set): scripts send
    ``Authorization: Bearer <key>`` or ``X-API-Key``; a browser gets a Basic prompt and sends the
    key as the password, which it then repeats for the page's own requests."""
    from flask import jsonify, request

    @app.before_request
    def check_key() -> Any:
        if not keys.enabled:
            return None
        credentials = request.authorization
        if credentials is not None and credentials.type == "basic":
            presented = credentials.password or None
        else:
            presented = presented_key(request.headers.get("Authorization"), request.headers.get("X-API-Key"))
        try:
            keys.check(presented)
        except Unauthorized as exc:
            response = jsonify(error_body(exc.code, exc.message))
            response.status_code = exc.status
            response.headers["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
            return response
        return None


# HTTP status -> the error code every EcoLens server uses for it (edge/api/errors.py has the same)
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def json_errors(app: Any) -> None:
    """Unknown paths, wrong methods and unexpected exceptions answer with the one JSON error
    body instead of Flask's HTML pages (a 405 keeps its ``Allow`` header); an exception is
    answered with one line (Flask has logged its traceback already)."""
    from flask import jsonify
    from werkzeug.exceptions import HTTPException, InternalServerError

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
        message = exc.description or exc.name
        if status == 404:
            message = "no such page or endpoint"
        elif status == 405:
            message = f"method not allowed here; allowed: {', '.join(sorted(exc.valid_methods or ()))}"
        response = jsonify(error_body(code, message))
        response.status_code = status
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(InternalServerError)
    def internal(exc: InternalServerError) -> Any:
        return jsonify(error_body("internal_error", "internal error; see the server log")), 500


class BackgroundServer:
    """Serves a WSGI app from a daemon thread beside the process's real work, answering only
    requests for this server's own names (core.http.hosts: no DNS rebinding)."""

    def __init__(self, app: Any, listen: ListenSection, name: str = "http") -> None:
        from werkzeug.serving import make_server

        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            # One access line per request (a page polls every second) is noise in the journal.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        host, port = listen.host, listen.port
        ssl_context = (str(listen.tls_cert), str(listen.tls_key)) if listen.tls else None
        try:
            guarded = KnownHostsOnly(app, listen, name)
            self._server = make_server(host, port, guarded, threaded=True, ssl_context=ssl_context)
        except OSError as exc:
            raise ConfigError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.port = self._server.server_port
        self.host = host
        self.scheme = "https" if listen.tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
