"""Samples for labelling: ``parse`` (a sample message checked), ``store`` (files and SQLite, the
folder's cap), ``subscriber`` (from the broker into the store).

The subscriber needs paho, so it is loaded only when asked for (reading samples does not)."""

from __future__ import annotations

from typing import Any

from ecolens.fleet.samples.store import DEFAULT_MAX_MB, SampleStore

__all__ = ["DEFAULT_MAX_MB", "SampleStore", "SampleSubscriber"]


def __getattr__(name: str) -> Any:
    if name == "SampleSubscriber":
        from ecolens.fleet.samples.subscriber import SampleSubscriber

        return SampleSubscriber
    raise AttributeError(name)
