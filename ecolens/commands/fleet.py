"""`ecolens aggregate`, `ecolens report`, `ecolens simulate`: the fleet side of the CLI.
Heavy imports (paho, Flask, psycopg, jsonschema) happen inside the handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ecolens.commands.classify import bounded


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file ([mqtt] [subscriber] [storage] ...)")


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", metavar="URL", help="sqlite:///fleet.db or postgresql://... (storage.url)"
    )


def _add_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="mqtt[s]://user:pass@host:port")
    parser.add_argument("--prefix", help="topic prefix (default ecolens)")


def register(subparsers: argparse._SubParsersAction) -> None:
    aggregate = subparsers.add_parser(
        "aggregate",
        help="subscribe to every bin's results and status, store them, serve the dashboard",
    )
    _add_config(aggregate)
    _add_broker(aggregate)
    _add_database(aggregate)
    aggregate.add_argument("--share-group", help="MQTT 5 shared-subscription group, for several aggregators")
    aggregate.add_argument(
        "--client-id", help="MQTT client id; stable per instance (the broker keeps its session)"
    )
    aggregate.add_argument("--http-host", help="dashboard/API address (default 127.0.0.1)")
    aggregate.add_argument(
        "--http-insecure",
        action="store_true",
        help="allow a non-loopback --http-host without [auth] keys (trusted networks only)",
    )
    aggregate.add_argument("--http-port", type=int, help="dashboard/API port (default 8090)")
    aggregate.add_argument("--no-http", action="store_true", help="do not serve HTTP")
    aggregate.add_argument(
        "--samples-dir",
        type=Path,
        help="receive the bins' samples into DIR and serve the labelling page (/label) and API",
    )
    aggregate.add_argument(
        "--samples-max-mb",
        type=bounded(int, 1, 10**8),
        help="refuse new samples once DIR (images and database, as allocated on disk) takes this "
        "many MB (default 5000), and always 1 GB before the disk is full",
    )
    aggregate.add_argument(
        "--samples-bin-max-mb",
        type=bounded(int, 1, 10**8),
        help="and once one bin's images take this many MB on disk (default 500, at most --samples-max-mb)",
    )
    aggregate.add_argument(
        "--samples-bin-max-files",
        type=bounded(int, 1, 10**9),
        help="and once one bin has this many samples (default 50000)",
    )
    aggregate.add_argument(
        "--rollout-key",
        type=Path,
        help="the rollout's private key (mode 600): roll back a canary that is worse than the rest "
        "(rollout.key_file); without it, a worse canary is only logged",
    )
    aggregate.add_argument(
        "--validate-config",
        action="store_true",
        help="check the configuration and the files it names, print the effective settings, exit",
    )
    aggregate.set_defaults(func=run_aggregate)

    report = subparsers.add_parser(
        "report", help="plastic counts and share per bin and time bucket, offline bins"
    )
    report.add_argument(
        "view",
        nargs="?",
        choices=("bins", "series", "status", "all"),
        default=None,
        help="bins: per bin and label (default); series: per bucket and bin; status: "
        "online/offline and last seen; all: everything (JSON only)",
    )
    _add_config(report)
    _add_database(report)
    report.add_argument("--since", help="window start: 90m, 24h, 7d or ISO time (default 24h)")
    report.add_argument("--until", default="now", help="window end (default now)")
    report.add_argument("--bucket", help="series bucket: minute, hour or day (default hour)")
    report.add_argument("--device", help="only this bin")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.set_defaults(func=run_report)

    simulate = subparsers.add_parser(
        "simulate", help="publish realistic results from N virtual bins (demos, tests, benchmarks)"
    )
    _add_config(simulate)
    _add_broker(simulate)
    simulate.add_argument("--bins", type=int, default=10, help="virtual bins (default 10)")
    simulate.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="results per second per bin; 0 = as fast as possible",
    )
    stop = simulate.add_mutually_exclusive_group()
    stop.add_argument("--count", type=int, help="stop after this many results in total")
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    stop.add_argument(
        "--scenario",
        action="store_true",
        help="publish the last 24 h of a fleet with every state at once (offline, stale, camera down, "
        "outage caught up, results missing, uncertain, slow inference, growing queue) and stop",
    )
    simulate.add_argument(
        "--backfill-hours",
        type=float,
        default=0.0,
        help="with --count: spread result timestamps over this many past hours",
    )
    simulate.add_argument(
        "--offline", type=int, default=0, help="at the end, this many bins publish 'offline'"
    )
    simulate.add_argument("--seed", type=int, help="random seed (reproducible fleets)")
    simulate.set_defaults(func=run_simulate)


def _fleet_config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    from ecolens.core.mqtt import broker_overrides
    from ecolens.fleet.config import load_fleet_config

    overrides: dict[str, Any] = dict(broker_overrides(getattr(args, "broker", None)))
    overrides["subscriber.prefix"] = getattr(args, "prefix", None)
    overrides["storage.url"] = getattr(args, "database", None)
    overrides.update(extra or {})
    return load_fleet_config(args.config, overrides)


def run_aggregate(args: argparse.Namespace) -> int:
    """Flags -> FleetConfig -> the fleet's service (ecolens.fleet.service)."""
    from ecolens.fleet.service import FleetService, SampleQuotas

    config = _fleet_config(
        args,
        {
            "subscriber.share_group": args.share_group,
            "mqtt.client_id": args.client_id,
            "http.host": args.http_host,
            "http.port": args.http_port,
            "http.enabled": False if args.no_http else None,
            "http.insecure": True if args.http_insecure else None,
            "rollout.key_file": args.rollout_key,
        },
    )
    if args.validate_config:
        return validate_fleet_config(config)
    quotas = SampleQuotas(args.samples_max_mb, args.samples_bin_max_mb, args.samples_bin_max_files)
    return FleetService(config, samples_dir=args.samples_dir, samples_quotas=quotas).run()


