"""`ecolens benchmark api` and `coldstart` run end to end (one short round): the plain LiteRT
app baseline answers, the figures and the machine line (CPU, int8 dot product, load) come out.
A smoke test of the measuring tools, not a performance assertion. Bad settings are refused in one
line before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.charts import assert_chart


def ecolens(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_benchmark_api_against_the_plain_app(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("matplotlib")
    figures = tmp_path / "api.json"
    proc = ecolens(
        "benchmark", "api", "--baselines", "plain", "--clients", "2", "--sizes", "photo,320x240",
        "--seconds", "1", "--repeats", "1", "--json", str(figures), "--plot", str(tmp_path / "api.png"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_chart(tmp_path / "api.png", min_height=1000)  # ratios, then req/s and p99 per image set
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


def test_benchmark_coldstart_and_its_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import cv2

    plot = tmp_path / "coldstart.png"
    proc = ecolens("benchmark", "coldstart", "--runs", "1", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bare LiteRT script" in proc.stdout and "ecolens classify - bare script:" in proc.stdout
    assert f"plot: {plot}" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = cv2.imread(str(plot))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 500


def test_benchmark_plot_refuses_a_bad_file_name_before_running(tmp_path: Path) -> None:
    proc = ecolens("benchmark", "coldstart", "--plot", str(tmp_path / "chart.jpg"), timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"ecolens benchmark: error: --plot {tmp_path / 'chart.jpg'}: give a .png file name"
    ]
    assert "machine: " not in proc.stdout  # refused before the benchmark started
    missing = tmp_path / "nowhere" / "chart.png"
    for name in ("daemon", "api", "fleet", "binpage"):  # every benchmark draws, each checks first
        proc = ecolens("benchmark", name, "--plot", str(missing), timeout=60)
        assert proc.returncode != 0 and "machine: " not in proc.stdout
        assert proc.stderr.strip().splitlines() == [
            f"ecolens benchmark: error: --plot {missing}: folder {missing.parent} does not exist"
        ]


def test_scripts_benchmarks_writes_every_table_to_one_file(tmp_path: Path) -> None:
    """`scripts/benchmarks.py` (every README figure in one run): the machine line, the int8
    context (the model's MACs and latency) and each chosen benchmark's table, in the file."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks.py"
    out = tmp_path / "bench.txt"
    command = [sys.executable, str(script), "--quick", "--only", "coldstart", "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    text = out.read_text()
    assert text.splitlines()[1].startswith("machine: ") and "int8 dot product:" in text
    assert "M MACs" in text and "ecolens-plastic-lite0.int8.tflite" in text
    assert "== ecolens benchmark coldstart --runs 3" in text and "ecolens classify - bare script" in text
    assert "-- coldstart: exit 0" in text and text.rstrip().endswith("failed: none")
    wrong = subprocess.run([sys.executable, str(script), "--only", "nope"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: --only: unknown benchmark(s) nope; choose from models, daemon, api, coldstart, fleet"
    )


def test_adapt_check_refuses_a_bad_share_in_one_line() -> None:
    proc = ecolens(
        "benchmark", "adapt", "--trashnet", ".", "--work", ".", "--labelled-percent", "95", timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ecolens benchmark: error: --labelled-percent must be between 10 and 90"
    ]
