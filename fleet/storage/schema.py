"""Schema creation and upgrades, run by the tool itself at start (no separate migration step).

Each migration is a list of portable statements; ``fleet_schema`` records the version reached.
Times are integer epoch milliseconds (UTC), so hour/day buckets are plain integer division in
both SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ecolens.fleet.storage.database import Database

log = logging.getLogger(__name__)

_ROLLUP_COLUMNS = """width_ms BIGINT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    label TEXT NOT NULL,
    model_version TEXT NOT NULL,
    items BIGINT NOT NULL,
    uncertain BIGINT NOT NULL,
    confidence_sum DOUBLE PRECISION NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (width_ms, bucket_ms, device_id, label, model_version)"""

# A statement is portable SQL, or {database kind: SQL} where the two differ (a kind left out
# runs nothing).
Statement = str | dict[str, str]

MIGRATIONS: tuple[tuple[Statement, ...], ...] = (
    # 1: results, bins, rejected messages
    (
        """CREATE TABLE results (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            seen_ms BIGINT NOT NULL,
            received_ms BIGINT NOT NULL,
            label TEXT NOT NULL,
            confidence DOUBLE PRECISION NOT NULL,
            uncertain BOOLEAN NOT NULL,
            inference_ms DOUBLE PRECISION NOT NULL,
            frames INTEGER,
            model_name TEXT NOT NULL,
            model_version TEXT NOT NULL,
            model_sha256 TEXT NOT NULL,
            payload TEXT NOT NULL
        )""",
        "CREATE INDEX results_seen ON results (seen_ms)",
        "CREATE INDEX results_device_seen ON results (device_id, seen_ms)",
        """CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            status TEXT,
            status_ms BIGINT,
            last_result_ms BIGINT
        )""",
        """CREATE TABLE rejected (
            received_ms BIGINT NOT NULL,
            topic TEXT NOT NULL,
            reason TEXT NOT NULL,
            payload TEXT NOT NULL
        )""",
        "CREATE INDEX rejected_received ON rejected (received_ms)",
    ),
    # 2: the report's window scans read only this index (no table lookups)
    (
        "CREATE INDEX results_window ON results (seen_ms, device_id, label, uncertain)",
        "DROP INDEX results_seen",
    ),
    # 3: each bin numbers its results (contract field ``seq``): gaps are results that never
    # arrived, counted per bin from this index alone
    (
        "ALTER TABLE results ADD COLUMN seq BIGINT",
        "CREATE INDEX results_device_seq ON results (device_id, seq)",
    ),
    # 4: the camera state a bin reports in its status (up, down, starting; NULL: not reported)
    ("ALTER TABLE devices ADD COLUMN camera TEXT",),
    # 5: every status message as received, for a bin's status history on the dashboard
    (
        """CREATE TABLE status_events (
            device_id TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            status TEXT NOT NULL
        )""",
        "CREATE INDEX status_events_device ON status_events (device_id, at_ms)",
    ),
    # 6: staged rollouts the aggregator supervises (`ecolens rollout --canary` records them):
    # canary bins vs the rest over a window, and the verdict it reached
    (
        """CREATE TABLE rollouts (
            rollout_id TEXT PRIMARY KEY,
            model_sha256 TEXT NOT NULL,
            model_name TEXT NOT NULL,
            model_version TEXT NOT NULL,
            canaries TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            window_s DOUBLE PRECISION NOT NULL,
            min_results INTEGER NOT NULL,
            max_share_delta DOUBLE PRECISION NOT NULL,
            max_uncertain_delta DOUBLE PRECISION NOT NULL,
            state TEXT NOT NULL,
            decided_ms BIGINT,
            verdict TEXT
        )""",
        "CREATE INDEX rollouts_state ON rollouts (state)",
    ),
    # 7: the error rate (times offline) a canary may add over the rest; NULL on rollouts
    # recorded before, which are judged with the default
    ("ALTER TABLE rollouts ADD COLUMN max_error_delta DOUBLE PRECISION",),
    # 8: the highest seq of a bin's results deleted by [storage] keep_results_days: numbers up to
    # it are not counted as missing (NULL: none deleted)
    ("ALTER TABLE devices ADD COLUMN pruned_seq BIGINT",),
    # 9: the signed manifest each bin should hold now (the aggregator re-signs it before it
    # expires), the models rolled back (never pushed again), and the canary bins a rollout needs
    # before it is promoted (NULL: recorded before, judged with the default)
    (
        """CREATE TABLE manifests (
            device_id TEXT PRIMARY KEY,
            serial BIGINT NOT NULL,
            action TEXT NOT NULL,
            model_sha256 TEXT NOT NULL,
            expires_ms BIGINT NOT NULL,
            body TEXT NOT NULL
        )""",
        """CREATE TABLE revoked_models (
            model_sha256 TEXT PRIMARY KEY,
            rollout_id TEXT NOT NULL,
            at_ms BIGINT NOT NULL
        )""",
        "ALTER TABLE rollouts ADD COLUMN min_canaries INTEGER",
    ),
    # 10: bin health at fleet level: why and since when a camera is down (from the status), and
    # each bin's latest stats (one row per bin, overwritten; the queue depth before it, to see a
    # queue grow). Written beside the results' batches, never in their transaction.
    (
        "ALTER TABLE devices ADD COLUMN camera_error TEXT",
        "ALTER TABLE devices ADD COLUMN camera_since_ms BIGINT",
        """CREATE TABLE bin_stats (
            device_id TEXT PRIMARY KEY,
            received_ms BIGINT NOT NULL,
            uptime_s DOUBLE PRECISION,
            inference_ms_p95 DOUBLE PRECISION,
            queue_depth BIGINT,
            previous_queue_depth BIGINT,
            queue_dropped BIGINT,
            cpu_percent DOUBLE PRECISION,
            rss_mb DOUBLE PRECISION,
            fps DOUBLE PRECISION
        )""",
    ),
    # 11: rollups per bin, hour/day, label and model version, which reports read instead of raw
    # results; the seq numbers stored, as ranges, for the count of missing results; batched jobs
    # the upgrade runs after this transaction (fleet/storage/jobs.py): PostgreSQL's results become
    # a table partitioned by week, then both are built from the results already stored
    (
        {
            "sqlite": f"CREATE TABLE rollups ({_ROLLUP_COLUMNS}) WITHOUT ROWID",
            "postgresql": f"CREATE TABLE rollups ({_ROLLUP_COLUMNS})",
        },
        """CREATE TABLE seq_ranges (
            device_id TEXT NOT NULL,
            first_seq BIGINT NOT NULL,
            last_seq BIGINT NOT NULL
        )""",
        "CREATE INDEX seq_ranges_device ON seq_ranges (device_id, first_seq)",
        """CREATE TABLE fleet_jobs (
            name TEXT PRIMARY KEY,
            next_ms BIGINT,
            until_ms BIGINT,
            next_key TEXT,
            done BIGINT NOT NULL DEFAULT 0,
            total BIGINT NOT NULL DEFAULT 0
        )""",
        # the edge hours of a report's window read results_window alone (index-only), model
        # version included (PostgreSQL: built so by the partitioning job)
        {"sqlite": "DROP INDEX results_window"},
        {
            "sqlite": "CREATE INDEX results_window ON results "
            "(seen_ms, device_id, label, uncertain, model_version)"
        },
        # the latest retention cutoff: hours before it keep only rollups (the check skips them)
        "CREATE TABLE fleet_marks (name TEXT PRIMARY KEY, at_ms BIGINT NOT NULL)",
        {"postgresql": "INSERT INTO fleet_jobs (name) VALUES ('partition_results')"},
        "INSERT INTO fleet_jobs (name) VALUES ('build_rollups')",
        "INSERT INTO fleet_jobs (name) VALUES ('build_seq_ranges')",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def version_creating(table: str) -> int:
    """The schema version whose migration creates ``table`` (independent of renumbering)."""
    marker = f"CREATE TABLE {table} ("
    for number, statements in enumerate(MIGRATIONS, 1):
        if any(marker in (s if isinstance(s, str) else " ".join(s.values())) for s in statements):
            return number
    raise KeyError(table)


def current_version(database: Database) -> int:
    rows = database.query("SELECT MAX(version) FROM fleet_schema")
    return int(rows[0][0] or 0)


def migrate(database: Database, progress: Callable[[str], None] | None = None) -> int:
    """Bring the schema to SCHEMA_VERSION, then finish the batched jobs an upgrade left (progress
    lines to ``progress``, stderr by default); safe when several aggregators start at once
    (PostgreSQL: advisory locks; SQLite: the write lock of BEGIN IMMEDIATE)."""
    with database.transaction():
        if database.kind == "postgresql":
            database.execute("SELECT pg_advisory_xact_lock(4242051)")
        database.execute("CREATE TABLE IF NOT EXISTS fleet_schema (version INTEGER NOT NULL)")
        version = current_version(database)
        if version > SCHEMA_VERSION:
            from ecolens.core.errors import ConfigError

            raise ConfigError(
                f"{database.description}: schema version {version} is newer than this "
                f"ecolens ({SCHEMA_VERSION}); upgrade ecolens"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                text = statement if isinstance(statement, str) else statement.get(database.kind)
                if text:
                    database.execute(text)
            database.execute("INSERT INTO fleet_schema (version) VALUES (?)", (number,))
            log.info("%s: schema migrated to version %d", database.description, number)
    if current_version(database) >= version_creating("fleet_jobs"):
        from ecolens.fleet.storage.jobs import run_pending

        run_pending(database, progress)
    return SCHEMA_VERSION
