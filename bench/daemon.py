"""`ecolens benchmark daemon`: the daemon on the sample clip at 640x480.

Prints, all from this run:
- sustained frames/s of the daemon's pipeline (gate + item classification) against two
  baselines: decoding the clip alone (the ceiling) and classifying every frame (no gating);
  medians of --runs runs, with ratios;
- CPU % busy (clip played in real time, items arriving) and idle (an empty scene in real
  time: no motion), frame-to-publish latency p50/p95 (frame read -> PUBACK from a local
  Mosquitto) and the daemon's RSS.

The bin page's cost (``[web]``) is `ecolens benchmark binpage`, which reuses ``daemon_run``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
from ecolens.bench.figures import Figures
from ecolens.edge.daemon.stats import percentile

RETURNS_FIGURES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="runs per throughput figure")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle measurement span")
    parser.add_argument("--model", type=Path, help="the .tflite (default: the reference model)")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument(
        "--synchronous",
        choices=("background", "full", "normal"),
        default="background",
        help="the queue's store.synchronous (background, the default: fsync'd by a sync thread "
        "while the result is published; full: fsync'd before it is published)",
    )


def _clip() -> Path:
    from ecolens.models import samples_dir

    return samples_dir() / "clip" / "items.mp4"


def _frames_per_second(source_uri: str, handle) -> float:
    """Unpaced pass over the clip; ``handle(frame)`` is the work per frame."""
    from ecolens.edge.daemon.config.source import SourceSection
    from ecolens.edge.daemon.sources import make_source

    source = make_source(SourceSection(uri=source_uri, speed=0), threading.Event())
    source.open()
    count = 0
    started = time.perf_counter()
    while (frame := source.read()) is not None:
        handle(frame)
        count += 1
    elapsed = time.perf_counter() - started
    source.close()
    return count / elapsed


def _empty_clip(folder: Path, seconds: float) -> Path:
    """The clip's empty first frame, repeated: a scene where nothing happens."""
    capture = cv2.VideoCapture(str(_clip()))
    ok, first = capture.read()
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    capture.release()
    if not ok:
        raise RuntimeError("cannot read the sample clip")
    path = folder / "empty.mp4"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0])
    )
    for _ in range(int(seconds * fps)):
        writer.write(first)
    writer.release()
    return path


# What one open bin page asks for (edge/daemon/static/bin.js): the page once, then every
# ``interval`` seconds the state, the crop of each new result once, and the newest frame.
VIEWER = """
import json, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
def get(path):
    try:
        with urllib.request.urlopen(url + path, timeout=5) as response:
            return response.read()
    except OSError:
        return b""
for path in ("/", "/static/bin.js", "/static/bin.css"):
    get(path)
seen = set()
while True:
    try:
        results = json.loads(get("/api/state") or b"{}").get("results", [])
    except ValueError:
        results = []
    for result in results:
        if result["event_id"] not in seen:
            seen.add(result["event_id"])
            get("/crop/%s.jpg" % result["event_id"])
    get("/frame.jpg?t=%d" % time.time_ns())
    time.sleep(interval)
"""


def start_viewer(url: str, interval: float) -> subprocess.Popen:
    """One open bin page, in its own process so that its work is not counted as the daemon's."""
    return subprocess.Popen([sys.executable, "-c", VIEWER, url, str(interval)])


def daemon_run(
    source: str,
    broker_url: str,
    state: Path,
    model,
    threads,
    synchronous: str = "background",
    web: bool = False,
    viewer: bool = False,
) -> dict:
    """The whole daemon in real time; CPU from the process's own CPU time over the run (the
    viewer, when asked for, is another process: only the daemon's side is counted)."""
    import psutil
    from ecolens.core.mqtt import broker_overrides
    from ecolens.edge.daemon.app import Daemon
    from ecolens.edge.daemon.config import load_daemon_config

    overrides = {
        "source.uri": source,
        "source.speed": 1.0,
        "model.path": str(model) if model else None,
        "model.threads": threads,
        "store.path": str(state / f"queue-{time.monotonic_ns()}.sqlite3"),
        "store.synchronous": synchronous,
        "publish.stats_interval_s": 0,
        "service.watch_interval_s": 0,
        "web.enabled": web,
        "web.port": 0,
        **broker_overrides(broker_url),
    }
    daemon = Daemon(load_daemon_config(None, overrides, environ={}))
    process = psutil.Process()
    daemon.start()
    daemon.link.connected.wait(10)
    watching = start_viewer(daemon.web.url, daemon.config.web.frame_interval_s) if viewer else None
    cpu_before, wall_before = process.cpu_times(), time.perf_counter()
    try:
        daemon.loop()
    finally:
        cpu_after, wall_after = process.cpu_times(), time.perf_counter()
        if watching is not None:
            watching.terminate()
            watching.wait(10)
        rss_mb = process.memory_info().rss / 2**20
        daemon.shutdown()
    busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    latencies = sorted(daemon.stats.latency_ms)
    return {
        "cpu_percent": 100.0 * busy / (wall_after - wall_before),
        "items": daemon.stats.items,
        "published": daemon.stats.published,
        "latency": latencies,
        "rss_mb": rss_mb,
        "frames": daemon.stats.frames_read,
        "seconds": wall_after - wall_before,
    }


