"""Sample messages from anyone with broker access: each bad one is refused with one log line,
nothing is written outside the samples folder, a repeated event keeps its first image, and the
next good sample is still stored. Before this, a NaN confidence or a lone surrogate stopped the
sample subscriber's network thread for good, and a device id of ".." wrote one folder up."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ecolens.bench.postgres import wait_until
from ecolens.fleet.samples.parse import SampleRejected
from ecolens.fleet.samples.store import SampleStore
from ecolens.fleet.samples.subscriber import SampleSubscriber
from PIL import Image


def make_jpeg(width: int = 32, height: int = 24) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "JPEG")
    return out.getvalue()


JPEG = make_jpeg()


def message(jpeg: bytes = JPEG, **changes: object) -> bytes:
    result = {"event_id": "ev-1", "label": "plastic", "confidence": 0.5, "uncertain": True}
    result["model"] = {"name": "m", "version": "1.0.0", "sha256": "0" * 64}
    result.update(changes)
    return json.dumps({"result": result, "jpeg": base64.b64encode(jpeg).decode()}).encode()


HOSTILE = {
    "NaN confidence": ("bin-1", message(confidence=float("nan"))),
    "confidence above 1": ("bin-1", message(confidence=7)),
    "lone surrogate label": ("bin-1", message(label="\ud800")),
    "newline in the reason": ("bin-1", message(**{"forged\nline": "\ud800"})),
    "NUL in the version": ("bin-1", message(model={"version": "1\x00", "sha256": "0"})),
    "event id leaving the folder": ("bin-1", message(event_id="../../x")),
    "dot-dot device": ("..", message()),
    "dot device": (".", message()),
    "not JSON": ("bin-1", b"\xff\xfe garbage"),
    "result not an object": ("bin-1", b'{"result": [1], "jpeg": ""}'),
    "deep nesting": ("bin-1", b'{"result": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
    "not a JPEG": ("bin-1", message(jpeg=b"<svg/>")),
    "JPEG magic before junk": ("bin-1", message(jpeg=b"\xff\xd8\xff\xe0" + b"\x00" * 64)),
    "truncated JPEG": ("bin-1", message(jpeg=JPEG[: len(JPEG) // 2])),
    "a PNG": ("bin-1", message(jpeg=b"\x89PNG\r\n\x1a\n" + JPEG)),
    "huge declared size": ("bin-1", message(jpeg=make_jpeg(5000, 8))),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_sample_is_refused_and_writes_nothing(name: str, tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "samples")
    device, payload = HOSTILE[name]
    with pytest.raises(SampleRejected):
        store.add(device, payload)
    assert store.progress()["total"] == 0
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == []


def test_a_repeated_event_keeps_its_first_image(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "samples")
    assert store.add("bin-1", message())
    assert not store.add("bin-1", message(jpeg=JPEG + b"other"))
    assert store.image("ev-1").read_bytes() == JPEG


def room_for_three(folder: Path) -> int:
    """What three samples take, images and database, as the disk allocates them."""
    probe = SampleStore(folder)
    for n in range(3):
        assert probe.add("bin-1", message(event_id=f"ev-{n}"))
    cap = probe.usage.total_bytes() + 10
    probe.close()
    return cap


def test_samples_stop_at_the_folder_cap_across_restarts(tmp_path: Path) -> None:
    """A flood of samples (any client may publish them) cannot fill the disk the results share;
    what counts is what the disk allocates (a small image takes a whole block) and the database."""
    cap = room_for_three(tmp_path / "probe")
    store = SampleStore(tmp_path / "samples", max_bytes=cap)
    for n in range(3):
        assert store.add("bin-1", message(event_id=f"ev-{n}"))
    with pytest.raises(SampleRejected, match="samples folder holds 0 MB, its cap"):
        store.add("bin-1", message(event_id="ev-3"))
    counted = {device: list(entry) for device, entry in store.usage.bins.items()}
    assert counted["bin-1"][0] >= 3 * store.usage.block  # each small image takes a whole block
    store.close()
    reopened = SampleStore(tmp_path / "samples", max_bytes=cap)  # counts what is on disk
    assert reopened.usage.bins == counted
    assert reopened.progress()["total"] == 3
    assert len(list((tmp_path / "samples").rglob("*.jpg"))) == 3


def test_one_bin_cannot_take_the_folder_nor_the_labelling_view(tmp_path: Path) -> None:
    """4,000 tiny samples from one bin passed a 1 MB cap (bytes of images only), took 4,000
    inodes and all 200 places of the labelling view: now its quota of files and of allocated
    bytes stops it with one refusal line each, and the view takes every bin in turn."""
    store = SampleStore(tmp_path / "samples", bin_max_files=20, bin_max_bytes=40 * 4096)
    for n in range(20):
        assert store.add("bin-1", message(event_id=f"flood-{n}", confidence=0.01))
    with pytest.raises(
        SampleRejected, match=r"bin bin-1 holds 20 samples, its quota \(--samples-bin-max-files 20\)"
    ):
        store.add("bin-1", message(event_id="flood-20"))
    for n in range(3):
        assert store.add("bin-2", message(event_id=f"quiet-{n}", confidence=0.9, uncertain=False))
    view = [s.device_id for s in store.list(limit=6)]
    assert view == ["bin-1", "bin-2"] * 3
    assert len(list((tmp_path / "samples" / "bin-1").glob("*.jpg"))) == 20

    tight = SampleStore(tmp_path / "tight", bin_max_bytes=2 * store.usage.block)
    assert tight.add("bin-1", message(event_id="a")) and tight.add("bin-1", message(event_id="b"))
    with pytest.raises(SampleRejected, match="bin bin-1's samples take 0 MB on disk, its quota"):
        tight.add("bin-1", message(event_id="c"))
    assert tight.add("bin-2", message(event_id="d"))  # another bin is not stopped


def samples_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "samples", *args], capture_output=True, text=True, timeout=60
    )


def test_prune_makes_room_for_the_running_aggregator(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    running = SampleStore(folder, bin_max_files=3, recount_interval_s=0)
    for n in range(3):
        assert running.add("bin-1", message(event_id=f"ev-{n}"))
    with pytest.raises(SampleRejected, match="quota"):
        running.add("bin-1", message(event_id="ev-3"))
    running.label("ev-0", "plastic")
    running.label("ev-1", "skip")

    pruned = samples_cli("prune", "--dir", str(folder), "--state", "skipped")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("deleted 1 skipped samples") and not (folder / "bin-1/ev-1.jpg").exists()
    assert running.add("bin-1", message(event_id="ev-3"))  # another process freed the room

    (folder / "bin-1/ev-2.jpg").unlink()  # deleted by hand, though labelled
    running.label("ev-2", "non_plastic")
    exported = samples_cli("export", "--dir", str(folder), "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    assert "exported 1 plastic and 0 non_plastic" in exported.stdout
    assert "1 labelled without an image file skipped" in exported.stdout
    assert samples_cli("prune", "--dir", str(folder), "--state", "labelled").stdout.startswith("deleted 2 ")
    assert running.progress()["total"] == 1  # ev-3, unlabelled

    refused = samples_cli("prune", "--dir", str(folder))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "samples prune needs --state" in refused.stderr


def test_samples_stop_before_the_disk_is_full(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    store = SampleStore(folder, min_free_bytes=shutil.disk_usage(folder).total)
    with pytest.raises(SampleRejected, match="free on the samples folder's disk"):
        store.add("bin-1", message())
    assert store.progress()["total"] == 0 and not list(tmp_path.rglob("*.jpg"))


def test_the_subscriber_survives_hostile_samples(mosquitto, tmp_path: Path, caplog) -> None:
    import paho.mqtt.publish as publish

    from tests.test_fleet_ingest import aggregator

    store = SampleStore(tmp_path / "samples")
    subscriber = SampleSubscriber("ecolens", store)
    running = aggregator(mosquitto, f"sqlite:///{tmp_path / 'fleet.db'}", "agg-samples")
    subscriber.attach(running)  # on the aggregator's one connection, as `ecolens aggregate` does
    caplog.set_level(logging.WARNING, logger="ecolens.fleet.samples")
    running.start()
    try:

        def first_sample_stored() -> bool:
            # connected is not yet subscribed: send until one arrives (a repeat is not stored twice)
            publish.single("ecolens/bin-2/sample", message(event_id="first"), qos=1, port=mosquitto.port)
            return wait_until(lambda: subscriber.stored == 1, timeout=1)

        assert wait_until(first_sample_stored, timeout=20)
        for device, payload in HOSTILE.values():
            if device not in ("..", "."):  # a topic level; the rest go to bin-1's topic
                device = "bin-1"
            publish.single(f"ecolens/{device}/sample", payload, qos=1, port=mosquitto.port)
        publish.single("ecolens/bin-2/sample", message(event_id="good"), qos=1, port=mosquitto.port)
        assert wait_until(lambda: subscriber.stored == 2, timeout=20), (
            subscriber.stored,
            subscriber.rejected,
        )
    finally:
        running.stop()
    assert subscriber.rejected == len(HOSTILE)
    assert [s.event_id for s in store.list(state="all")] == ["first", "good"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")) == [
        "samples/bin-2/first.jpg",
        "samples/bin-2/good.jpg",
    ]
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(lines) == len(HOSTILE) and all("\n" not in line for line in lines)
