"""``ecolens aggregate`` writing as it did before rollups: the baseline process of
``ecolens benchmark fleet --parts ingest``. The same command, MQTT session, validation, batching
and acknowledgements; only the batch's results insert is today's statement before rollups (one
statement a row, ``fleet_write.BASELINE_INSERT``), without rollups and seq ranges. So the ratio
of the two rates, taken in the same run, is what rollups cost a fleet.

Run as ``python -m ecolens.bench.fleet_before_rollups aggregate ARGS...`` (the CLI's own
arguments).
"""

from __future__ import annotations

import runpy
from collections.abc import Sequence

from ecolens.bench.fleet_write import BASELINE_INSERT
from ecolens.fleet.storage import store
from ecolens.fleet.storage.database import Database


def insert_results_before_rollups(tx: Database, results: Sequence[store.StoredResult]) -> int:
    """The results insert alone; returns the rows stored (duplicates skipped)."""
    return tx.executemany(BASELINE_INSERT, results)


def main() -> None:
    """Run the CLI (by name: bench never imports the command layer) with the write replaced."""
    store.insert_results = insert_results_before_rollups  # ResultStore.write looks it up per batch
    runpy.run_module("ecolens.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
