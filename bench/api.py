"""`ecolens benchmark api`: POST /predict throughput and p50/p99 latency at several client
concurrencies, on small photos (the shipped eval set) and on 640x480 camera frames, for
`ecolens serve` against its Flask variant and two baselines on the same machine, images and
worker count, in one run:

* **flask**: `ecolens serve --server flask`, the same API as a Flask Blueprint under gunicorn
  (gthread): what a team that wants Flask end to end gets;
* **plain**: the LiteRT app a user would write by hand (FastAPI + uvicorn, same .tflite, OpenCV;
  no auth, limits, metrics or logs): the lower bound of the request path's cost;
* **keras**: the seed team's plan (Flask + Keras `.h5`, `model.predict` per request, gunicorn).

Rounds are interleaved (ecolens, flask, plain, keras, ecolens, ...) and medians reported, because the
machine may be shared."""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecolens.bench.figures import Figures
from ecolens.core.errors import ConfigError, MissingDependencyError, ModelError

RETURNS_FIGURES = True

SERVERS = ("ecolens", "flask", "plain", "keras")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="the .tflite (default: reference model)")
    parser.add_argument("--h5", type=Path, help="the Keras baseline (default: reference .h5)")
    parser.add_argument("--images", type=Path, help="image folder (default: shipped eval set)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, every server")
    parser.add_argument(
        "--threads", type=int, default=1, help="ecolens serve --request-threads: requests per worker at once"
    )
    parser.add_argument(
        "--keras-threads", type=int, default=4, help="gunicorn threads per worker of the Keras baseline"
    )
    parser.add_argument(
        "--flask-threads", type=int, default=8, help="gunicorn threads per worker of the flask variant"
    )
    parser.add_argument("--clients", default="1,8", help="concurrency levels (default 1,8)")
    parser.add_argument("--sizes", default="photo,640x480", help="image sets: photo (as shipped), WxH")
    parser.add_argument(
        "--baselines",
        default="flask,plain,keras",
        help="servers to compare with: flask, plain, keras (comma-separated)",
    )
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

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server and all its worker processes so far: CPU per
        request is the figure a busy shared machine distorts least."""
        import psutil

        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            pass
        return total

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


def request_bodies(folder: Path, size: str) -> list[bytes]:
    """JSON base64 bodies: the images as shipped ("photo"), or re-encoded as WxH JPEG frames."""
    from ecolens.core.preprocess import find_images

    paths = find_images(folder)
    if not paths:
        raise ConfigError(f"no images in {folder}")
    if size == "photo":
        blobs = [p.read_bytes() for p in paths]
    else:
        from PIL import Image

        width, height = (int(v) for v in size.lower().split("x"))
        blobs = []
        for path in paths[:40]:
            buffer = io.BytesIO()
            Image.open(path).convert("RGB").resize((width, height), Image.BICUBIC).save(
                buffer, "JPEG", quality=90
            )
            blobs.append(buffer.getvalue())
    return [json.dumps({"image": base64.b64encode(b).decode()}).encode() for b in blobs]


def start_servers(args: argparse.Namespace, model: Path, h5: Path, names: list[str]) -> list[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    env["ECOLENS_LIMITS__RATE"] = '""'  # the benchmark is one client address: no rate limit
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    workers = ["--workers", str(args.workers)]
    serve = [sys.executable, "-m", "ecolens.cli", "serve", "--model", str(model)]
    serve += [*workers, "--request-threads", str(args.threads)]
    commands = {
        "ecolens": serve,
        "flask": [*serve, "--server", "flask"],
        "plain": [sys.executable, "-m", "ecolens.bench.plain_app", "--model", str(model), *workers],
        "keras": [sys.executable, "-m", "ecolens.bench.keras_baseline", "--h5", str(h5)]
        + ["--model", str(model), *workers, "--threads", str(args.keras_threads)],
    }
    servers = []
    for name in names:
        port = free_port()
        extra = {"ECOLENS_LOGGING__ACCESS_LOG": "true"} if name in ("ecolens", "flask") else {}
        if name == "flask":
            extra["ECOLENS_SERVER__FLASK_THREADS"] = str(args.flask_threads)
        servers.append(Server(name, [*commands[name], "--port", str(port)], port, {**env, **extra}))
    return servers


def run(args: argparse.Namespace) -> Figures:
    from ecolens.bench.loadgen import run_load
    from ecolens.models import eval_dir, reference_h5, reference_tflite

    model = args.model or reference_tflite()
    h5 = args.h5 or reference_h5()
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = set(baselines) - set(SERVERS[1:])
    if unknown:
        raise ConfigError(f"unknown baseline(s) {sorted(unknown)}: choose flask, plain, keras")
    for path in (model, h5) if "keras" in baselines else (model,):
        if not path.is_file():
            raise ModelError(f"benchmark input missing: {path} (see --model / --h5)")
    if "keras" in baselines and importlib.util.find_spec("keras") is None:
        raise MissingDependencyError("the Keras baseline needs TensorFlow: pip install 'ecolens[convert]'")
    if "flask" in baselines and None in (
        importlib.util.find_spec("flask"),
        importlib.util.find_spec("gunicorn"),
    ):
        raise MissingDependencyError(
            "the flask variant needs Flask and gunicorn: pip install 'ecolens[flask]'"
        )
    if "plain" in baselines and importlib.util.find_spec("fastapi") is None:
        raise MissingDependencyError("the plain baseline needs FastAPI: pip install 'ecolens[bench]'")
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bodies = {size: request_bodies(args.images or eval_dir(), size) for size in sizes}
    names = ["ecolens", *baselines]
    servers = start_servers(args, model, h5, names)
    figures: dict[str, dict[str, dict[int, list]]] = {size: {n: {} for n in names} for size in sizes}
    try:
        for server in servers:
            server.wait_ready()
        print(
            f"servers: {args.workers} worker processes each; ecolens: uvicorn, {args.threads} request "
            f"thread(s) per worker, access log on; flask: the same under gunicorn gthread x "
            f"{args.flask_threads} threads; plain: FastAPI + uvicorn; keras: gunicorn gthread x "
            f"{args.keras_threads} threads\nimage sets: "
            + ", ".join(f"{size} ({len(bodies[size])} JSON base64 bodies)" for size in sizes)
            + f"; {args.repeats} x {args.seconds:.0f} s per level, set and server, interleaved, medians\n",
            flush=True,
        )
        # Warm-up, not measured: Keras builds its predict function on each worker's first calls.
        for server in servers:
            for size in sizes:
                run_load("127.0.0.1", server.port, bodies[size], 8, 3.0 if server.name != "keras" else 8.0)
        for size in sizes:
            for clients in levels:
                for _ in range(args.repeats):
                    for server in servers:
                        cpu_before = server.cpu_seconds()
                        result = run_load("127.0.0.1", server.port, bodies[size], clients, args.seconds)
                        cpu_ms = 1000.0 * (server.cpu_seconds() - cpu_before) / max(result.requests, 1)
                        figures[size][server.name].setdefault(clients, []).append((result, cpu_ms))
    finally:
        for server in servers:
            server.stop()
    rows = [row for size in sizes for row in report(size, figures[size], levels, names)]
    if args.json:
        from ecolens.bench.machine import describe

        args.json.write_text(json.dumps({"machine": describe(), "rows": rows}, indent=2))
    return figures_of(rows, names, args)


def figures_of(rows: list[dict], names: list[str], args: argparse.Namespace) -> Figures:
    """For --plot: ecolens' req/s against each baseline (a panel each: Keras' ratios are ten
    times the plain app's), then req/s and p99 per client count."""
    baseline = "plain" if "plain" in names else names[1] if len(names) > 1 else "ecolens"

    def level(clients: int) -> str:
        return f"{clients} client{'s' if clients != 1 else ''}"

    ratios = {
        f"ecolens req/s / {name} req/s (higher is better)": {
            f"{row['size']}, {level(row['clients'])}": row[f"throughput_vs_{name}"] for row in rows
        }
        for name in names[1:]
    }
    values: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        for measure, key in (("req/s", "throughput"), ("p99 latency, ms", "p99")):
            panel = values.setdefault(f"{measure}, {row['size']}", {})
            panel[level(row["clients"])] = {name: row[name][key] for name in names}
    return Figures(
        title=f"POST /predict, {args.workers} workers per server, "
        f"{args.repeats} x {args.seconds:.0f} s per level (median)",
        baseline=baseline,
        panels=ratios,
        values=values,
    )


