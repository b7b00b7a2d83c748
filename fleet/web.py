"""Read-only HTTP JSON API and the dashboard page (Flask). Assets are packaged in
fleet/static (Chart.js vendored), so the page works without internet.

Keys are the API's (see ecolens.core.http.webserver.require_keys). A LAN address without keys is
refused at start-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.http.errors import error_body
from ecolens.core.http.keys import KeyStore
from ecolens.core.http.webserver import BackgroundServer, json_errors, require_keys
from ecolens.fleet.config.report import ReportSection
from ecolens.fleet.report import VIEWS, build_bin_page, build_report
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import BUCKETS_MS, iso, parse_bucket, parse_window

INGEST_SILENT_S = 300  # bins send stats every minute: 5 minutes without a message is not quiet


def describe_ingest(ingest: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The ingest counters plus readable times: ``last_message`` (anything from the broker),
    ``last_stored`` (the data is as of then) and ``silent`` (nothing for INGEST_SILENT_S)."""
    last = ingest.get("last_message_ms")
    heard = last if last is not None else ingest.get("started_ms")  # just started: not silent yet
    return {
        **ingest,
        "last_message": iso(last),
        "last_stored": iso(ingest.get("last_commit_ms")),
        "silent": heard is None or now_ms - heard > INGEST_SILENT_S * 1000,
    }


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
    require_keys(app, keys or KeyStore(), "ecolens fleet")
    json_errors(app)

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

    def in_window(build: Callable[..., Any], **kwargs: Any) -> Any:
        """``build(db, window, bucket, plastic_label, stale_after_s, **kwargs)`` with the
        request's window and bucket, on the shared connection."""
        args = request.args
        window = parse_window(args.get("since", report_settings.window), args.get("until", "now"))
        bucket = args.get("bucket", report_settings.bucket)
        parse_bucket(bucket)
        settings = (report_settings.plastic_label, report_settings.stale_after_s)
        attention = report_settings.attention()
        return with_database(
            lambda db: build(db, window, bucket.lower(), *settings, attention=attention, **kwargs)
        )

    def run_report(views: tuple[str, ...]) -> dict[str, Any]:
        return in_window(build_report, views=views, device_id=request.args.get("device"))

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

    @app.get("/api/bin/<device_id>")
    def bin_page(device_id: str) -> Any:
        """One bin: its totals, series, status now and history, newest results."""
        page = in_window(build_bin_page, device_id=device_id)
        if page is None:
            return jsonify(error_body("not_found", f"no bin {device_id!r} has been heard from")), 404
        return jsonify(page)

    @app.get("/metrics")
    def metrics() -> Any:
        """Prometheus text: results missing per bin, ingest counters, lag, writer state."""
        from ecolens.fleet.metrics import render
        from ecolens.fleet.queries import bin_statuses, missing_results
        from ecolens.fleet.storage.binstats import read_stats

        body, content_type = render(
            lambda: with_database(lambda db: missing_results(db, complete_too=True)),
            ingest_stats,
            lambda: with_database(
                lambda db: bin_statuses(db, int(time.time() * 1000), report_settings.stale_after_s)
            ),
            lambda: with_database(read_stats),
        )
        return body, 200, {"Content-Type": content_type}

    @app.get("/api/health")
    def health() -> Any:
        """503 unless results are flowing: connected to the broker and the writer running
        (``ingest.lag`` is received minus stored; ``ingest.writer`` the writer's state).
        ``ingest.silent`` says nothing arrived for INGEST_SILENT_S: the dashboard shows it
        degraded, but it is no reason to restart anything (a quiet fleet at night)."""
        ingest = ingest_stats() if ingest_stats else None
        ok = ingest is None or (ingest["connected"] and ingest["writer"] == "running")
        now_ms = int(time.time() * 1000)
        if ingest is not None:
            ingest = describe_ingest(ingest, now_ms)
        body = {
            "ok": ok,
            "now": iso(now_ms),
            "buckets": list(BUCKETS_MS),
            "refresh_s": report_settings.refresh_s,  # how often the pages ask again
            "ingest": ingest,
        }
        return jsonify(body), 200 if ok else 503

    @app.get("/")
    def dashboard() -> Any:
        return app.send_static_file("dashboard.html")

    return app


__all__ = ["BackgroundServer", "create_app"]
