"""The daemon's parts on real inputs: the sample clip, image files, SQLite, a unix socket."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.errors import ConfigError, MissingDependencyError
from ecolens.edge.daemon.audit import AuditWriter
from ecolens.edge.daemon.config import load_daemon_config
from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.config.source import SourceSection
from ecolens.edge.daemon.motion import PresenceGate
from ecolens.edge.daemon.sdnotify import SystemdNotifier
from ecolens.edge.daemon.sources import SourceError, detect_kind, make_source
from ecolens.edge.daemon.store import ResultQueue
from ecolens.edge.daemon.tracker import ItemTracker, Step

from tests.support.daemon_helpers import clip_manifest, clip_path
from tests.support.mjpeg import MjpegCamera, camera_port, clip_frames

STANDIN = Path(__file__).parent / "support" / "picamera2_standin"


def count_items(source, detect: DetectSection) -> list[tuple[float, tuple]]:
    """Run gate + tracker over a source: (stream time, box) of every completed item."""
    gate, tracker = PresenceGate(detect), ItemTracker(detect)
    items = []
    while (frame := source.read()) is not None:
        observation = gate.observe(frame, learn=tracker.learning)
        if tracker.update(observation, frame.t) == Step.COMPLETE:
            items.append((frame.t, observation.box))
    return items


def test_clip_gives_one_item_event_per_item_while_it_rests():
    manifest = clip_manifest()
    source = make_source(SourceSection(uri=str(clip_path()), speed=0), threading.Event())
    source.open()
    items = count_items(source, DetectSection())
    assert len(items) == len(manifest["items"])
    for (t, box), item in zip(items, manifest["items"]):
        assert item["settled_s"] <= t <= item["leaves_s"]
        x0, y0, x1, y1 = box  # the pasted 224x168 photo, found from the presence mask
        assert 200 <= x1 - x0 <= 250 and 150 <= y1 - y0 <= 190


def test_region_of_interest_outside_the_items_sees_nothing():
    source = make_source(SourceSection(uri=str(clip_path()), speed=0), threading.Event())
    source.open()
    assert count_items(source, DetectSection(roi=(0.0, 0.0, 0.15, 0.2))) == []


def test_looping_file_source_starts_over_with_increasing_stream_time():
    manifest = clip_manifest()
    source = make_source(SourceSection(uri=str(clip_path()), speed=0, loop=True), threading.Event())
    source.open()
    times = [source.read().t for _ in range(manifest["frames"] + 5)]
    assert all(b > a for a, b in zip(times, times[1:]))


def test_image_folder_is_one_item_per_image_and_skips_bad_files(tmp_path, eval_dir, caplog):
    images = sorted(eval_dir.rglob("*.jpg"))[:3]
    for image in images:
        (tmp_path / image.name).write_bytes(image.read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    source = make_source(SourceSection(uri=str(tmp_path)), threading.Event())
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert sorted(Path(f.path).name for f in frames) == sorted(i.name for i in images)
    assert all(f.still and f.rgb().shape[2] == 3 for f in frames)
    assert "broken.jpg" in caplog.text


def test_sources_that_cannot_open_give_one_clear_error(tmp_path):
    stop = threading.Event()
    camera = make_source(SourceSection(uri="/dev/video99", open_attempts=1), stop)
    with pytest.raises(SourceError, match="cannot open camera /dev/video99"):
        camera.open()
    with pytest.raises(SourceError, match="video file not found"):
        make_source(SourceSection(uri=str(tmp_path / "missing.mp4")), stop)
    with pytest.raises(SourceError, match="no images"):
        make_source(SourceSection(uri=str(tmp_path)), stop).open()


def test_dropped_stream_is_reopened_with_backoff_and_frames_resume(caplog):
    """A real MJPEG-over-HTTP camera goes away mid-stream (connection cut, then refused) and
    comes back on the same address: the live source keeps retrying and delivers again."""
    camera = MjpegCamera(clip_frames(clip_path()), camera_port()).start()
    stop = threading.Event()
    source = make_source(SourceSection(uri=camera.url, reopen_min_s=0.1, reopen_max_s=0.4), stop)
    frames: list[float] = []

    def read_until_stopped() -> None:
        while (frame := source.read()) is not None:
            frames.append(time.monotonic())
            assert frame.pixels.shape == (480, 640, 3)

    try:
        source.open()
        reader = threading.Thread(target=read_until_stopped, daemon=True)
        reader.start()
        assert wait_until(lambda: len(frames) >= 10, timeout=20)
        camera.stop()
        down_at = time.monotonic()

        def refused_reopens() -> int:
            return sum("cannot open stream" in r.getMessage() for r in caplog.records)

        # waited for by what happens, not by the clock: several refused reopen attempts
        assert wait_until(lambda: refused_reopens() >= 2, timeout=30), "no reopen attempts"
        assert not frames or frames[-1] < down_at + 0.5
        before = len(frames)
        camera.start()
        assert wait_until(lambda: len(frames) >= before + 10, timeout=20), "no frames after it came back"
    finally:
        stop.set()
        camera.stop()
        reader.join(timeout=15)
        source.close()
    assert source.reopens == 1
    assert camera.connections == 2
    messages = [record.getMessage() for record in caplog.records]
    assert any("stopped delivering frames; reopening" in m for m in messages)
    assert any("cannot open stream" in m and "retrying" in m for m in messages)


def test_source_kind_is_guessed_from_the_uri(tmp_path):
    assert detect_kind("0") == "camera"
    assert detect_kind("/dev/video2") == "camera"
    assert detect_kind("rtsp://cam.lan/stream") == "stream"
    assert detect_kind("picamera2:1") == "picamera2"
    assert detect_kind("clip.mp4") == "file"
    assert detect_kind(str(tmp_path)) == "images"
    assert detect_kind("photos/*.jpg") == "images"


def test_picamera2_source_follows_picamera2_api(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    from picamera2 import Picamera2

    Picamera2.video = str(clip_path())
    source = make_source(SourceSection(uri="picamera2", width=320, height=240, fps=15), threading.Event())
    source.open()
    camera = Picamera2.instances[-1]
    assert camera.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert camera.config["controls"] == {"FrameRate": 15.0}
    frame = source.read()
    assert frame.pixels.shape == (240, 320, 3) and frame.order == "BGR"
    # Live frames carry wall-clock times and the stand-in delivers them faster than real
    # time, so the time-based thresholds are zeroed here: only the frame sequence matters.
    items = count_items(_until_error(source), DetectSection(settle_s=0, clear_s=0))
    assert len(items) == len(clip_manifest()["items"])
    source.close()
    assert camera.calls[-2:] == ["stop", "close"]


def test_picamera2_missing_camera_and_missing_library(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    source = make_source(SourceSection(uri="picamera2:3", open_attempts=1), threading.Event())
    with pytest.raises(SourceError, match="cannot open Pi camera 3"):
        source.open()
    monkeypatch.setitem(__import__("sys").modules, "picamera2", None)
    with pytest.raises(MissingDependencyError, match="python3-picamera2"):
        make_source(SourceSection(uri="picamera2"), threading.Event()).open()


class _until_error:
    """Reads the wrapped (inner) source until the stand-in runs out of frames."""

    def __init__(self, source) -> None:
        self.inner = source.source

    def read(self):
        try:
            return self.inner.read()
        except SourceError:
            return None


def test_store_keeps_results_across_reopen_and_drops_oldest_when_full(tmp_path):
    path = tmp_path / "queue.sqlite3"
    store = ResultQueue(path, max_items=3)
    for n in range(5):
        store.put(f"e{n}", "t", f'{{"n": {n}}}', 1)
    assert store.depth() == 3 and store.dropped() == 2
    first = store.pending(10)
    assert [row.event_id for row in first] == ["e2", "e3", "e4"]
    store.delete(first[0].id)
    store.close()
    reopened = ResultQueue(path, max_items=3)
    assert [r.event_id for r in reopened.pending(10)] == ["e3", "e4"]
    assert [r.event_id for r in reopened.pending(10, exclude={first[1].id})] == ["e4"]
    assert reopened.dropped() == 2
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@pytest.mark.parametrize(("mode", "pragma"), [("background", 1), ("full", 2), ("normal", 1)])
def test_store_durability_modes(tmp_path, mode, pragma):
    """``background`` (the default) commits without waiting for the disk and has the sync
    thread fsync the WAL itself (the file SQLite writes, checked by inode) within an interval;
    ``full`` leaves it to SQLite inside the commit; ``normal`` to SQLite's checkpoints."""
    path = tmp_path / "queue.sqlite3"
    store = ResultQueue(path, synchronous=mode)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == pragma
    for n in range(20):
        store.put(f"e{n}", "t", "{}", 1)
    if mode == "background":
        assert store.syncer is not None
        assert os.fstat(store.syncer._fd).st_ino == os.stat(f"{path}-wal").st_ino
        assert store.syncer.wait(10)
        assert store.syncer.requested == 20 and store.syncer.synced == 20 and store.syncer.errors == 0
        store.put("last", "t", "{}", 1)
        store.close()  # the commits of the last interval are synced before the thread ends
        assert store.syncer.synced == 21 and not store.syncer.is_alive()
    else:
        assert store.syncer is None
        store.close()
    reopened = ResultQueue(path)
    assert [row.event_id for row in reopened.pending(50)][:20] == [f"e{n}" for n in range(20)]
    reopened.close()


