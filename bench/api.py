"""`ecolens benchmark api`: POST /predict throughput and p50/p99 latency at several client
concurrencies, for `ecolens serve` (LiteRT int8) against the seed team's plan (Flask + Keras
`.h5`, `model.predict` per request), both under the same gunicorn settings, same machine, same
images, in one run. Runs are interleaved (ours, baseline, ours, ...) and medians reported."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecolens.core.errors import ConfigError, MissingDependencyError, ModelError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="the .tflite (default: reference model)")
    parser.add_argument("--h5", type=Path, help="the Keras baseline (default: reference .h5)")
    parser.add_argument("--images", type=Path, help="image folder (default: shipped eval set)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both servers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker, both servers")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per level (median)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server subprocess in its own process group, stopped with the whole group."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str]) -> None:
        self.name, self.port = name, port
        # lives as long as the server; closed (and deleted) in stop()
        self.log = tempfile.NamedTemporaryFile(prefix=f"ecolens-bench-{name}-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_ready(self, timeout: float = 300.0) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-2000:]
                raise ModelError(f"{self.name} server exited at start:\n{tail}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ModelError(f"{self.name} server not ready after {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def request_bodies(folder: Path) -> list[bytes]:
    from ecolens.core.preprocess import find_images

    paths = find_images(folder)
    if not paths:
        raise ConfigError(f"no images in {folder}")
    return [json.dumps({"image": base64.b64encode(p.read_bytes()).decode()}).encode() for p in paths]


def start_servers(args: argparse.Namespace, model: Path, h5: Path) -> tuple[Server, Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    env["ECOLENS_LIMITS__RATE"] = '""'  # the benchmark is one client address: no rate limit
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    common = ["--workers", str(args.workers), "--threads", str(args.threads)]
    ours_port, base_port = free_port(), free_port()
    ours = Server(
        "ecolens",
        [sys.executable, "-m", "ecolens.cli", "serve", "--model", str(model)]
        + ["--port", str(ours_port), *common],
        ours_port,
        {**env, "ECOLENS_LOGGING__ACCESS_LOG": "false"},
    )
    baseline = Server(
        "keras",
        [sys.executable, "-m", "ecolens.bench.keras_baseline", "--h5", str(h5)]
        + ["--model", str(model), "--port", str(base_port), *common],
        base_port,
        env,
    )
    return ours, baseline


def run(args: argparse.Namespace) -> int:
    from ecolens.bench.loadgen import run_load
    from ecolens.models import eval_dir, reference_h5, reference_tflite

    model = args.model or reference_tflite()
    h5 = args.h5 or reference_h5()
    for path in (model, h5):
        if not path.is_file():
            raise ModelError(f"benchmark input missing: {path} (see --model / --h5)")
    if importlib.util.find_spec("keras") is None:  # checked, not imported: the servers load it
        raise MissingDependencyError("the Keras baseline needs TensorFlow: pip install 'ecolens[convert]'")
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    bodies = request_bodies(args.images or eval_dir())
    ours, baseline = start_servers(args, model, h5)
    figures: dict[str, dict[int, list]] = {"ecolens": {}, "keras": {}}
    try:
        ours.wait_ready()
        baseline.wait_ready()
        print(
            f"machine: {os.cpu_count()} CPU cores; both servers: gunicorn gthread, "
            f"{args.workers} workers x {args.threads} threads; ecolens interpreter threads: "
            f"{max(1, (os.cpu_count() or 1) // args.workers)} per worker\n"
            f"images: {len(bodies)} JSON base64 bodies; {args.repeats} x {args.seconds:.0f} s "
            "per level and server, interleaved, medians reported\n",
            flush=True,
        )
        # Warm-up, not measured: Keras builds its predict function on each worker's first calls
        # (seconds), and every worker thread should have served before the clock starts.
        for server in (ours, baseline):
            run_load("127.0.0.1", server.port, bodies, args.workers * args.threads, 8.0)
        for clients in levels:
            for _ in range(args.repeats):
                for server in (ours, baseline):
                    result = run_load("127.0.0.1", server.port, bodies, clients, args.seconds)
                    figures[server.name].setdefault(clients, []).append(result)
    finally:
        ours.stop()
        baseline.stop()
    rows = report(figures, levels)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def report(figures: dict[str, dict[int, list]], levels: list[int]) -> list[dict]:
    def median(results: list, attribute: str) -> float:
        if attribute == "throughput":
            return statistics.median(r.throughput for r in results)
        q = 50 if attribute == "p50" else 99
        return statistics.median(r.percentile(q) for r in results)

    header = (
        f"{'clients':>7} | {'ecolens req/s':>13} {'p50 ms':>8} {'p99 ms':>8} | "
        f"{'keras req/s':>11} {'p50 ms':>8} {'p99 ms':>8} | {'x thrpt':>7} {'p99 ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for clients in levels:
        ours, base = figures["ecolens"][clients], figures["keras"][clients]
        row = {
            "clients": clients,
            "ecolens": {k: median(ours, k) for k in ("throughput", "p50", "p99")},
            "keras": {k: median(base, k) for k in ("throughput", "p50", "p99")},
            "errors": {"ecolens": sum(r.errors for r in ours), "keras": sum(r.errors for r in base)},
        }
        row["throughput_ratio"] = row["ecolens"]["throughput"] / max(row["keras"]["throughput"], 1e-9)
        row["p99_ratio"] = row["keras"]["p99"] / max(row["ecolens"]["p99"], 1e-9)
        rows.append(row)
        e, k = row["ecolens"], row["keras"]
        print(
            f"{clients:>7} | {e['throughput']:>13.1f} {e['p50']:>8.1f} {e['p99']:>8.1f} | "
            f"{k['throughput']:>11.1f} {k['p50']:>8.1f} {k['p99']:>8.1f} | "
            f"{row['throughput_ratio']:>6.1f}x {row['p99_ratio']:>8.1f}x"
        )
    errors = {name: sum(row["errors"][name] for row in rows) for name in ("ecolens", "keras")}
    print(
        "\nx thrpt = ecolens throughput / keras throughput; p99 ratio = keras p99 / ecolens p99 "
        f"(higher is better for both). Failed requests: {errors}"
    )
    return rows
