"""The every-state scenario fleet (``ecolens simulate --scenario``) in a real database, stored
through the aggregator's own parsing at the times the bins sent each message: the dashboard's
tests and the docs' screenshots look at it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ecolens.fleet.scenario import Scenario, build_scenario, store_timeline
from ecolens.fleet.simulator import reference_model_info
from ecolens.fleet.storage import open_database

BINS = 42


def scenario_database(path: Path, bins: int = BINS, seed: int = 26) -> Scenario:
    """Writes the scenario into a new SQLite file at ``path``; returns the scenario."""
    labels, model = reference_model_info()
    scenario = build_scenario("ecolens", bins, labels, model, seed=seed)
    database = open_database(f"sqlite:///{path}")
    try:
        store_timeline(database, "ecolens", scenario.messages)
    finally:
        database.close()
    return scenario


def copy_database(source: Path, target: Path) -> str:
    """A private copy (tests change nothing in the shared one); its URL."""
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"
