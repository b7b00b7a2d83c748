"""Fixtures for the arm64 check: emulated targets and the x86 run they are compared with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ecolens.edge.preprocess import find_images

from tests.arm64.rootfs import HarnessError
from tests.arm64.target import Target, prepare_target

# (Debian suite, board): Pi OS bookworm on a Pi 4 and a Pi 5, Pi OS trixie on a Pi 5.
TARGETS = (("bookworm", "pi4"), ("bookworm", "pi5"), ("trixie", "pi5"))
TARGETS_ENV = "ECOLENS_ARM64_TARGETS"  # e.g. "bookworm-pi4,trixie-pi5" to run fewer
# Emulation costs about 1.4 s per image: compare this many images per class, or "all".
SAMPLES_ENV = "ECOLENS_ARM64_SAMPLES"
DEFAULT_SAMPLES_PER_CLASS = 12


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


def chosen_images(eval_dir: Path, x86_results: dict[str, dict]) -> list[Path]:
    """Which sample images the emulated run classifies: every one with
    ``ECOLENS_ARM64_SAMPLES=all``, else per class the least confident half on x86 (where an
    arithmetic difference would show first; saturated 0/1 scores hide it) and an even spread
    of the rest. Sorted, so every run and every target uses the same images."""
    wanted = os.environ.get(SAMPLES_ENV, str(DEFAULT_SAMPLES_PER_CLASS)).strip().lower()
    images = find_images(eval_dir)
    if wanted == "all":
        return images
    if not wanted.isdigit() or int(wanted) < 1:
        raise pytest.UsageError(f"{SAMPLES_ENV} must be a positive number or 'all'")
    per_class = int(wanted)
    chosen: list[Path] = []
    for folder in sorted({image.parent for image in images}):
        members = [image for image in images if image.parent == folder]
        by_confidence = sorted(members, key=lambda p: x86_results[str(p)]["confidence"])
        uncertain = by_confidence[: per_class // 2]
        rest = [image for image in members if image not in uncertain]
        step = max(1, len(rest) // max(1, per_class - len(uncertain)))
        chosen += uncertain + rest[::step][: per_class - len(uncertain)]
    return sorted(chosen)


def parse_results(stdout: str) -> dict[str, dict]:
    """One JSON result per line, keyed by the image path (``source``)."""
    results = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {result["source"]: result for result in results}


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
