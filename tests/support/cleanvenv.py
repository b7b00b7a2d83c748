"""Clean virtualenvs for install tests, filled only from a local wheelhouse.

The wheelhouse holds the wheels of one hashed constraints file (constraints/*.txt) and is kept
under ~/.cache/ecolens/wheelhouse/, keyed by that file's content: built once (PyPI), reused by
every later run and every xdist worker, so an install test costs an unzip, not a download."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ECOLENS_WHEELHOUSE", Path.home() / ".cache" / "ecolens" / "wheelhouse"))
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


def constraints_file(name: str) -> Path:
    """constraints/<name>-py<this Python>.txt"""
    return REPO / "constraints" / f"{name}-py{sys.version_info[0]}{sys.version_info[1]}.txt"


# A Raspberry Pi OS bin (aarch64): glibc 2.36 (bookworm) and newer; pip takes only the tags it
# is given, so every manylinux level a wheel may carry is named.
PI_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{v}_aarch64" for v in range(17, 37)))


def wheelhouse(constraints: Path, target: tuple[str, tuple[str, ...]] | None = None) -> Path:
    """The folder of wheels pinned by ``constraints`` (hash-checked when they were fetched), for
    this interpreter and machine, or for ``target`` = (Python version "3.13", platform tags)."""
    key = hashlib.sha256(constraints.read_bytes()).hexdigest()[:16]
    where = f"-{target[0]}-{target[1][-1]}" if target else ""
    folder = CACHE / f"{constraints.stem}-{key}{where}"
    if (folder / ".complete").exists():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building the same one
        if not (folder / ".complete").exists():
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            # --only-binary: the files are PyPI's own, so their hashes are the pinned ones
            cross = ["--python-version", target[0], "--implementation", "cp"] if target else []
            for platform in target[1] if target else ():
                cross += ["--platform", platform]
            pip(sys.executable, "download", "--only-binary=:all:", "--require-hashes", "--no-deps",
                *cross, "-r", str(constraints), "-d", str(partial), timeout=1800)  # fmt: skip
            (partial / ".complete").touch()
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
    return folder


def plain_pins(constraints: Path, into: Path) -> Path:
    """``constraints`` without its hashes: pip takes hashes only in requirements files."""
    text = re.sub(r"\s*\\\n\s*--hash=sha256:[0-9a-f]+", "", constraints.read_text())
    into.write_text(text)
    return into


def ecolens_wheel(into: Path) -> Path:
    """This checkout as a wheel, built without the network (setuptools of the running venv)."""
    pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "-w", str(into), str(REPO), timeout=600)
    (wheel,) = into.glob("ecolens-*.whl")
    return wheel


def pip(python: str | Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(python), *PIP, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"pip {' '.join(args[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done


def fresh_venv(folder: Path) -> Path:
    """A new venv that sees nothing of this one; returns its bin/ folder."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin"


def install_extra(folder: Path, wheel: Path, extras: str, constraints: Path) -> Path:
    """A fresh venv with ``ecolens[extras]`` from the wheelhouse only (no index): what the extra
    declares, at the release's pins, and nothing else. uv installs it (seconds, where pip takes
    minutes on a busy two-core machine); which installer fills the venv does not change what
    the extra declares, and test_constraints.py installs with pip as the docs do."""
    from uv import find_uv_bin

    uv = find_uv_bin()
    run([uv, "venv", "-q", "--python", sys.executable, str(folder)])
    pins = plain_pins(constraints, folder / "pins.txt")
    run([uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python"), "--offline", "--no-index",
         "--find-links", str(wheelhouse(constraints)), "-c", str(pins), f"{wheel}[{extras}]"])  # fmt: skip
    return folder / "bin"


def run(argv: list[str], timeout: float = 900) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
