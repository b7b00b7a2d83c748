"""Fixtures for the arm64 check: emulated targets and the x86 run they are compared with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.arm64.results import parse_results
from tests.arm64.rootfs import HarnessError
from tests.arm64.target import Target, prepare_target

# (Debian suite, board): Pi OS bookworm on a Pi 4 and a Pi 5, Pi OS trixie on a Pi 5.
TARGETS = (("bookworm", "pi4"), ("bookworm", "pi5"), ("trixie", "pi5"))
TARGETS_ENV = "ECOLENS_ARM64_TARGETS"  # e.g. "bookworm-pi4,trixie-pi5" to run fewer


def selected_targets() -> list[tuple[str, str]]:
    wanted = os.environ.get(TARGETS_ENV)
    if not wanted:
        return list(TARGETS)
    chosen = [tuple(item.strip().split("-", 1)) for item in wanted.split(",") if item.strip()]
    unknown = [pair for pair in chosen if pair not in TARGETS]
    if unknown:
        raise pytest.UsageError(f"{TARGETS_ENV}: unknown targets {unknown}; known: {TARGETS}")
    return chosen  # type: ignore[return-value]


# The services (API, daemon) run once per Python version: the board changes only the model's
# kernels, which the classify tests cover on every target.
SERVICE_TARGETS = (("bookworm", "pi4"), ("trixie", "pi5"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, pairs in (
        ("arm64_target", selected_targets()),
        ("service_target", [pair for pair in SERVICE_TARGETS if pair in selected_targets()]),
    ):
        if name in metafunc.fixturenames:
            ids = [f"{suite}-{board}" for suite, board in pairs]
            metafunc.parametrize(name, pairs, ids=ids, indirect=True, scope="session")


def _target(request: pytest.FixtureRequest) -> Target:
    suite, profile = request.param
    try:
        return prepare_target(suite, profile)
    except HarnessError as exc:
        pytest.fail(f"arm64 harness: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def arm64_target(request: pytest.FixtureRequest) -> Target:
    return _target(request)


@pytest.fixture(scope="session")
def service_target(request: pytest.FixtureRequest) -> Target:
    return _target(request)


@pytest.fixture(scope="session")
def x86_results(reference_model: Path, eval_dir: Path) -> dict[str, dict]:
    """``ecolens classify`` on this host, the baseline every arm64 run must equal."""
    ecolens = Path(sys.executable).parent / "ecolens"
    done = subprocess.run(
        [str(ecolens), "classify", "--model", str(reference_model), str(eval_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return parse_results(done.stdout)