def test_store_refuses_an_unknown_durability_mode(tmp_path):
    with pytest.raises(ConfigError, match="store.synchronous: 'off' is not one of"):
        ResultQueue(tmp_path / "queue.sqlite3", synchronous="off")


def test_damaged_store_is_moved_aside_not_deleted(tmp_path):
    path = tmp_path / "queue.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    store = ResultQueue(path)
    assert store.depth() == 0
    assert len(list(tmp_path.glob("queue.sqlite3.corrupt-*"))) == 1


def test_sd_notify_sends_ready_and_watchdog_over_the_socket(tmp_path):
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval_s == 2.0
        assert notifier.ready("up")
        assert server.recv(100) == b"READY=1\nSTATUS=up"
        assert notifier.watchdog()
        assert server.recv(100) == b"WATCHDOG=1"
    assert not SystemdNotifier({}).ready()


def test_audit_images_stay_within_the_disk_budget(tmp_path):
    writer = AuditWriter(tmp_path / "audit", max_mb=0.05, max_side=64, quality=90)
    noise = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    for n in range(40):
        result = {"event_id": f"ev{n}", "label": "plastic", "timestamp": "2026-01-02T03:04:05Z"}
        saved = writer.save(noise, result)
    assert saved.parent.name == "2026-01-02" and saved.name == "ev39_plastic.jpg"
    assert max(cv2.imread(str(saved)).shape[:2]) == 64
    files = list((tmp_path / "audit").rglob("*.jpg"))
    assert sum(f.stat().st_size for f in files) <= 0.05 * 2**20 and len(files) < 40


