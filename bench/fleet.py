"""`ecolens benchmark fleet`: sustained ingest (results/s stored) for one and two aggregators
on SQLite and PostgreSQL, the batch write with and without rollups, and the report query time
at 1x, 10x (and 100x) stored results, with the size on disk per million results.

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

from ecolens.bench import fleet_rows, fleet_write, mosquitto, postgres
from ecolens.bench.figures import Figures
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, parse_broker_url
from ecolens.fleet.config.subscriber import SubscriberSection
from ecolens.fleet.report import VIEWS, build_report
from ecolens.fleet.simulator import FALLBACK_LABELS, FALLBACK_MODEL, FleetSimulator
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.database import Database
from ecolens.fleet.subscriber import Aggregator
from ecolens.fleet.timewindow import TimeWindow

RETURNS_FIGURES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=int, default=10000, help="results per ingest run")
    parser.add_argument("--runs", type=int, default=3, help="ingest runs per case (median)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the report query at 1x")
    parser.add_argument(
        "--scales",
        default="1,10",
        help="report query at these multiples of --rows (default 1,10; 100 fits on PostgreSQL)",
    )
    parser.add_argument("--query-runs", type=int, default=5, help="report query runs (median)")
    parser.add_argument(
        "--parts",
        default="ingest,write,query",
        help="what to measure: ingest (aggregator processes via MQTT), write (the batch write with and "
        "without rollups), query (report over generated rows)",
    )
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
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
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
    servers: Servers, url: str, prefix: str, client_id: str, group: str | None, before_rollups: bool = False
) -> subprocess.Popen:
    """A real `ecolens aggregate` process (separate processes: no shared GIL); with
    ``before_rollups`` the same command writing as it did before rollups (the baseline)."""
    module = "ecolens.bench.fleet_before_rollups" if before_rollups else "ecolens.cli"
    command = [
        sys.executable, "-m", module, "aggregate", "--no-http",
        "--broker", f"mqtt://{servers.broker.host}:{servers.broker.port}",
        "--database", url, "--prefix", prefix, "--client-id", client_id,
    ]  # fmt: skip
    if group:
        command += ["--share-group", group]
    log = (servers.tmp / f"{client_id}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=log)


def ingest_once(
    servers: Servers, kind: str, aggregators: int, results: int, before_rollups: bool = False
) -> float:
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
    processes = [aggregator_process(servers, url, prefix, i, group, before_rollups) for i in ids]
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
def report_s(database: Database, window: TimeWindow, bucket: str) -> float:
    """Seconds for one report (bins + series + status) over ``window``."""
    started = time.perf_counter()
    report = build_report(database, window, bucket, "plastic", 3600, views=VIEWS)
    seconds = time.perf_counter() - started
    assert report["totals"]["items"] > 0
    return seconds


def measure_queries(servers: Servers, kind: str, rows: list[int], runs: int) -> dict[int, dict[str, float]]:
    """Per row count: the 30-day daily report, the 24-hour hourly one, load and size figures. The
    databases are loaded first, then queried in turns (1x, 10x, 1x, 10x …), so that a machine
    whose load changes meanwhile weighs on every row count alike."""
    out: dict[int, dict[str, float]] = {}
    loaded: dict[int, tuple[Database, fleet_rows.Loaded]] = {}
    try:
        for count in rows:
            database = open_database(servers.database_url(kind), progress=lambda line: None)
            loaded[count] = (database, fleet_rows.generate(database, count))
            size = fleet_rows.sizes(database)
            load = loaded[count][1]
            raw_mb = size["results"][0] / 1e6
            rollup_mb = (size["rollups"][0] + size["seq_ranges"][0]) / 1e6
            out[count] = {"insert_s": load.insert_s, "rollup_s": load.rollup_s, "raw_mb": raw_mb,
                          "rollup_mb": rollup_mb, "rollup_rows": size["rollups"][1]}  # fmt: skip
            print(f"  {kind:<12}{count:>11,} rows generated at {count / load.insert_s:,.0f} rows/s, "
                  f"rolled up at {count / load.rollup_s:,.0f} rows/s; raw {raw_mb / count * 1e6:,.0f} MB "
                  f"per million results, {size['rollups'][1]:,} rollup rows, {rollup_mb:.1f} MB",
                  flush=True)  # fmt: skip
        timings: dict[tuple[int, str], list[float]] = {}
        for _ in range(runs):
            for count, (database, load) in loaded.items():
                day = TimeWindow(load.window.until_ms - 86_400_000, load.window.until_ms)
                timings.setdefault((count, "30 days"), []).append(report_s(database, load.window, "day"))
                timings.setdefault((count, "24 hours"), []).append(report_s(database, day, "hour"))
    finally:
        for database, _ in loaded.values():
            database.close()
    for (count, window), seconds in timings.items():
        out[count][window] = statistics.median(seconds) * 1000
    for count in rows:
        print(f"  {kind:<12}{count:>11,} rows: 30 days daily {out[count]['30 days']:8.1f} ms, "
              f"24 h hourly {out[count]['24 hours']:7.1f} ms", flush=True)  # fmt: skip
    return out


# -- driver --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> Figures:
    if args.results < 100 or args.runs < 1 or args.rows < 1000:
        raise ConfigError("--results >= 100, --runs >= 1, --rows >= 1000")
    parts = {part.strip() for part in args.parts.split(",")}
    scales = sorted({int(scale) for scale in args.scales.split(",")} | {1})
    if not parts <= {"ingest", "write", "query"}:
        raise ConfigError("--parts: a comma-separated choice of ingest, write, query")
    servers = Servers(args)
    kinds = ([] if args.no_sqlite else ["sqlite"]) + ([] if args.no_postgres else ["postgresql"])
    if not kinds:
        raise ConfigError("--no-sqlite and --no-postgres leave nothing to measure")
    try:
        print(f"ecolens benchmark fleet: {args.results} results per ingest run, median of "
              f"{args.runs} runs; broker {servers.broker.host}:{servers.broker.port}")  # fmt: skip
        rates: dict[tuple[str, int], float] = {}
        before: dict[str, float] = {}  # one aggregator writing as before rollups
        for kind in kinds if "ingest" in parts else []:
            samples, baseline_samples = [], []
            for _ in range(args.runs):  # alternating, so that a changing load weighs on both alike
                baseline_samples.append(ingest_once(servers, kind, 1, args.results, before_rollups=True))
                samples.append(ingest_once(servers, kind, 1, args.results))
            rates[(kind, 1)], before[kind] = statistics.median(samples), statistics.median(baseline_samples)
            print(f"  ingest {kind:<10} x1: {rates[(kind, 1)]:8.0f} results/s, before rollups "
                  f"{before[kind]:8.0f}: {rates[(kind, 1)] / before[kind]:.2f}x  (runs: "
                  f"{', '.join(f'{s:.0f}' for s in samples)} vs "
                  f"{', '.join(f'{s:.0f}' for s in baseline_samples)})", flush=True)  # fmt: skip
            samples = [ingest_once(servers, kind, 2, args.results) for _ in range(args.runs)]
            rates[(kind, 2)] = statistics.median(samples)
            print(f"  ingest {kind:<10} x2: {rates[(kind, 2)]:8.0f} results/s  "
                  f"(runs: {', '.join(f'{s:.0f}' for s in samples)})", flush=True)  # fmt: skip
        base_kind = "sqlite" if ("sqlite", 1) in rates else next(iter(kinds))  # --no-sqlite: PostgreSQL
        baseline = rates.get((base_kind, 1), 1.0)
        if rates:
            print(f"\nSustained ingest, with rollups (results/s stored; baseline = 1 aggregator, "
                  f"{base_kind})")  # fmt: skip
            header = ("storage", "1 aggregator", "2 aggregators", "x1 vs base", "x2 vs x1")
            print("  {:<12}{:>14}{:>15}{:>12}{:>10}".format(*header))
        for kind in kinds if rates else []:
            one, two = rates[(kind, 1)], rates[(kind, 2)]
            print(f"  {kind:<12}{one:>14.0f}{two:>15.0f}{one / baseline:>11.2f}x{two / one:>9.2f}x")
        for kind in before:
            print(f"  {kind:<12} 1 aggregator with rollups {rates[(kind, 1)] / before[kind]:.2f}x "
                  f"the rate before rollups ({before[kind]:.0f} results/s, same run)")  # fmt: skip

        write_rates: dict[str, tuple[float, float]] = {}
        if "write" in parts:
            print("\nBatch write, results/s (500 results from 300 bins a batch; baseline = the write "
                  f"before rollups, same batches, median of {args.runs} alternating runs)")  # fmt: skip
            for kind in kinds:
                with_rollups, before_write, runs_with, runs_base = fleet_write.compare(
                    lambda kind=kind: servers.database_url(kind), args.runs
                )
                write_rates[kind] = (with_rollups, before_write)
                listed = [", ".join(f"{r:.0f}" for r in series) for series in (runs_with, runs_base)]
                runs = " vs ".join(listed)
                print(f"  {kind:<12} with rollups {with_rollups:8.0f}, before rollups {before_write:8.0f}: "
                      f"{with_rollups / before_write:.2f}x  (runs: {runs})", flush=True)  # fmt: skip

        query_ms_by: dict[str, dict[int, dict[str, float]]] = {}
        if "query" in parts:
            counts = [args.rows * scale for scale in scales]
            print(f"\nReport query (bins + series + status), median of {args.query_runs}; 30 days daily "
                  f"and 24 h hourly over results of 500 bins spread across 30 days; baseline = "
                  f"{args.rows:,} rows")  # fmt: skip
            for kind in kinds:
                query_ms_by[kind] = measure_queries(servers, kind, counts, args.query_runs)
                base = query_ms_by[kind][counts[0]]
                for count in counts[1:]:
                    now = query_ms_by[kind][count]
                    month, day = now["30 days"] / base["30 days"], now["24 hours"] / base["24 hours"]
                    print(f"  {kind:<12}{count // args.rows:>4}x rows: 30 days {month:.2f}x, 24 h {day:.2f}x "
                          f"the {args.rows:,}-row time")  # fmt: skip
    finally:
        servers.stop()
    panels: dict[str, dict[str, float]] = {}
    if rates:
        panels[f"ingest results/s vs 1 aggregator on {base_kind} (higher is better)"] = {
            f"{kind}, {n} aggregator{'s' if n > 1 else ''}": rate / baseline
            for (kind, n), rate in rates.items()
        }
    if before:
        panels["ingest with rollups vs before rollups, 1 aggregator (higher is better)"] = {
            kind: rates[(kind, 1)] / rate for kind, rate in before.items()
        }
    if write_rates:
        panels["batch write with rollups vs before rollups (higher is better)"] = {
            kind: with_rollups / before for kind, (with_rollups, before) in write_rates.items()
        }
    values: dict[str, dict[str, dict[str, float]]] = {}
    if rates:
        values["ingest, results/s"] = {
            kind: {f"{n} aggregator{'s' if n > 1 else ''}": rates[(kind, n)] for n in (1, 2)}
            for kind in kinds
        }
    for window in ("30 days", "24 hours") if query_ms_by else ():
        values[f"report query over {window}, ms (median of {args.query_runs})"] = {
            kind: {f"{count:,} rows": figures[window] for count, figures in by_rows.items()}
            for kind, by_rows in query_ms_by.items()
        }
    return Figures(
        title=f"fleet: ingest ({args.results:,} results, median of {args.runs}), batch write, report query",
        baseline="1 aggregator",
        panels=panels,
        values=values,
    )
