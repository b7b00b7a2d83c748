"""Staged rollouts supervised by the aggregator: ``records`` (the rollouts table and the window's
figures), ``judging`` (when a verdict is due, who is rolled back), ``keys`` (the signing key)
and ``supervisor`` (the thread that acts)."""

from __future__ import annotations

from ecolens.fleet.canary.keys import read_signing_key
from ecolens.fleet.canary.supervisor import CanarySupervisor

__all__ = ["CanarySupervisor", "read_signing_key"]