def test_config_file_env_and_flags_in_order_and_bad_settings_rejected(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[publish]\ndevice_id = "bin-1"\n[detect]\nframes_per_item = 5\n')
    config = load_daemon_config(
        path,
        {"publish.device_id": "bin-2"},
        environ={"ECOLENS_DETECT__FRAMES_PER_ITEM": "4", "ECOLENS_MQTT__PORT": "1884"},
    )
    assert config.publish.device_id == "bin-2"
    assert config.detect.frames_per_item == 4 and config.mqtt.port == 1884
    path.write_text("[detect]\nframes_per_itme = 5\n")
    with pytest.raises(ConfigError, match="detect.frames_per_itme: unknown setting"):
        load_daemon_config(path, environ={})
    path.write_text("[detect]\nroi = [0.5, 0.0, 0.2, 1.0]\n")
    with pytest.raises(ConfigError, match="roi"):
        load_daemon_config(path, environ={})
    with pytest.raises(ConfigError, match="device_id"):
        load_daemon_config(None, {"publish.device_id": "a/b"}, environ={})


def clip_labels(classifier, crop: str) -> list[str]:
    from ecolens.edge.daemon.pipeline import ItemPipeline

    source = make_source(SourceSection(uri=str(clip_path()), speed=0), threading.Event())
    source.open()
    pipeline = ItemPipeline(lambda: classifier, DetectSection(crop=crop), "bin", "clip")
    labels = []
    while (frame := source.read()) is not None:
        labels.extend(item.result["label"] for item in pipeline.process(frame))
    return labels


def test_cropping_to_the_item_is_what_makes_the_labels_right(reference_model):
    """Why detect.crop defaults to 'item': the model was trained on photos the item fills."""
    from ecolens.core.classifier import Classifier

    classifier = Classifier(reference_model)
    truth = [item["label"] for item in clip_manifest()["items"]]
    assert clip_labels(classifier, "item") == truth
    whole = clip_labels(classifier, "frame")
    assert len(whole) == len(truth)
    assert sum(a == b for a, b in zip(whole, truth)) < len(truth)


def test_audit_and_sample_of_a_result_wait_until_it_is_published(
    tmp_path, mosquitto, reference_model, eval_dir
):
    """The result is committed and handed to the MQTT link first; its audit JPEG and its sample
    (an encode and a second commit) come with the next frame, never while it is being sent."""
    from ecolens.core.mqtt import broker_overrides
    from ecolens.edge.daemon.app import Daemon

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "one.jpg").write_bytes(sorted(eval_dir.rglob("*.jpg"))[0].read_bytes())
    overrides = {
        "source.uri": str(folder),
        "model.path": str(reference_model),
        "store.path": str(tmp_path / "queue.sqlite3"),
        "audit.enabled": True,
        "audit.dir": str(tmp_path / "audit"),
        "samples.enabled": True,
        "samples.random_share": 1.0,
        "publish.stats_interval_s": 0,
        "service.watch_interval_s": 0,
        **broker_overrides(mosquitto.url),
    }
    daemon = Daemon(load_daemon_config(None, overrides, environ={}))
    daemon.start()
    try:
        (item,) = daemon.pipeline.process(daemon.source.read())
        daemon._publish(item)
        assert item.result["seq"] == 1  # numbered in the commit; the link may have sent it already
        assert not list((tmp_path / "audit").rglob("*.jpg"))
        daemon._after_publish()
        assert len(list((tmp_path / "audit").rglob("*.jpg"))) == 1
        assert daemon.samples is not None and daemon.samples.queued == 1
        assert wait_until(lambda: daemon.store.depth() == 0, timeout=10)  # result and sample sent
    finally:
        daemon.stop_event.set()
        daemon.shutdown()
