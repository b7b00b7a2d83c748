"""The bin page and /metrics, served by `ecolens run` when ``[web] enabled``.

What it costs when nobody looks: the frame loop keeps a reference to the newest frame and the
last few results (no copies, no encoding); JPEGs are made only when a page asks, at most one
per ``frame_interval_s / 2`` whatever the number of viewers.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from ecolens.core.errors import EcoLensError
from ecolens.core.http.errors import error_body
from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore
from ecolens.core.http.webserver import BackgroundServer, json_errors, require_keys
from ecolens.edge.daemon.config.web import WebSection
from ecolens.edge.daemon.stats import DaemonStats, percentile

if TYPE_CHECKING:
    from ecolens.edge.daemon.config import DaemonConfig
    from ecolens.edge.daemon.sources.base import Frame

MAX_SIDE = 960  # the live frame is shrunk to this (a Pi camera's 1920 px is not needed to aim)
JPEG_QUALITY = 75
KEEP_RESULTS = 12


@dataclass
class Shown:
    """One published result as the page lists it."""

    result: dict[str, Any]
    crop: np.ndarray  # RGB, as classified
    jpeg: bytes | None = None


def encode_jpeg(rgb: np.ndarray, max_side: int = MAX_SIDE) -> bytes:
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, int(width * scale)), max(1, int(height * scale))), cv2.INTER_AREA)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise EcoLensError("could not encode the frame as JPEG")
    return data.tobytes()


class LiveView:
    """What the frame loop hands the page: references only, swapped under a lock."""

    def __init__(self, min_interval_s: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._box: tuple[int, int, int, int] | None = None
        self._results: deque[Shown] = deque(maxlen=KEEP_RESULTS)
        self._jpeg: tuple[float, bytes, tuple[float, ...] | None, tuple[int, int]] | None = None
        self.min_interval_s = min_interval_s
        self.encodes = 0  # JPEGs made so far: stays 0 while nobody watches (a test checks it)

    def frame(self, frame: Frame, box: tuple[int, int, int, int] | None) -> None:
        """Called for every frame: two reference assignments."""
        self._frame, self._box = frame, box

    def result(self, result: dict[str, Any], crop: np.ndarray) -> None:
        with self._lock:
            self._results.appendleft(Shown(result, crop))

    def frame_jpeg(self) -> tuple[bytes, tuple[float, ...] | None, tuple[int, int]] | None:
        """(JPEG, item box as fractions or None, (width, height)) of the newest frame."""
        with self._lock:
            now = time.monotonic()
            if self._jpeg is not None and now - self._jpeg[0] < self.min_interval_s:
                return self._jpeg[1:]
            frame, box = self._frame, self._box
            if frame is None:
                return None
            height, width = frame.pixels.shape[:2]
            fractions = None
            if box is not None:
                fractions = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
            self._jpeg = (now, encode_jpeg(frame.rgb()), fractions, (width, height))
            self.encodes += 1
            return self._jpeg[1:]

    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            return [shown.result for shown in self._results]

    def crop_jpeg(self, event_id: str) -> bytes | None:
        with self._lock:
            for shown in self._results:
                if shown.result.get("event_id") == event_id:
                    if shown.jpeg is None:
                        shown.jpeg = encode_jpeg(shown.crop, 320)
                        self.encodes += 1
                    return shown.jpeg
        return None


class RunningBin(Protocol):
    """What the page reads from the running daemon and the one thing it asks of it (a reload):
    ``edge.daemon.app.Daemon`` is one. A protocol, so the page never imports the daemon."""

    config: DaemonConfig
    config_path: Path | None
    stats: DaemonStats
    live: LiveView
    reload_event: threading.Event

    def figures(self) -> dict[str, Any]: ...


def page_state(daemon: RunningBin) -> dict[str, Any]:
    """Everything the page shows besides the pictures."""
    figures = daemon.figures()
    stats = daemon.stats
    return {
        "device_id": daemon.config.publish.device_id,
        "roi": list(daemon.config.detect.roi) if daemon.config.detect.roi else None,
        "can_save_roi": daemon.config_path is not None,
        "config_path": str(daemon.config_path) if daemon.config_path else None,
        "frame_interval_s": daemon.config.web.frame_interval_s,
        "stats": {
            **{k: v for k, v in figures.items() if k != "model"},
            "inference_ms_p50": percentile(stats.inference_ms, 50),
            "inference_ms_p95": percentile(stats.inference_ms, 95),
            "latency_ms_p50": percentile(stats.latency_ms, 50),
            "latency_ms_p95": percentile(stats.latency_ms, 95),
        },
        "model": figures["model"],
        "results": daemon.live.results(),
    }


def save_roi(daemon: RunningBin, roi: tuple[float, float, float, float] | None) -> dict[str, Any]:
    """Validate the whole config with the new region, write it, and let the daemon's own
    reload apply it. Raises EcoLensError (bad region, no config file) with one clear line."""
    from ecolens.edge.daemon.config import load_daemon_config
    from ecolens.edge.daemon.config.edit import replace_file, with_detect_roi

    path = daemon.config_path
    if path is None:
        raise EcoLensError("the daemon was started without --config: there is no file to save the region to")
    text = with_detect_roi(path.read_text(encoding="utf-8"), roi)
    candidate = path.with_name(f".{path.name}.check")
    try:
        candidate.write_text(text, encoding="utf-8")
        try:
            load_daemon_config(candidate)  # the same validation as at start-up and reload
        finally:
            candidate.unlink(missing_ok=True)
        replace_file(path, text)
    except OSError as exc:
        line = "roi = [" + ", ".join(f"{v:.4f}" for v in roi) + "]" if roi else "no roi line (whole frame)"
        raise EcoLensError(
            f"cannot write {path} ({exc.strerror}); the shipped systemd unit keeps /etc read-only "
            f"for the daemon. Put this in [detect] yourself and reload: {line}"
        ) from None
    daemon.reload_event.set()
    deadline = time.monotonic() + 3.0
    wanted = None if roi is None else tuple(roi)
    while time.monotonic() < deadline and daemon.config.detect.roi != wanted:
        time.sleep(0.05)
    applied = daemon.config.detect.roi == wanted
    return {"roi": list(roi) if roi else None, "saved_to": str(path), "applied": applied}


def create_bin_app(daemon: RunningBin, keys: KeyStore) -> Any:
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json.sort_keys = False
    require_keys(app, keys, "ecolens bin")
    json_errors(app)

    @app.errorhandler(EcoLensError)
    def refused(exc: EcoLensError) -> Any:
        return jsonify(error_body("bad_request", str(exc))), 400

    @app.get("/")
    def page() -> Any:
        return app.send_static_file("bin.html")

    @app.get("/api/state")
    def state() -> Any:
        return jsonify(page_state(daemon))

    @app.get("/frame.jpg")
    def frame() -> Any:
        shot = daemon.live.frame_jpeg()
        if shot is None:
            return jsonify(error_body("unavailable", "no frame yet")), 503
        jpeg, box, (width, height) = shot
        response = Response(jpeg, mimetype="image/jpeg")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Size"] = f"{width}x{height}"
        response.headers["X-Item-Box"] = ",".join(f"{v:.4f}" for v in box) if box else ""
        return response

    @app.get("/crop/<event_id>.jpg")
    def crop(event_id: str) -> Any:
        jpeg = daemon.live.crop_jpeg(event_id)
        if jpeg is None:
            return jsonify(error_body("not_found", "no such recent result")), 404
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/roi")
    def roi() -> Any:
        # JSON only: a cross-site form cannot send it without the browser asking first (CORS).
        if not request.is_json:
            message = 'send JSON: {"roi": [x0, y0, x1, y1]} or {"roi": null}'
            return jsonify(error_body("unsupported_media_type", message)), 415
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "roi" not in body:
            message = 'send {"roi": [x0, y0, x1, y1]} (fractions of the frame) or null'
            return jsonify(error_body("bad_request", message)), 400
        value = body["roi"]
        if value is not None and (
            not isinstance(value, list)
            or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            return jsonify(
                error_body("bad_request", "roi must be four numbers [x0, y0, x1, y1] or null")
            ), 400
        try:
            return jsonify(save_roi(daemon, None if value is None else tuple(float(v) for v in value)))
        except EcoLensError as exc:
            return jsonify(error_body("bad_request", str(exc).replace("\n", " "))), 400

    @app.get("/metrics")
    def metrics() -> Any:
        body, content_type = daemon.stats.metrics.render()
        return Response(body, content_type=content_type)

    return app


def web_keys(web: WebSection) -> KeyStore:
    """The page's keys, after the exposure rules (checked before anything else starts):
    raises ConfigError with one clear line."""
    keys = KeyStore.from_settings(web.auth)
    check_exposure(web, keys.enabled, "the bin page", "web")
    return keys


def start_web(daemon: RunningBin, web: WebSection, keys: KeyStore) -> BackgroundServer:
    app = create_bin_app(daemon, keys)
    return BackgroundServer(app, web, name="bin page").start()
