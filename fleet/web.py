"""Read-only HTTP JSON API and the dashboard page (Flask). Assets are packaged in
fleet/static (Chart.js vendored), so the page works without internet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ecolens.edge.errors import ConfigError
from ecolens.fleet.config.report import ReportSection
from ecolens.fleet.report import VIEWS, build_report
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import BUCKETS_MS, parse_bucket, parse_window


def create_app(
    database_factory: Callable[[], Database],
    report_settings: ReportSection,
    ingest_stats: Callable[[], dict[str, Any]] | None = None,
) -> Any:
    """``database_factory`` opens a connection; one is kept and shared under a lock."""
    from flask import Flask, jsonify, request

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json.sort_keys = False
    state: dict[str, Any] = {"db": None}
    lock = threading.Lock()

    def run_report(views: tuple[str, ...]) -> dict[str, Any]:
        args = request.args
        window = parse_window(args.get("since", report_settings.window), args.get("until", "now"))
        bucket = args.get("bucket", report_settings.bucket)
        parse_bucket(bucket)
        with lock:
            if state["db"] is None:
                state["db"] = database_factory()
            try:
                return build_report(
                    state["db"],
                    window,
                    bucket.lower(),
                    report_settings.plastic_label,
                    report_settings.stale_after_s,
                    views=views,
                    device_id=args.get("device"),
                )
            except Exception:
                state["db"].close()  # reconnect next time (database restarted...)
                state["db"] = None
                raise

    @app.errorhandler(ConfigError)
    def bad_request(exc: ConfigError) -> Any:
        return jsonify(error=str(exc)), 400

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

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(ok=True, buckets=list(BUCKETS_MS), ingest=ingest_stats() if ingest_stats else None)

    @app.get("/")
    def dashboard() -> Any:
        return app.send_static_file("dashboard.html")

    return app


class BackgroundServer:
    """Serves the app from a thread beside the subscriber (werkzeug's threaded server:
    enough for a handful of operators on a read-only dashboard)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        from werkzeug.serving import make_server

        try:
            self._server = make_server(host, port, app, threaded=True)
        except OSError as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.port = self._server.server_port
        self.host = host
        self._thread = threading.Thread(target=self._server.serve_forever, name="fleet-http", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
