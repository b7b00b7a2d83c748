"""`ecolens benchmark api` and `coldstart` run end to end (one short round): the plain LiteRT
app baseline answers, the figures and the machine line (CPU, int8 dot product, load) come out.
A smoke test of the measuring tools, not a performance assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def ecolens(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_benchmark_api_against_the_plain_app(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    figures = tmp_path / "api.json"
    proc = ecolens(
        "benchmark", "api", "--baselines", "plain", "--clients", "2", "--sizes", "photo,320x240",
        "--seconds", "1", "--repeats", "1", "--json", str(figures),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("machine: ") and "int8 dot product:" in proc.stdout
    assert "load average:" in proc.stdout.splitlines()[-1]
    document = json.loads(figures.read_text())
    assert document["machine"]["cores"] >= 1
    assert [row["size"] for row in document["rows"]] == ["photo", "320x240"]
    for row in document["rows"]:
        for server in ("ecolens", "plain"):
            assert row[server]["throughput"] > 0 and row[server]["errors"] == 0
            assert row[server]["cpu_ms"] > 0
        assert row["throughput_vs_plain"] > 0


def test_benchmark_coldstart() -> None:
    proc = ecolens("benchmark", "coldstart", "--runs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bare LiteRT script" in proc.stdout and "ecolens classify - bare script:" in proc.stdout