def run(args: argparse.Namespace) -> int:
    import logging

    from ecolens.bench.localbroker import LocalBroker
    from ecolens.core.classifier import Classifier
    from ecolens.core.config import ModelSection
    from ecolens.edge.daemon.config.detect import DetectSection
    from ecolens.edge.daemon.pipeline import ItemPipeline

    logging.getLogger().setLevel(logging.WARNING)
    clip = str(_clip())
    model = ModelSection(path=args.model, threads=args.threads)
    classifier = Classifier.from_settings(model)
    print(f"sample clip {clip} (640x480), model {classifier.metadata.name}, {args.runs} runs")

    decode, gated, every = [], [], []
    for _ in range(args.runs):
        decode.append(_frames_per_second(clip, lambda frame: None))
        pipeline = ItemPipeline(lambda: classifier, DetectSection(), "bench", "clip")
        gated.append(_frames_per_second(clip, pipeline.process))
        every.append(_frames_per_second(clip, lambda frame: classifier.predict(frame.rgb())))
    decode_fps, gated_fps, every_fps = (statistics.median(v) for v in (decode, gated, every))
    print("\nthroughput, frames/s (median, unpaced):")
    print(f"  decode only (ceiling)          {decode_fps:8.1f}")
    print(f"  baseline: classify every frame {every_fps:8.1f}")
    print(
        f"  daemon pipeline (gate + items) {gated_fps:8.1f}   "
        f"x{gated_fps / every_fps:.1f} vs classify-every-frame, "
        f"{100 * gated_fps / decode_fps:.0f}% of decode"
    )

    with LocalBroker() as broker, tempfile.TemporaryDirectory() as state:
        print(f"\nreal-time runs against a local {broker.kind} broker:")
        busy = daemon_run(clip, broker.url, Path(state), args.model, args.threads, args.synchronous)
        idle_clip = _empty_clip(Path(state), args.idle_seconds)
        idle = daemon_run(str(idle_clip), broker.url, Path(state), args.model, args.threads)
    fps = busy["frames"] / busy["seconds"]
    print(
        f"  busy (clip, {busy['items']} items, {busy['frames']} frames at {fps:.1f} fps): "
        f"CPU {busy['cpu_percent']:.1f}% of one core"
    )
    print(
        f"  idle (empty scene, {idle['frames']} frames, {idle['items']} items): "
        f"CPU {idle['cpu_percent']:.1f}% of one core"
    )
    print(
        f"  frame-to-publish latency (frame read -> PUBACK, store.synchronous={args.synchronous}), "
        f"{len(busy['latency'])} items: "
        f"p50 {percentile(busy['latency'], 50):.1f} ms, "
        f"p95 {percentile(busy['latency'], 95):.1f} ms"
    )
    print(f"  daemon RSS: {busy['rss_mb']:.0f} MB (benchmark process, model loaded)")
    print("the bin page's cost ([web]): ecolens benchmark binpage")
    return Figures(
        title=f"ecolens benchmark daemon: sample clip 640x480, {args.runs} runs (median)",
        baseline="classify every frame",
        panels={
            "frames/s, unpaced, vs classifying every frame (higher is better)": {
                "decode only (ceiling)": decode_fps / every_fps,
                "classify every frame": 1.0,
                "daemon pipeline (gate + items)": gated_fps / every_fps,
            }
        },
        values={
            "frames/s, unpaced": {
                "": {"decode only": decode_fps, "classify every frame": every_fps, "daemon": gated_fps}
            },
            "CPU in real time, % of a core": {
                "": {f"clip ({busy['items']} items)": busy["cpu_percent"], "empty scene": idle["cpu_percent"]}
            },
            "frame-to-PUBACK latency, ms": {
                "": {
                    "p50": percentile(busy["latency"], 50),
                    "p95": percentile(busy["latency"], 95),
                }
            },
        },
    )
