"""Read-only HTTP JSON API and the dashboard page (Flask). Assets are packaged in
fleet/static (Chart.js vendored), so the page works without internet.

Keys are the API's (hashed, constant-time): scripts send ``Authorization: Bearer <key>`` or
``X-API-Key``; a browser gets a Basic prompt and sends the key as the password, which it then
repeats for the page's own requests. A LAN address without keys is refused at start-up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.http.errors import Unauthorized, error_body
from ecolens.core.http.keys import KeyStore, presented_key
from ecolens.fleet.config.http import HttpSection
from ecolens.fleet.config.report import ReportSection
from ecolens.fleet.report import VIEWS, build_report
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import BUCKETS_MS, parse_bucket, parse_window


def create_app(
    database_factory: Callable[[], Database],
    report_settings: ReportSection,
    ingest_stats: Callable[[], dict[str, Any]] | None = None,
    keys: KeyStore | None = None,
) -> Any:
    """``database_factory`` opens a connection; one is kept and shared under a lock. With
    ``keys`` enabled, every route (page, assets, JSON) needs one of them."""
    from flask import Flask, jsonify, request

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json.sort_keys = False
    keys = keys or KeyStore()

    @app.before_request
    def require_key() -> Any:
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
            response.headers["WWW-Authenticate"] = 'Basic realm="ecolens fleet", charset="UTF-8"'
            return response
        return None

    state: dict[str, Any] = {"db": None}
    lock = threading.Lock()

    def with_database(query: Callable[[Database], Any]) -> Any:
        with lock:
            if state["db"] is None:
                state["db"] = database_factory()
            try:
                return query(state["db"])
            except Exception:
                state["db"].close()  # reconnect next time (database restarted...)
                state["db"] = None
                raise

    def run_report(views: tuple[str, ...]) -> dict[str, Any]:
        args = request.args
        window = parse_window(args.get("since", report_settings.window), args.get("until", "now"))
        bucket = args.get("bucket", report_settings.bucket)
        parse_bucket(bucket)
        return with_database(
            lambda db: build_report(
                db,
                window,
                bucket.lower(),
                report_settings.plastic_label,
                report_settings.stale_after_s,
                views=views,
                device_id=args.get("device"),
            )
        )

    @app.errorhandler(ConfigError)
    def bad_request(exc: ConfigError) -> Any:
        return jsonify(error_body("bad_request", str(exc))), 400

    @app.get("/api/report")
    def report_all() -> Any:
        """Everything: totals, per-bin counts, time series, bin status."""
        return jsonify(run_report(VIEWS))

    @app.get("/api/bins")
    def report_bins() -> Any:
        return jsonify(run_report(("bins",)))

    @app.get("/api/series")
    def report_series() -> Any:
        return jsonify(run_report(("series",)))

    @app.get("/api/status")
    def report_status() -> Any:
        return jsonify(run_report(("status",)))

    @app.get("/metrics")
    def metrics() -> Any:
        """Prometheus text: results missing per bin, ingest counters, lag, writer state."""
        from ecolens.fleet.metrics import render
        from ecolens.fleet.queries import missing_results

        body, content_type = render(
            lambda: with_database(lambda db: missing_results(db, complete_too=True)), ingest_stats
        )
        return body, 200, {"Content-Type": content_type}

    @app.get("/api/health")
    def health() -> Any:
        """503 unless results are flowing: connected to the broker and the writer running
        (``ingest.lag`` is received minus stored; ``ingest.writer`` the writer's state)."""
        ingest = ingest_stats() if ingest_stats else None
        ok = ingest is None or (ingest["connected"] and ingest["writer"] == "running")
        return jsonify(ok=ok, buckets=list(BUCKETS_MS), ingest=ingest), 200 if ok else 503

    @app.get("/")
    def dashboard() -> Any:
        return app.send_static_file("dashboard.html")

    return app


class BackgroundServer:
    """Serves the app from a thread beside the subscriber (werkzeug's threaded server:
    enough for a handful of operators on a read-only dashboard)."""

    def __init__(self, app: Any, http: HttpSection) -> None:
        from werkzeug.serving import make_server

        host, port, tls = http.host, http.port, http.tls
        ssl_context = (str(http.tls_cert), str(http.tls_key)) if tls else None
        try:
            self._server = make_server(host, port, app, threaded=True, ssl_context=ssl_context)
        except OSError as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.port = self._server.server_port
        self.host = host
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fleet-http", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
