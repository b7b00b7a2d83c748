"""`ecolens benchmark binpage`: what the bin page (``[web] enabled``) costs the daemon, which the
issue put at "under 5 % extra CPU on a Pi 4 when nobody watches".

The whole daemon (`benchmark daemon`'s ``daemon_run``: camera source, gate, classifier, queue,
MQTT to a local broker) plays the sample clip at its own frame rate (15 fps, items arriving)
three ways per round: ``[web]`` off (the baseline), on with nobody watching, and on with one
page open (another process asking what the page's script asks: state, new crops, the frame,
every ``frame_interval_s``). Rounds are interleaved; the figures are the daemon process's CPU
time over wall time (% of one core), medians of the rounds, and the median of each round's
difference to the baseline of the same round.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import cv2
from ecolens.bench.daemon import _clip, daemon_run
from ecolens.bench.figures import Figures
from ecolens.core.errors import ConfigError

RETURNS_FIGURES = True

CASES = (
    ("off", False, False),
    ("on, nobody watching", True, False),
    ("on, one page open", True, True),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument(
        "--seconds", type=float, help="play only the clip's first SECONDS (default: all 30 s)"
    )
    parser.add_argument("--model", type=Path, help="the .tflite (default: the reference model)")
    parser.add_argument("--threads", type=int, help="interpreter threads")


def clip_start(folder: Path, seconds: float | None) -> tuple[Path, float]:
    """The sample clip, or its first ``seconds`` re-encoded; and its frame rate."""
    clip = _clip()
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    if seconds is None:
        capture.release()
        return clip, fps
    path = folder / "start.mp4"
    writer = None
    for _ in range(max(1, round(seconds * fps))):
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        writer.write(frame)
    capture.release()
    if writer is None:
        raise ConfigError(f"cannot read the sample clip {clip}")
    writer.release()
    return path, fps


def run(args: argparse.Namespace) -> Figures:
    import logging

    from ecolens.bench.localbroker import LocalBroker

    if args.runs < 1 or (args.seconds is not None and args.seconds <= 0):
        raise ConfigError("--runs must be at least 1 and --seconds above 0")
    logging.getLogger().setLevel(logging.WARNING)
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    runs: list[dict] = []
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as state:
        clip, fps = clip_start(Path(state), args.seconds)
        print(
            f"sample clip {clip} at its own {fps:.0f} fps, {args.runs} interleaved rounds, "
            f"{broker.kind} broker"
        )
        for round_number in range(1, args.runs + 1):
            line = []
            for name, web, viewer in CASES:
                figures = daemon_run(
                    str(clip), broker.url, Path(state), args.model, args.threads, web=web, viewer=viewer
                )
                cpu[name].append(figures["cpu_percent"])
                runs.append(figures)
                line.append(f"{name} {figures['cpu_percent']:.2f}%")
            print(f"  round {round_number}: " + ", ".join(line), flush=True)
    baseline = statistics.median(cpu["off"])
    frames = statistics.median(r["frames"] / r["seconds"] for r in runs)
    items = statistics.median(r["items"] for r in runs)
    print(
        f"\ndaemon CPU, % of one core (median of {args.runs}; {frames:.1f} frames/s, "
        f"{items:.0f} items per run):"
    )
    extra: dict[str, float] = {}
    for name, values in cpu.items():
        value = statistics.median(values)
        if name == "off":
            print(f"  [web] {name:<22} {value:5.2f} %   (baseline)")
            continue
        extra[name] = statistics.median(on - off for on, off in zip(values, cpu["off"]))
        print(
            f"  [web] {name:<22} {value:5.2f} %   {extra[name]:+.2f} points of one core "
            f"(median of the rounds' differences), x{value / baseline:.2f}"
        )
    return Figures(
        title=f"bin page cost: daemon on the sample clip at {fps:.0f} fps, {args.runs} rounds (median)",
        baseline="off",
        panels={
            "daemon CPU vs [web] off (lower is better)": {
                name: statistics.median(values) / baseline for name, values in cpu.items()
            }
        },
        values={
            "daemon CPU, % of one core": {"": {name: statistics.median(v) for name, v in cpu.items()}},
            "extra CPU vs off, points of one core": {"": extra},
        },
    )