def median_of(results: list, attribute: str) -> float:
    """Median over rounds of throughput, p50, p99 or server CPU ms per request."""
    if attribute == "cpu_ms":
        return statistics.median(cpu_ms for _, cpu_ms in results)
    if attribute == "throughput":
        return statistics.median(r.throughput for r, _ in results)
    return statistics.median(r.percentile(50 if attribute == "p50" else 99) for r, _ in results)


def report(size: str, figures: dict[str, dict[int, list]], levels: list[int], names: list[str]) -> list[dict]:
    """One table per image set; ratios are ecolens / baseline throughput and baseline / ecolens
    p99 (above 1 is better for ecolens in both)."""
    print(f"\n{size}:")
    header = f"{'clients':>7} | " + " | ".join(
        f"{n + ' req/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>6}" for n in names
    )
    ratio_names = [n for n in names if n != "ecolens"]
    header += "".join(f" | {'x ' + n:>8} {'p99 x':>6}" for n in ratio_names)
    print(header)
    print("-" * len(header))
    rows = []
    for clients in levels:
        row: dict = {"size": size, "clients": clients}
        for name in names:
            results = figures[name][clients]
            row[name] = {k: median_of(results, k) for k in ("throughput", "p50", "p99", "cpu_ms")}
            row[name]["errors"] = sum(r.errors for r, _ in results)
        cells = [row[n] for n in names]
        line = f"{clients:>7} | " + " | ".join(
            f"{c['throughput']:>13.1f} {c['p50']:>7.2f} {c['p99']:>7.2f} {c['cpu_ms']:>6.2f}" for c in cells
        )
        for name in ratio_names:
            row[f"throughput_vs_{name}"] = row["ecolens"]["throughput"] / max(row[name]["throughput"], 1e-9)
            row[f"p99_vs_{name}"] = row[name]["p99"] / max(row["ecolens"]["p99"], 1e-9)
            line += f" | {row[f'throughput_vs_{name}']:>7.2f}x {row[f'p99_vs_{name}']:>5.2f}x"
        print(line)
        rows.append(row)
    errors = {name: sum(row[name]["errors"] for row in rows) for name in names}
    print(
        "x NAME = ecolens req/s / NAME req/s; p99 x = NAME p99 / ecolens p99; CPU ms = server CPU "
        f"time (all its processes) per request. Failed requests: {errors}"
    )
    return rows
