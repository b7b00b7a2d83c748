"""The daemon's stats report the counts that the pipeline and the source really keep (they
used to report copies that nothing incremented, so the stats topic always said 0)."""

from __future__ import annotations

import json
import threading

from ecolens.bench.postgres import wait_until
from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config import load_daemon_config

from tests.support.daemon_helpers import Recorder, clip_manifest, clip_path
from tests.support.mjpeg import MjpegCamera, camera_port, clip_frames


def config(tmp_path, broker, source: str, model, **extra):
    overrides = {
        "source.uri": source,
        "source.speed": 0,
        "model.path": str(model),
        "mqtt.port": broker.port,
        "publish.device_id": "bin-stats",
        "publish.stats_interval_s": 0.2,
        "store.path": str(tmp_path / "queue.sqlite3"),
        "service.drain_timeout_s": 10,
        **extra,
    }
    return load_daemon_config(None, overrides, environ={})


def test_uncertain_items_that_are_not_published_are_counted_on_the_stats_topic(
    tmp_path, mosquitto, reference_model
):
    recorder = Recorder(mosquitto.port, ["ecolens/bin-stats/#"])
    # Under min_confidence 1.0 every item short of full confidence is uncertain and withheld:
    # each of the clip's items is then either published or counted as skipped.
    daemon = Daemon(
        config(
            tmp_path,
            mosquitto,
            str(clip_path()),
            reference_model,
            **{"model.min_confidence": 1.0, "detect.publish_uncertain": False},
        )
    )
    daemon.run(install_signals=False)
    items = len(clip_manifest()["items"])
    # the results the broker acknowledged reach the recorder: waited for, not slept
    acknowledged = daemon.stats.published
    assert recorder.wait(lambda: len(recorder.results("ecolens/bin-stats/result")) >= acknowledged, 30)
    published = len(recorder.results("ecolens/bin-stats/result"))
    skipped = daemon.stats.snapshot(0, 0, {})["skipped_uncertain"]
    assert skipped > 0 and skipped + published == items
    assert recorder.wait(
        lambda: any(
            json.loads(p).get("skipped_uncertain", 0) > 0 for p in recorder.on("ecolens/bin-stats/stats")
        ),
        5,
    ), "no stats message reported a skipped item"
    recorder.close()


def test_a_reopened_camera_is_counted_in_the_stats(tmp_path, mosquitto, reference_model):
    camera = MjpegCamera(clip_frames(clip_path()), camera_port()).start()
    daemon = Daemon(
        config(
            tmp_path,
            mosquitto,
            camera.url,
            reference_model,
            **{"source.reopen_min_s": 0.1, "source.reopen_max_s": 0.4},
        )
    )
    runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
    runner.start()
    try:
        assert wait_until(lambda: daemon.ready.is_set() and daemon.stats.frames_read >= 5, timeout=30)
        camera.stop()
        assert wait_until(lambda: camera.connections >= 1, timeout=5)
        camera.start()
        assert wait_until(lambda: daemon.stats.snapshot(0, 0, {}).get("source_reopens") == 1, timeout=30)
    finally:
        daemon.stop_event.set()
        runner.join(timeout=30)
        camera.stop()
