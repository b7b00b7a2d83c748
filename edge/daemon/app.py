"""The daemon's life: start-up in a fixed order, the frame loop, reload, graceful stop.

Start-up: logging -> model -> queue -> MQTT -> signals -> READY=1 -> frame source.
Anything wrong before READY (bad model, unwritable queue, a video file or image folder that
does not open) stops start-up with one clear error. A live camera or stream is opened after
READY and retried for ever: the queue and the MQTT link do not depend on it, so a bin whose
camera is gone still sends what it queued and publishes ``camera: "down"`` in its status.
After READY, failures are retried (source reopen, MQTT reconnect) and results wait in the
queue.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ecolens.core.classifier import Classifier
from ecolens.core.errors import EcoLensError
from ecolens.edge.daemon.audit import AuditWriter
from ecolens.edge.daemon.config import DaemonConfig, load_daemon_config
from ecolens.edge.daemon.config.store import default_state_dir
from ecolens.edge.daemon.mqtt_link import MqttLink
from ecolens.edge.daemon.pipeline import ItemPipeline, ItemResult
from ecolens.edge.daemon.rollout import ModelUpdater
from ecolens.edge.daemon.samples import SAMPLE, SampleKeeper
from ecolens.edge.daemon.sdnotify import SystemdNotifier
from ecolens.edge.daemon.sources import make_source
from ecolens.edge.daemon.stats import DaemonStats
from ecolens.edge.daemon.store import ResultQueue, explain, is_damage
from ecolens.edge.daemon.tracker import State
from ecolens.edge.daemon.web import LiveView

log = logging.getLogger("ecolens.daemon")

# Sections a reload cannot apply to a running daemon (logged: restart to apply).
RESTART_SECTIONS = (
    "mqtt",
    "source",
    "publish",
    "store",
    "homeassistant",
    "service",
    "rollout",
    "samples",
    "web",
)
FINISH_ITEM_FRAMES = 60  # on stop, at most this many more frames to finish a settling item


def load_classifier(config: DaemonConfig, path: Path | None = None) -> Classifier:
    """The configured model, or ``path`` (a model a signed rollout installed)."""
    return Classifier.from_settings(config.model, path=path)


def file_signature(path: Path | None) -> tuple[float, int] | None:
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size) if stat else None


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        config_path: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.overrides = overrides or {}
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.stats = DaemonStats()
        self.notifier = SystemdNotifier()
        self.results: list[dict[str, Any]] = []  # kept only when keep_results (demo, tests)
        self._published: list[ItemResult] = []  # their audit, sample and log come after the publish
        self.keep_results = False
        self.ready = threading.Event()
        self._heartbeat = time.monotonic()
        self.updater: ModelUpdater | None = None
        self.live = LiveView(config.web.frame_interval_s / 2)
        self.web: Any = None

    # --- start-up ---------------------------------------------------------------------------
    def start(self) -> None:
        """Everything that must work before the daemon reports ready."""
        cfg = self.config
        keys = None
        if cfg.web.enabled:
            from ecolens.edge.daemon.web import web_keys

            keys = web_keys(cfg.web)  # a LAN address without keys stops start-up here
        self.updater = self._make_updater(cfg)
        self.classifier = load_classifier(cfg, self._rollout_model())
        log.info(
            "model %s %s (%s) loaded",
            self.classifier.metadata.name,
            self.classifier.metadata.version,
            self.classifier.path,
            extra={"event": "model_loaded"},
        )
        self.store = ResultQueue(cfg.store.resolved_path(), cfg.store.max_items, cfg.store.synchronous)
        self.source = make_source(cfg.source, self.stop_event)
        self.source.heartbeat = self._while_waiting
        if not self.source.live:
            self.source.open()
            self.source.camera.up()
            log.info("reading frames from %s", self.source.name, extra={"event": "source_open"})
        self.pipeline = ItemPipeline(
            lambda: self.classifier, cfg.detect, cfg.publish.device_id, self.source.name
        )
        self.stats.count_from("skipped_uncertain", lambda: self.pipeline.skipped_uncertain)
        self.stats.count_from("source_reopens", lambda: self.source.reopens)
        self.audit = self._make_audit(cfg)
        self.samples = (
            SampleKeeper(cfg.samples, self.store, cfg.publish.topic(SAMPLE)) if cfg.samples.enabled else None
        )
        self.link = MqttLink(
            cfg.mqtt,
            cfg.publish,
            self.store,
            self.stats,
            cfg.homeassistant,
            lambda: self.classifier.model_info,
            self.source.camera,
            on_failure=self.stop_event.set,
            labels=lambda: self.classifier.labels,
        )
        if self.updater is not None:  # before the link connects: its first connect reports the model
            self.updater.start(self.link.shared())
        self.link.start()
        self.stats.metrics.watch(self.figures)
        if keys is not None:
            from ecolens.edge.daemon.web import start_web

            self.web = start_web(self, cfg.web, keys)
            log.info("bin page and /metrics on %s/", self.web.url, extra={"event": "web_started"})
        self._signatures = self._watched()
        self._next_watch = time.monotonic() + cfg.service.watch_interval_s
        self._start_watchdog()
        self.ready.set()
        self.notifier.ready(f"classifying frames from {self.source.name}")

    def _open_live_source(self) -> bool:
        """After READY: the camera may take for ever to appear; False when stopped first."""
        if not self.source.open_until_up():
            return False
        log.info("reading frames from %s", self.source.name, extra={"event": "source_open"})
        return True

    def _make_updater(self, cfg: DaemonConfig) -> ModelUpdater | None:
        if not cfg.rollout.enabled:
            return None
        return ModelUpdater(
            cfg.rollout,
            cfg.publish.topic_prefix,
            cfg.publish.device_id,
            cfg.rollout.dir or default_state_dir() / "models",
            current=lambda: self.classifier,
            load=lambda path: load_classifier(self.config, path),
            install=self.install_model,
        )

    def _rollout_model(self) -> Path | None:
        return self.updater.active_path() if self.updater is not None else None

    def install_model(self, classifier: Classifier) -> None:
        """Swap in a model a signed rollout delivered (already loaded, so it works)."""
        self.classifier = classifier
        log.info(
            "rollout installed model %s %s (sha256 %s)",
            classifier.metadata.name,
            classifier.metadata.version,
            classifier.sha256[:12],
            extra={"event": "model_installed"},
        )

    def figures(self) -> dict[str, Any]:
        """What /metrics and the bin page show: totals since start and the state now."""
        figures = self.stats.counters()
        figures.update(
            queue_depth=self.store.depth(),
            queue_dropped=self.store.dropped(),
            mqtt_connected=self.link.connected.is_set(),
            model=self.classifier.model_info,
            source=self.source.name,
            camera=self.source.camera.state,
            camera_error=self.source.camera.error,
        )
        return figures

    def _make_audit(self, cfg: DaemonConfig) -> AuditWriter | None:
        if not cfg.audit.enabled:
            return None
        folder = cfg.audit.dir or default_state_dir() / "audit"
        return AuditWriter(folder, cfg.audit.max_mb, cfg.audit.max_side, cfg.audit.quality)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_event.set())

    # --- the frame loop -----------------------------------------------------------------------
    def loop(self) -> None:
        if self.source.live and not self._open_live_source():
            return
        while not self.stop_event.is_set():
            frame = self.source.read()
            self.beat()
            self._after_publish()
            if frame is None:
                if self.stop_event.is_set():
                    break
                log.info("source %s ended", self.source.name, extra={"event": "source_end"})
                if self.config.service.exit_at_end:
                    break
                self.stop_event.wait()
                break
            self.stats.frame()
            for item in self.pipeline.process(frame):
                self._publish(item)
            if self.web is not None:  # the bin page's references; nothing when it is off
                self.live.frame(frame, self.pipeline.last_box)
            self._reload_if_due()

    def _while_waiting(self) -> None:
        """Called about every second while the source waits for its camera: the watchdog sees
        a live loop, and a reload (SIGHUP, a changed file) applies now, not once frames flow."""
        self.beat()
        self._after_publish()
        if self.ready.is_set():
            self._reload_if_due()

    def _reload_if_due(self) -> None:
        interval = self.config.service.watch_interval_s
        if interval and time.monotonic() >= self._next_watch:
            self._next_watch = time.monotonic() + interval
            if self._watched() != self._signatures:
                self.reload_event.set()
        if self.reload_event.is_set():
            self.reload()

    def _publish(self, item: ItemResult) -> None:
        result = item.result
        self.stats.item(result["inference_ms"], result["label"], result["uncertain"])
        event_id = result["event_id"]
        try:
            self.store.put_result(result, self.config.publish.topic("result"), 1)
        except sqlite3.Error as exc:
            if is_damage(exc):
                damaged = f"queue {self.store.path} is damaged: {exc}; a restart moves it aside"
                raise EcoLensError(damaged) from None
            # Disk full, I/O error: this result cannot be kept; say so once per result, go on.
            message = f"queue {self.store.path}: {explain(exc, self.store.path)}"
            self.stats.store_failed(message)
            self.stats.unqueued += 1
            log.error("result %s lost, not queued: %s", event_id, message, extra={"event": "store_error"})
            return
        self.link.notify(event_id, item.read_at)
        if self.web is not None:
            self.live.result(result, item.image)  # a reference kept for the bin page, nothing more
        if self.keep_results:
            self.results.append(result)
        # The rest waits for the next frame: done now, it competes with the MQTT thread for the
        # CPU, the GIL and the queue while the result is being published.
        self._published.append(item)

    def _after_publish(self) -> None:
        """Audit image, sample and log line of the results published before."""
        while self._published:
            item = self._published.pop(0)
            result = item.result
            if self.audit is not None:
                self.audit.save(item.image, result)
            if self.samples is not None and self.samples.offer(item.image, result):
                self.link.notify()  # a queued sample is sent like a result
            log.info(
                "%s %.3f",
                result["label"],
                result["confidence"],
                extra={"event": "result", "result": result},
            )

    def _finish_item(self) -> None:
        """Stop requested while an item was being classified: finish it first."""
        if self.pipeline.tracker.state != State.COLLECTING:
            return
        for _ in range(FINISH_ITEM_FRAMES):
            try:
                frame = self.source.source.read()
            except EcoLensError:
                return
            if frame is None:
                return
            for item in self.pipeline.process(frame):
                self._publish(item)
            if self.pipeline.tracker.state != State.COLLECTING:
                return

    # --- reload -------------------------------------------------------------------------------
    def _watched(self) -> tuple:
        """The config and model files, each as (path, signature): a change to either reloads."""
        paths = (self.config_path, self.config.model.resolved_path())
        return tuple((path, file_signature(path)) for path in paths)

    def reload(self) -> bool:
        """New config and model; anything invalid is refused and the running ones are kept."""
        self.reload_event.clear()
        self.notifier.reloading()
        # Taken before reading: a file still being written in place (a `cp` over the model) that
        # is finished while this reload reads or refuses it differs from it at the next check.
        seen = self._signatures = self._watched()
        try:
            try:
                config = (
                    load_daemon_config(self.config_path, self.overrides)
                    if self.config_path is not None
                    else self.config
                )
                classifier = load_classifier(config, self._rollout_model())
            except EcoLensError as exc:
                log.error(
                    "reload refused, still running model %s: %s",
                    self.classifier.sha256[:12],
                    exc,
                    extra={"event": "reload_refused", "error": str(exc)},
                )
                return False
            for section in RESTART_SECTIONS:
                if getattr(config, section) != getattr(self.config, section):
                    log.warning("[%s] changed: restart the daemon to apply it", section)
            self.classifier = classifier
            if config.detect != self.config.detect:
                self.pipeline.configure(config.detect)
            if config.audit != self.config.audit:
                self.audit = self._make_audit(config)
            self.config = config.model_copy(
                update={section: getattr(self.config, section) for section in RESTART_SECTIONS}
            )
            log.info(
                "reloaded: model %s %s (sha256 %s)",
                classifier.metadata.name,
                classifier.metadata.version,
                classifier.sha256[:12],
                extra={"event": "reloaded"},
            )
            return True
        finally:
            now = self._watched()
            same_files = [path for path, _ in now] == [path for path, _ in seen]
            self._signatures = seen if same_files else now  # a new config may name another model
            self.notifier.notify("READY=1")

    # --- watchdog -----------------------------------------------------------------------------
    def beat(self) -> None:
        self._heartbeat = time.monotonic()

    def _start_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if not interval:
            return

        def ping() -> None:
            # Pings only while the frame loop is alive, so a hung loop gets restarted.
            while not self.stop_event.wait(interval):
                if time.monotonic() - self._heartbeat < 2 * interval:
                    self.notifier.watchdog()

        threading.Thread(target=ping, name="watchdog", daemon=True).start()

    # --- stop ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.notifier.stopping()
        self._finish_item()
        self._after_publish()
        self.stop_event.set()
        drain = self.config.service.drain_timeout_s
        try:
            log.info("stopping: flushing %d queued results", self.store.depth())
        except sqlite3.Error as exc:
            log.error("stopping; the queue cannot be read: %s", exc)
        if self.updater is not None:
            self.updater.stop()
        self.link.stop(drain)
        if self.web is not None:
            self.web.stop()
        self.source.close()
        self.store.close()
        log.info("stopped", extra={"event": "stopped"})

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            self.install_signal_handlers()
        self.start()
        try:
            self.loop()
        finally:
            self.shutdown()
        if self.link.failure:  # non-zero exit: systemd restarts the daemon
            raise EcoLensError(self.link.failure)
        return 0
