"""`ecolens rollups check|build`: prove the rollups that reports read equal a recomputation from
raw results over a window (exit 1 and one line per difference otherwise), or rebuild a window's
rollups from raw results (after results were deleted or restored by hand)."""

from __future__ import annotations

import argparse

from ecolens.commands.fleet import _add_config, _add_database, _fleet_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollups",
        help="check the fleet database's rollups against raw results, or rebuild them",
        description="check: recomputes the window's whole hours (and days) from raw results and "
        "compares them with the rollups, and the count of missing results with raw results; exit 1 "
        "on any difference. build: replaces the rollups of the window's days (widened to whole UTC "
        "days) with a recomputation from raw results, and every bin's seq ranges.",
    )
    parser.add_argument("action", choices=("check", "build"))
    _add_config(parser)
    _add_database(parser)
    parser.add_argument("--since", default="7d", help="90m, 24h, 7d or an ISO time (default 7d)")
    parser.add_argument("--until", default="now", help="as --since (default now)")
    parser.set_defaults(func=run_rollups)


def run_rollups(args: argparse.Namespace) -> int:
    from ecolens.fleet import rollupcheck
    from ecolens.fleet.storage import open_database
    from ecolens.fleet.timewindow import iso, parse_window

    config = _fleet_config(args)
    window = parse_window(args.since, args.until)
    database = open_database(config.storage.url, create=False)
    try:
        if args.action == "build":
            days, counted = rollupcheck.build(database, window)
            print(f"rebuilt the rollups of {days} days ({counted:,} results) and every bin's seq ranges")
            return 0
        with database.snapshot():
            result = rollupcheck.check(database, window)
    finally:
        database.close()
    for line in result.differences:
        print(line)
    if result.checked is None:
        span = "no whole hour with stored results in the window"
    else:
        span = f"{iso(result.checked.since_ms)} to {iso(result.checked.until_ms)}"
        span += f", {result.cells:,} bin-hour-label cells"
    if result.differences:
        print(f"rollups differ from raw results: {len(result.differences)} differences ({span})")
        return 1
    print(f"rollups equal raw results ({span}; missing-results counts too)")
    return 0
