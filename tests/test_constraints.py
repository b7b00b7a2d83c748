"""The release's pinned, hashed dependency sets (constraints/*.txt, made by scripts/lock): they
cover what pyproject.toml declares, and the bin's set installs hash-checked on a fresh venv,
where ecolens then adds nothing and works."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.cleanvenv import (
    REPO,
    constraints_file,
    ecolens_wheel,
    fresh_venv,
    pip,
    wheelhouse,
)

SETS = {"edge": ("edge",), "fleet": ("fleet",), "workstation": ("edge", "fleet", "plots", "bench", "convert")}


def pinned(path: Path) -> dict[str, str]:
    """name -> version of every pin, each with at least one hash."""
    text = path.read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE))
    blocks = re.split(r"\n(?=[a-z0-9])", text)
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[a-z0-9]", block)), path
    return {re.sub(r"[-_.]+", "-", name): version for name, version in pins.items()}


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("python", ["311", "313"])
@pytest.mark.parametrize("name", sorted(SETS))
def test_each_set_pins_every_declared_dependency_within_its_range(name, python):
    path = REPO / "constraints" / f"{name}-py{python}.txt"
    if name == "workstation" and python == "313":
        assert not path.exists()
        return
    pins = pinned(path)
    environment = {"python_version": f"{python[0]}.{python[1:]}", "sys_platform": "linux",
                   "platform_machine": "x86_64"}  # fmt: skip
    for requirement in declared(SETS[name]):
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name.lower())
        assert key in pins, f"{requirement} is not pinned in {path.name}: run scripts/lock"
        assert requirement.specifier.contains(pins[key], prereleases=True), (
            f"{path.name} pins {key}=={pins[key]}, outside {requirement}: run scripts/lock"
        )


@pytest.mark.timeout(1800)
def test_the_bins_set_installs_hash_checked_on_a_fresh_venv(tmp_path, eval_dir):
    constraints = constraints_file("edge")
    bin_dir = fresh_venv(tmp_path / "venv")
    python = bin_dir / "python"
    # what scripts/setup and docs/raspberry-pi.md run, from the wheelhouse instead of PyPI
    wheels = str(wheelhouse(constraints))
    hashed = ("--require-hashes", "-r", str(constraints))
    # --no-compile: no .pyc up front (minutes of CPU on a small machine); it changes nothing installed
    pip(python, "install", "-q", "--no-compile", "--no-index", "--find-links", wheels, *hashed)
    pip(python, "install", "-q", "--no-deps", "--no-index", str(ecolens_wheel(tmp_path / "wheel")))
    pip(python, "check")  # ecolens[edge]'s requirements are all met by the pinned set
    listed = json.loads(pip(python, "list", "--format=json").stdout)
    versions = {re.sub(r"[-_.]+", "-", p["name"].lower()): p["version"] for p in listed}
    for name, version in pinned(constraints).items():
        assert versions.get(name) == version, (name, versions.get(name), version)
    image = next((eval_dir / "plastic").glob("*.jpg"))
    done = subprocess.run(
        [str(bin_dir / "ecolens"), "classify", str(image)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and json.loads(done.stdout)["label"] == "plastic", done.stderr[-2000:]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_a_pi_finds_every_pinned_wheel_of_the_bins_set(python):
    """Raspberry Pi OS bookworm (3.11) and trixie (3.13) on aarch64: every pin of the bins' set
    exists as a binary wheel for that Python and machine, with one of its pinned hashes (pip
    refuses anything else); a pin with no aarch64 wheel would make the Pi guide's install build
    from source or fail. The files are fetched from the package index once and kept."""
    from tests.support.cleanvenv import PI_PLATFORMS

    constraints = REPO / "constraints" / f"edge-py{python.replace('.', '')}.txt"
    folder = wheelhouse(constraints, (python, PI_PLATFORMS))
    wheels = [p.name for p in folder.glob("*.whl")]
    assert len(wheels) == len(pinned(constraints)), sorted(wheels)
    cp = f"cp{python.replace('.', '')}"
    (litert,) = [w for w in wheels if w.startswith("ai_edge_litert-")]
    assert f"-{cp}-{cp}-" in litert and litert.endswith("_aarch64.whl"), litert
