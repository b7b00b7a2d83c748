"""`ecolens benchmark fleet`: sustained ingest (results/s stored) for one and two aggregators
on SQLite and PostgreSQL, and report query time over 1 million stored results.

Ingest is measured as backlog drain: the results are first queued by the broker in the
aggregators' persistent sessions, then the aggregators start and the clock runs until every
result is committed. That measures the aggregator (validation, batching, storage, acks), not
the simulator's publishing speed. Baseline: one aggregator on SQLite, same run.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ecolens.bench import mosquitto, postgres
from ecolens.bench.figures import Figures
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, parse_broker_url
from ecolens.fleet.config.subscriber import SubscriberSection
from ecolens.fleet.report import VIEWS, build_report
from ecolens.fleet.simulator import FALLBACK_LABELS, FALLBACK_MODEL, FleetSimulator
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.subscriber import Aggregator
from ecolens.fleet.timewindow import TimeWindow

RETURNS_FIGURES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=int, default=10000, help="results per ingest run")
    parser.add_argument("--runs", type=int, default=3, help="ingest runs per case (median)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the report query")
    parser.add_argument("--query-runs", type=int, default=3, help="report query runs (median)")
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="Mosquitto to use (needs max_queued_messages >= --results); default: start one",
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        help="PostgreSQL server (a database per case is created); default: start one",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.set_defaults(func=run)


# -- throwaway servers -------------------------------------------------------------------------
class Servers:
    """Broker and PostgreSQL for the run: given by URL, or started in a temp folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._stops: list[Callable[[], None]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="ecolens-fleet-bench-"))
        if args.broker:
            self.broker = BrokerSection(**parse_broker_url(args.broker))
        else:
            server = mosquitto.MosquittoBroker(self.tmp / "mosquitto").start()
            self._stops.append(server.stop)
            self.broker = BrokerSection(host=server.host, port=server.port)
        self.postgres_admin_url: str | None = None
        if not args.no_postgres:
            if args.postgres_url:
                self.postgres_admin_url = args.postgres_url
            else:
                bin_dir = postgres.postgres_bin_dir()
                if bin_dir is None:
                    raise ConfigError(
                        f"PostgreSQL not installed ({postgres.INSTALL_HINT}); "
                        "use --postgres-url or --no-postgres"
                    )
                server = postgres.PostgresServer(bin_dir).start()
                self._stops.append(server.stop)
                self.postgres_admin_url = server.url()

    def database_url(self, kind: str) -> str:
        """A fresh database of that kind."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        import psycopg

        with psycopg.connect(self.postgres_admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        base = self.postgres_admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


# -- ingest --------------------------------------------------------------------------------
def count_results(url: str) -> int:
    database = open_database(url, migrate=False)
    try:
        return int(database.query("SELECT COUNT(*) FROM results")[0][0])
    finally:
        database.close()


def aggregator_process(
    servers: Servers, url: str, prefix: str, client_id: str, group: str | None
) -> subprocess.Popen:
    """A real `ecolens aggregate` process (separate processes: no shared GIL)."""
    command = [
        sys.executable, "-m", "ecolens.cli", "aggregate", "--no-http",
        "--broker", f"mqtt://{servers.broker.host}:{servers.broker.port}",
        "--database", url, "--prefix", prefix, "--client-id", client_id,
    ]  # fmt: skip
    if group:
        command += ["--share-group", group]
    log = (servers.tmp / f"{client_id}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=log)


def ingest_once(servers: Servers, kind: str, aggregators: int, results: int) -> float:
    """Results/s stored while ``aggregators`` processes drain a backlog of ``results``, from
    the first stored result to the last (process start-up excluded)."""
    url = servers.database_url(kind)
    open_database(url).close()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    group = "bench" if aggregators > 1 else None
    settings = SubscriberSection(prefix=prefix, share_group=group)
    ids = [f"{prefix}-agg{i}" for i in range(aggregators)]
    for client_id in ids:  # register the persistent sessions and subscriptions, then leave
        Aggregator(servers.broker, settings, lambda: open_database(url, migrate=False),
                   client_id=client_id).start().stop()  # fmt: skip
    simulator = FleetSimulator(
        servers.broker, prefix=prefix, bins=100, seed=1, labels=FALLBACK_LABELS,
        model_info=dict(FALLBACK_MODEL),
    ).connect()  # fmt: skip
    try:
        simulator.run(count=results, rate=0)
    finally:
        simulator.close(offline=False)
    launched = time.perf_counter()
    processes = [aggregator_process(servers, url, prefix, i, group) for i in ids]
    try:
        deadline = time.monotonic() + 600
        first: tuple[float, int] | None = None
        while True:
            stored = count_results(url)
            moment = time.perf_counter()
            if first is None and stored > 0:
                first = (moment, stored)
            if stored >= results:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"ingest stopped at {stored}/{results}; see {servers.tmp}")
            time.sleep(0.02)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    assert first is not None
    if first[1] >= results:  # all stored in one batch before the first look: count from launch
        return results / max(moment - launched, 1e-6)
    return (results - first[1]) / max(moment - first[0], 1e-6)


# -- report query --------------------------------------------------------------------------
def bulk_load(url: str, rows: int, bins: int = 500, days: int = 30) -> TimeWindow:
    """``rows`` results spread over ``days`` and ``bins``, written directly (no MQTT)."""
    import random

    rng = random.Random(7)
    database = open_database(url)
    store = ResultStore(database)
    end = int(time.time() * 1000)
    start = end - days * 86_400_000
    step = (end - start) // rows
    batch: list[StoredResult] = []
    for i in range(rows):
        device = f"bin-{i % bins:04d}"
        label = "plastic" if rng.random() < 0.35 else "non_plastic"
        seen = start + i * step
        batch.append(StoredResult(f"e{i}", device, seen, seen + 40, label, 0.9, False, 25.0, 1,
                                  "m", "1", "0" * 64, "{}"))  # fmt: skip
        if len(batch) == 20000:
            store.write(batch)
            batch = []
    store.write(batch, [StatusUpdate(f"bin-{b:04d}", "online", end) for b in range(bins)])
    # Planner statistics (and PostgreSQL's visibility map for index-only scans), as
    # autovacuum / a periodic ANALYZE would have them on a database that grew to this size.
    database.execute("VACUUM ANALYZE results" if database.kind == "postgresql" else "ANALYZE")
    database.close()
    return TimeWindow(start, end + 1)


def query_seconds(url: str, window: TimeWindow, runs: int) -> float:
    database = open_database(url, migrate=False)
    try:
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            report = build_report(database, window, "day", "plastic", 3600, views=VIEWS)
            timings.append(time.perf_counter() - started)
        assert report["totals"]["items"] > 0
        return statistics.median(timings)
    finally:
        database.close()


# -- driver --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> Figures:
    if args.results < 100 or args.runs < 1 or args.rows < 1000:
        raise ConfigError("--results >= 100, --runs >= 1, --rows >= 1000")
    servers = Servers(args)
    kinds = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    try:
        print(f"ecolens benchmark fleet: {args.results} results per ingest run, median of "
              f"{args.runs} runs; broker {servers.broker.host}:{servers.broker.port}")  # fmt: skip
        rates: dict[tuple[str, int], float] = {}
        for kind in kinds:
            for aggregators in (1, 2):
                samples = [ingest_once(servers, kind, aggregators, args.results)
                           for _ in range(args.runs)]  # fmt: skip
                rates[(kind, aggregators)] = statistics.median(samples)
                print(f"  ingest {kind:<10} x{aggregators}: "
                      f"{rates[(kind, aggregators)]:8.0f} results/s  "
                      f"(runs: {', '.join(f'{s:.0f}' for s in samples)})", flush=True)  # fmt: skip
        baseline = rates[("sqlite", 1)]
        print("\nSustained ingest (results/s stored; baseline = 1 aggregator, SQLite)")
        header = ("storage", "1 aggregator", "2 aggregators", "x1 vs base", "x2 vs x1")
        print("  {:<12}{:>14}{:>15}{:>12}{:>10}".format(*header))
        for kind in kinds:
            one, two = rates[(kind, 1)], rates[(kind, 2)]
            print(f"  {kind:<12}{one:>14.0f}{two:>15.0f}{one / baseline:>11.2f}x{two / one:>9.2f}x")

        print(f"\nReport query (bins + daily series + status), median of {args.query_runs}; "
              f"baseline = the same query over {args.rows // 10} rows")  # fmt: skip
        query_ms: dict[str, dict[str, float]] = {}
        for kind in kinds:
            timings = {}
            for rows in (args.rows // 10, args.rows):
                url = servers.database_url(kind)
                load_started = time.perf_counter()
                window = bulk_load(url, rows)
                load_s = time.perf_counter() - load_started
                timings[rows] = query_seconds(url, window, args.query_runs)
                print(f"  {kind:<12}{rows:>9} rows: {timings[rows] * 1000:8.1f} ms  "
                      f"(bulk load {rows / load_s:,.0f} rows/s)", flush=True)  # fmt: skip
            ratio = timings[args.rows] / timings[args.rows // 10]
            print(f"  {kind:<12}{'':>9}       {ratio:.1f}x the {args.rows // 10}-row time")
            query_ms[kind] = {f"{rows:,} rows": seconds * 1000 for rows, seconds in timings.items()}
    finally:
        servers.stop()
    return Figures(
        title=f"aggregator ingest ({args.results:,} results, median of {args.runs}) and report query",
        baseline="1 aggregator",
        panels={
            "ingest results/s vs 1 aggregator on SQLite (higher is better)": {
                f"{kind}, {n} aggregator{'s' if n > 1 else ''}": rate / baseline
                for (kind, n), rate in rates.items()
            }
        },
        values={
            "ingest, results/s": {
                kind: {f"{n} aggregator{'s' if n > 1 else ''}": rates[(kind, n)] for n in (1, 2)}
                for kind in kinds
            },
            f"report query, ms (median of {args.query_runs})": query_ms,
        },
    )
