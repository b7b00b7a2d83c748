"""`ecolens benchmark models|daemon|binpage|fleet --plot FILE.png` with tiny settings: each run ends
with a real chart of its figures (ratio bars and measured values, the baseline in grey). The
`api` and `coldstart` plots are in tests/test_bench_api.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.charts import assert_chart
from tests.test_bench_api import ecolens

pytest.importorskip("matplotlib")


def test_models_plot_without_tensorflow_noise(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    plot = tmp_path / "models.png"
    proc = ecolens("benchmark", "models", "--count", "4", "--rounds", "1", "--plot", str(plot), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tflite int8" in proc.stdout and f"plot: {plot}" in proc.stdout
    for noise in ("oneDNN", "cudart_stub", "cuInit", "absl::InitializeLog"):  # only with -v
        assert noise not in proc.stderr + proc.stdout
    assert_chart(plot)


def test_daemon_plot(tmp_path: Path) -> None:
    plot = tmp_path / "daemon.png"
    proc = ecolens("benchmark", "daemon", "--runs", "1", "--idle-seconds", "2", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "daemon pipeline (gate + items)" in proc.stdout and f"plot: {plot}" in proc.stdout
    assert_chart(plot, min_height=900)  # the ratio panel and three panels of values


def test_binpage_figures_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "binpage.png"
    proc = ecolens("benchmark", "binpage", "--runs", "1", "--seconds", "3", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("  round 1: off ") for line in lines)
    off = next(line for line in lines if "[web] off" in line)
    assert "(baseline)" in off and float(off.split()[2]) > 0  # the daemon did work
    for case in ("on, nobody watching", "on, one page open"):
        line = next(line for line in lines if f"[web] {case}" in line)
        assert "points of one core" in line
    assert_chart(plot)


def test_fleet_plot(tmp_path: Path) -> None:
    plot = tmp_path / "fleet.png"
    proc = ecolens(
        "benchmark", "fleet", "--results", "200", "--runs", "1", "--rows", "1000", "--query-runs", "1",
        "--no-postgres", "--plot", str(plot),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Sustained ingest" in proc.stdout and f"plot: {plot}" in proc.stdout
    assert_chart(plot)


def test_binpage_refuses_bad_settings_in_one_line() -> None:
    proc = ecolens("benchmark", "binpage", "--runs", "0", timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "ecolens benchmark: error: --runs must be at least 1 and --seconds above 0"
    ]
