"""A closed-loop HTTP load generator: N clients, each sending its next request as soon as the
previous answer arrives, over one keep-alive connection (http.client: the lightest client, so
the 2-core machine spends as little as possible on the load itself)."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from itertools import cycle

from ecolens.edge.daemon.stats import percentile


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        value = percentile(self.latencies_ms, q)
        return float("nan") if value is None else value


def run_load(host: str, port: int, bodies: list[bytes], clients: int, seconds: float) -> LoadResult:
    """POST /predict with ``bodies`` (JSON) round-robin for ``seconds`` from ``clients`` threads."""
    stop_at = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        own = cycle(bodies[index % len(bodies) :] + bodies[: index % len(bodies)])
        start.wait()
        while time.perf_counter() < stop_at:
            body = next(own)
            began = time.perf_counter()
            try:
                connection.request(
                    "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=120)
                ok = False
            if ok:
                latencies[index].append((time.perf_counter() - began) * 1000.0)
            else:
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = sorted(value for per_client in latencies for value in per_client)
    return LoadResult(len(flat), sum(errors), elapsed, flat)
