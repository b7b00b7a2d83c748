"""The API in Flask: :class:`FlaskApi` answers one request the way the ASGI app's middleware
stack does (request id, the refusals, the shared router and endpoints, error mapping, security
headers, metrics, access log), calling the same functions; :func:`create_blueprint` mounts it in
any Flask app, :func:`create_flask_app` is the whole app that ``ecolens serve --server flask``
runs.

Every path under the Blueprint's prefix is the API's: it is routed by the shared route table
(Starlette's router over ``routes.routes()``), so the same paths, 404s, 405s (with ``Allow``)
and trailing-slash redirects as under uvicorn, and a route added there is served here too."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ecolens.core.http.keys import KeyStore
from ecolens.edge.api.admission import admit, is_tf_serving
from ecolens.edge.api.body import ClientGone
from ecolens.edge.api.context import RequestInfo, open_request
from ecolens.edge.api.errors import Answer, as_api_error, error_answer
from ecolens.edge.api.flask.bridge import HOP_BY_HOP, BodyReader, call, raw_headers, run
from ecolens.edge.api.metrics import record_request
from ecolens.edge.api.middleware.metrics import endpoint
from ecolens.edge.api.middleware.security_headers import security_headers
from ecolens.edge.api.settings import ApiConfig, load_api_config
from ecolens.edge.api.state import ApiState, build_state
from flask import Blueprint, Flask, Response, request

# Every method reaches the API (so a wrong one gets its JSON 405, not the host app's page).
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
EXTENSION = "ecolens_api"  # app.extensions[EXTENSION]: this worker's ApiState


class FlaskApi:
    """One worker's API for Flask: its state and the shared router."""

    def __init__(self, state: ApiState) -> None:
        from ecolens.edge.api.routes import routes
        from starlette.datastructures import State
        from starlette.routing import Router

        self.state = state
        self.routes = routes()
        self.router = Router(self.routes)
        # scope["app"]: where request_io.state_of finds the state (app.state.ecolens)
        self.host = SimpleNamespace(state=State({"ecolens": state}))

    def blueprint(self, name: str = "ecolens_api") -> Blueprint:
        """Every path under the prefix, every method: the view is :meth:`answer`."""
        api = Blueprint(name, __name__)
        rule = {"methods": METHODS, "provide_automatic_options": False, "merge_slashes": False}
        api.add_url_rule("/", "api", self.view, defaults={"rest": ""}, strict_slashes=False, **rule)
        api.add_url_rule("/<path:rest>", "api", self.view, **rule)
        api.record_once(lambda setup: setup.app.extensions.setdefault(EXTENSION, self.state))
        return api

    def view(self, rest: str) -> Response:
        return self.answer("/" + rest)

    def answer(self, route_path: str) -> Response:
        """The answer to the current Flask request; ``route_path`` is its path below the prefix."""
        environ = request.environ
        headers = raw_headers(environ)
        info = open_request(dict(headers), environ.get("REMOTE_ADDR"))
        scope = self.scope(info, headers, route_path)
        try:
            admit(self.state, info, scope["method"], route_path)
            status, out, body = run(call(self.router, scope, self.body_reader(info)))
        except ClientGone:
            info.status, info.error = 499, "client_closed_request"  # nobody is left to answer
            status, out, body = 499, [], b""
        except Exception as exc:
            error = as_api_error(exc, info.request_id)
            info.error = error.code
            status, out, body = error_answer(error, info.request_id, is_tf_serving(route_path))
        if status != 499:
            info.status, info.responded = status, True
        response = self.response((status, out, body), info)
        record_request(endpoint(scope, self.routes), scope["method"], info.status, elapsed(info))
        self.state.access_log.request(info, scope["method"], scope["path"])
        return response

    def scope(self, info: RequestInfo, headers: list[tuple[bytes, bytes]], route_path: str) -> dict:
        """The ASGI scope the router and endpoints read; its path keeps the mount point as
        ``root_path`` (so a redirect points under the prefix)."""
        environ = request.environ
        mount = request.path[: -len(route_path)] if request.path.endswith(route_path) else request.path
        root = request.script_root + mount
        return {
            "type": "http",
            "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1",
            "method": request.method,
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "path": root + route_path,
            "root_path": root,
            "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
            "headers": headers,
            "client": (info.remote, int(environ.get("REMOTE_PORT") or 0)) if info.remote else None,
            "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
            "app": self.host,
            "ecolens": info,
        }

    def body_reader(self, info: RequestInfo) -> BodyReader:
        length = info.headers.get(b"content-length")
        return BodyReader(
            request.stream,
            int(length) if length and length.isdigit() else None,
            request.environ.get("gunicorn.socket"),
            self.state.config.server.body_timeout,
        )

    @staticmethod
    def response(answer: Answer, info: RequestInfo) -> Response:
        status, headers, body = answer
        headers = [(name, value) for name, value in headers if name not in HOP_BY_HOP]
        headers.append(("x-request-id", info.request_id))
        cache_control = any(name == "cache-control" for name, _ in headers)
        headers += [(n.decode(), v.decode()) for n, v in security_headers(cache_control)]
        response = Response(body, status, headers)
        if not any(name == "content-type" for name, _ in headers):
            del response.headers["Content-Type"]  # Flask's default; the answer (a redirect) has none
        return response


def elapsed(info: RequestInfo) -> float:
    return time.perf_counter() - info.started


def create_blueprint(
    config: ApiConfig | None = None, keys: KeyStore | None = None, name: str = "ecolens_api"
) -> Blueprint:
    """The API as a Blueprint: ``app.register_blueprint(create_blueprint(config),
    url_prefix="/ecolens")``. Loads the model now (``config`` defaults to ``load_api_config()``:
    the reference model, no keys). The Blueprint does not listen: the host app's server does, so
    the LAN-exposure rule is its operator's (give it keys before serving a LAN)."""
    return FlaskApi(build_state(config if config is not None else load_api_config(), keys)).blueprint(name)


def create_flask_app(config: ApiConfig) -> Flask:
    """The whole API as a Flask app, the Blueprint at the root. Requests Flask's own routing
    refuses (a path the Blueprint's rule cannot take, like ``//x``; a method it does not list)
    are answered by the same view, so they get the API's JSON too."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    app = Flask("ecolens.edge.api")
    app.url_map.merge_slashes = False
    api = FlaskApi(build_state(config))
    app.register_blueprint(api.blueprint())

    def unrouted(_error: Exception) -> Response:
        return api.answer(request.path)

    app.register_error_handler(NotFound, unrouted)
    app.register_error_handler(MethodNotAllowed, unrouted)
    return app
