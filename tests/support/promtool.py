"""Prometheus exposition checks: `promtool check metrics` (Debian package prometheus) as the
linter, and prometheus_client's own parser to read the values back."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def promtool_check(text: str) -> None:
    """Fails the test with promtool's complaints (names, types, help, units)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: apt-get install prometheus")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} as Prometheus would scrape them."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found