def validate_fleet_config(config: Any) -> int:
    """Settings, named files, the dashboard's exposure rules, the database URL's form."""
    from ecolens.core.config_check import validate_and_print
    from ecolens.core.errors import ConfigError
    from ecolens.core.http.exposure import check_exposure
    from ecolens.core.http.keys import KeyStore
    from ecolens.fleet.storage.database import parse_database_url

    line = validate_and_print(config)
    try:
        parse_database_url(config.storage.url)
    except ValueError as exc:
        raise ConfigError(f"storage.url: {exc}") from exc
    if config.http.enabled:
        check_exposure(config.http, KeyStore.from_settings(config.auth).enabled, "the dashboard", "http")
    print(line, file=sys.stderr)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ecolens.core.errors import ConfigError
    from ecolens.fleet import formatting
    from ecolens.fleet.report import VIEWS, build_report
    from ecolens.fleet.storage import open_database
    from ecolens.fleet.timewindow import parse_bucket, parse_window

    config = _fleet_config(args)
    view = args.view or ("all" if args.format == "json" else "bins")
    if view == "all" and args.format != "json":
        raise ConfigError("the 'all' view needs --format json (use bins, series or status)")
    window = parse_window(args.since or config.report.window, args.until)
    bucket = (args.bucket or config.report.bucket).lower()
    parse_bucket(bucket)
    database = open_database(config.storage.url, create=False)
    try:
        report = build_report(
            database,
            window,
            bucket,
            config.report.plastic_label,
            config.report.stale_after_s,
            views=VIEWS if view == "all" else (view,),
            device_id=args.device,
            attention=config.report.attention(),
        )
    finally:
        database.close()
    if args.format == "json":
        print(formatting.as_json(report))
    elif args.format == "csv":
        sys.stdout.write(formatting.as_csv(report, view))
    else:
        print(formatting.as_table(report, view))
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from ecolens.core.errors import ConfigError
    from ecolens.fleet.simulator import FleetSimulator

    if args.count is None and args.duration is None and not args.scenario:
        raise ConfigError("give --count N, --duration SECONDS or --scenario")
    if not 0 <= args.offline <= args.bins:
        raise ConfigError("--offline must be between 0 and --bins")
    config = _fleet_config(args)
    if args.scenario:
        return run_scenario(args, config)
    simulator = FleetSimulator(
        config.mqtt, prefix=config.subscriber.prefix, bins=args.bins, seed=args.seed
    ).connect()
    try:
        summary = simulator.run(
            count=args.count,
            duration_s=args.duration,
            rate=args.rate,
            backfill_hours=args.backfill_hours,
        )
        for bin_ in simulator.bins[len(simulator.bins) - args.offline :] if args.offline else []:
            simulator.publish_status(bin_.device_id, "offline")
    finally:
        simulator.close(offline=False)
    rate = summary.results / summary.seconds if summary.seconds else 0.0
    print(
        f"published {summary.results} results from {args.bins} bins in {summary.seconds:.1f}s "
        f"({rate:.0f}/s); {args.offline} bins marked offline"
    )
    return 0


def run_scenario(args: argparse.Namespace, config: Any) -> int:
    """Publish the every-state fleet and say which bin plays which state."""
    from ecolens.fleet.scenario import build_scenario
    from ecolens.fleet.simulator import FleetSimulator

    prefix = config.subscriber.prefix
    simulator = FleetSimulator(config.mqtt, prefix=prefix, bins=args.bins, seed=args.seed)
    scenario = build_scenario(
        prefix, args.bins, simulator.labels, simulator.model_info, config.report.plastic_label, args.seed
    )
    simulator.connect()
    try:
        simulator.publish_scenario(scenario)
    finally:
        simulator.close(offline=False)
    print(f"published {simulator.summary.results} results from {args.bins} bins over the last 24 h; states:")
    for role, device_id in scenario.roles.items():
        print(f"  {device_id}  {role.replace('_', ' ')}")
    return 0
