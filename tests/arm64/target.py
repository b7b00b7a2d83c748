"""An emulated Raspberry Pi with EcoLens installed: a venv inside the arm64 root, created by
the root's own Python and filled by Debian's pip from the aarch64 wheelhouse, as an installer
on the board would do (``python3 -m venv`` + ``pip install ecolens[edge]``).

The venv with the dependencies is cached per wheelhouse; the project's wheel, rebuilt from
the checkout, is reinstalled into it on every run so the code under test is always current.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.arm64.cache import cache_dir, locked
from tests.arm64.emulator import PI4, PROFILES, Emulator
from tests.arm64.rootfs import RootFs, ensure_rootfs
from tests.arm64.wheels import EXTRA, Wheelhouse, build_project_wheel, ensure_wheelhouse

READY_STAMP = ".ecolens-deps"


@dataclass
class Target:
    """One suite (Python version) on one board profile, with the project installed."""

    emulator: Emulator
    venv: Path
    wheelhouse: Wheelhouse

    @property
    def name(self) -> str:
        """``bookworm-pi4``: the suite and the board, as the test ids name them."""
        return f"{self.emulator.rootfs.suite}-{self.emulator.profile.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def python_run(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.emulator.run(self.python, *args, **kwargs)

    def ecolens(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        """Run the installed ``ecolens`` console script (qemu runs ELF files only, so its
        interpreter is named explicitly; the script itself is pip's generated one)."""
        return self.emulator.run(self.python, self.venv / "bin" / "ecolens", *args, **kwargs)

    def ecolens_command(self, *args: str) -> list[str]:
        """The host command line of ``ecolens ARGS`` on the board, for long-running services
        (start it with ``env=target.emulator.environment()``)."""
        return self.emulator.command(self.python, self.venv / "bin" / "ecolens", *args)

    def pip(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        """Debian's pip, run from its wheel (venvs made --without-pip; ensurepip would spawn
        a second arm64 process, which user-mode qemu without binfmt cannot start)."""
        pip = self.emulator.rootfs.pip_wheel() / "pip"
        return self.emulator.run(self.python, pip, *args, **kwargs)


def _create_venv(rootfs: RootFs, venv: Path) -> None:
    """An empty venv made by the root's own Python (what ``python3 -m venv`` does on a Pi)."""
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    Emulator(rootfs, PI4).run(rootfs.python, "-m", "venv", "--without-pip", venv)


def _install(target: Target, project_wheel: Path, fresh: bool) -> None:
    links = ["--no-index", "--find-links", str(target.wheelhouse.path)]
    links += ["--find-links", str(project_wheel.parent)]
    if fresh:
        # --no-compile: byte-compiling every module of numpy, OpenCV and the rest under qemu made
        # the cold install 110 s instead of 39 s; the modules a run imports compile on first import.
        target.pip("install", "-q", "--no-compile", *links, f"ecolens[{EXTRA}]", timeout=900)
        target.pip("check")
        (target.venv / READY_STAMP).write_text(target.wheelhouse.key)
    else:
        target.pip("install", "-q", "--no-compile", "--no-deps", "--force-reinstall", *links, project_wheel)


@cache
def install_suite(suite: str) -> tuple[RootFs, Path, Wheelhouse]:
    """Root, venv and wheelhouse of ``suite`` with this checkout installed; once per process
    (both boards of a suite share the venv)."""
    rootfs = ensure_rootfs(suite)
    project_wheel = build_project_wheel(cache_dir() / "project" / suite)
    wheelhouse = ensure_wheelhouse(project_wheel, rootfs.python_version)
    venv = rootfs.path / "opt" / "ecolens" / "venv"
    with locked(f"venv-{suite}"):
        stamp = venv / READY_STAMP
        fresh = not (stamp.is_file() and stamp.read_text() == wheelhouse.key)
        if fresh:
            _create_venv(rootfs, venv)
        _install(Target(Emulator(rootfs, PI4), venv, wheelhouse), project_wheel, fresh)
    return rootfs, venv, wheelhouse


def prepare_target(suite: str, profile_name: str) -> Target:
    """Build or reuse everything for ``suite`` on ``profile_name``; returns a ready Target."""
    rootfs, venv, wheelhouse = install_suite(suite)
    return Target(Emulator(rootfs, PROFILES[profile_name]), venv, wheelhouse)


def describe(target: Target) -> dict:
    """What the emulated interpreter reports about itself and the installed runtime."""
    probe = (
        "import json, platform, importlib.metadata as m, ai_edge_litert\n"
        "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),"
        " 'litert_file': ai_edge_litert.__file__,"
        " 'versions': {n: m.version(n) for n in"
        " ('ecolens', 'numpy', 'opencv-python-headless', 'pillow', 'ai-edge-litert')}}))"
    )
    return json.loads(target.python_run("-c", probe).stdout)
