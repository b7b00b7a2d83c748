"""What rollups cost at ingest: the aggregator's batch write (``ResultStore.write``: results,
rollups, seq ranges, bins, one transaction) against today's write before rollups (the results
insert and the bins upsert, written out here as the baseline), same batches, same database kind,
alternating, in the same run."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence

from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.store import UPSERT_DEVICE, ResultStore, StoredResult

# Today's statement, before rollups (one statement a row); no conflict target, as the dedup key
# differs between SQLite (event_id) and the partitioned PostgreSQL table (event_id, seen_ms).
BASELINE_INSERT = """INSERT INTO results (event_id, device_id, seen_ms, received_ms, label,
    confidence, uncertain, inference_ms, frames, model_name, model_version, model_sha256, payload,
    seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"""


def baseline_write(db: Database, results: Sequence[StoredResult]) -> int:
    """The write path before rollups: the results, then each bin's last result time."""
    newest: dict[str, int] = {}
    for result in results:
        newest[result.device_id] = max(newest.get(result.device_id, 0), result.seen_ms)
    with db.transaction() as tx:
        stored = tx.executemany(BASELINE_INSERT, results)
        tx.executemany(UPSERT_DEVICE, [(d, None, None, newest[d], None, None, None) for d in sorted(newest)])
    return stored


def batches(count: int, size: int, bins: int, seed: int) -> list[list[StoredResult]]:
    """A fleet's live traffic: each batch holds results from many bins, a few seconds apart, each
    bin numbering its results; about 1 in 100 is a redelivery of an earlier one."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    numbers = [0] * bins
    out, sent = [], []
    for b in range(count):
        batch = []
        for i in range(size):
            if sent and rng.random() < 0.01:
                batch.append(rng.choice(sent))
                continue
            device = rng.randrange(bins)
            numbers[device] += 1
            seen = now + (b * size + i) * 300
            label = "plastic" if rng.random() < 0.35 else "non_plastic"
            batch.append(StoredResult(f"s{seed}-{b}-{i}", f"bin-{device:04d}", seen, seen + 40, label,
                                      rng.random(), rng.random() < 0.02, 25.0, 1, "m", "1", "0" * 64,
                                      f'{{"label": "{label}"}}', numbers[device]))  # fmt: skip
        sent.extend(batch[:50])
        out.append(batch)
    return out


def rate(url: str, write: Callable[[Database, Sequence[StoredResult]], object], work: list[list]) -> float:
    """Results/s offered through ``write``, batch after batch, into a fresh database."""
    database = open_database(url)
    try:
        started = time.perf_counter()
        for batch in work:
            write(database, batch)
        return sum(len(batch) for batch in work) / (time.perf_counter() - started)
    finally:
        database.close()


def compare(fresh_url: Callable[[], str], runs: int, count: int = 40, size: int = 500, bins: int = 300):
    """(with rollups, baseline) results/s, medians of ``runs`` alternating pairs."""
    work = batches(count, size, bins, seed=11)
    with_rollups, baseline = [], []
    for _ in range(runs):
        baseline.append(rate(fresh_url(), baseline_write, work))
        with_rollups.append(rate(fresh_url(), lambda db, batch: ResultStore(db).write(batch), work))
    return statistics.median(with_rollups), statistics.median(baseline), with_rollups, baseline
