"""The wheels an arm64 board installs: the project's own wheel, built from this checkout, and
the real aarch64 wheels of the edge extra, downloaded from the package index.

The runtime packages whose arithmetic decides a score (NumPy, OpenCV, Pillow, LiteRT) are
pinned to the versions installed on this x86 host, so an emulated run differs from the host
run by the CPU architecture alone. The downloaded wheelhouse is cached under a key made of the
project's requirements, those pins and the target Python, so warm runs need no network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tests.arm64.cache import cache_dir, locked
from tests.arm64.rootfs import HarnessError

REPO = Path(__file__).resolve().parents[2]
EXTRA = "edge"
# ai-edge-litert 2.x is tagged only manylinux_2_27; the others carry their own tags.
PLATFORMS = (
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
)
NUMERIC_PACKAGES = ("numpy", "opencv-python-headless", "pillow", "ai-edge-litert")
READY_STAMP = ".ecolens-wheelhouse"


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of aarch64 wheels for one Python version (the project's wheel excluded)."""

    path: Path
    key: str
    pins: dict[str, str]


def build_project_wheel(out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of this checkout, as a release would build it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("ecolens-*.whl"):
        old.unlink()
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out_dir)]
    done = subprocess.run([*command, str(REPO)], capture_output=True, text=True)
    wheels = sorted(out_dir.glob("ecolens-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise HarnessError(f"building the project wheel failed:\n{done.stderr[-3000:]}")
    return wheels[0]


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return sorted(line for line in text.splitlines() if line.startswith("Requires-Dist:"))


def host_pins() -> dict[str, str]:
    """Versions of the numeric runtime packages installed next to this interpreter."""
    try:
        return {name: metadata.version(name) for name in NUMERIC_PACKAGES}
    except metadata.PackageNotFoundError as exc:
        raise HarnessError(f"install the edge runtime on the host first: {exc}") from exc


def _download(wheel: Path, python_version: str, pins: dict[str, str], dest: Path) -> None:
    constraints = dest / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += ["--python-version", python_version, "--implementation", "cp"]
    command += ["--abi", abi, "--abi", "abi3", "--abi", "none", "-c", str(constraints)]
    command += ["-d", str(dest), f"ecolens[{EXTRA}] @ {wheel.as_uri()}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(
            f"pip download of aarch64 wheels for Python {python_version} failed:\n{done.stderr[-3000:]}"
        )
    for own in dest.glob("ecolens-*.whl"):
        own.unlink()  # the project wheel is installed from the fresh build every run


def ensure_wheelhouse(project_wheel: Path, python_version: str) -> Wheelhouse:
    """The cached aarch64 wheelhouse for ``python_version``, downloaded first if absent."""
    pins = host_pins()
    identity = {
        "requires": wheel_requirements(project_wheel),
        "extra": EXTRA,
        "pins": pins,
        "python": python_version,
        "platforms": PLATFORMS,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "wheels" / f"py{python_version}-{key}"
    if (path / READY_STAMP).is_file():
        return Wheelhouse(path, key, pins)
    with locked(f"wheels-{key}"):
        if not (path / READY_STAMP).is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f"{path.name}.partial-", dir=path.parent))
            try:
                _download(project_wheel, python_version, pins, partial)
                (partial / READY_STAMP).write_text(json.dumps(identity, indent=2))
                shutil.rmtree(path, ignore_errors=True)
                partial.rename(path)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return Wheelhouse(path, key, pins)
