"""A model copied over the running one (`cp new.tflite model.tflite`: truncate, then write in
place) can be seen half-written by the daemon's file watch. The reload then refuses the half, and
the copy may finish while that reload is still running: the finished file must still be loaded
at the next check, not recorded as already seen."""

from __future__ import annotations

import shutil

from ecolens.core.classifier import file_sha256
from ecolens.edge.daemon import app
from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config import load_daemon_config

from tests.support.daemon_helpers import clip_path


def test_a_copy_that_finishes_during_a_refused_reload_is_loaded_at_the_next_check(
    tmp_path, mosquitto, reference_model, monkeypatch
):
    model = tmp_path / "model.tflite"
    shutil.copy(reference_model, model)
    overrides = {
        "source.uri": str(clip_path()),
        "model.path": str(model),
        "mqtt.port": mosquitto.port,
        "publish.device_id": "bin-reload",
        "store.path": str(tmp_path / "queue.sqlite3"),
        "service.watch_interval_s": 0.5,
    }
    daemon = Daemon(load_daemon_config(None, overrides, environ={}))
    daemon.start()
    try:
        running = daemon.classifier.sha256
        new = reference_model.read_bytes() + b"\0" * 16  # another file, still a model
        model.write_bytes(new[: len(new) // 2])  # the copy has begun

        real_load = app.load_classifier

        def copy_finishes_while_loading(*args, **kwargs):
            """The real loader refuses the half-written file; the copy ends before the reload does."""
            try:
                return real_load(*args, **kwargs)
            finally:
                model.write_bytes(new)

        monkeypatch.setattr(app, "load_classifier", copy_finishes_while_loading)
        assert daemon.reload() is False and daemon.classifier.sha256 == running
        monkeypatch.setattr(app, "load_classifier", real_load)

        daemon._next_watch = 0.0  # the next check of the watched files is due now
        daemon._reload_if_due()
        assert daemon.classifier.sha256 == file_sha256(model) != running
    finally:
        daemon.shutdown()
