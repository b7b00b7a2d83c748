"""Runs arm64 programs of a root filesystem with ``qemu-aarch64-static`` (user mode, no binfmt).

``-L PREFIX`` makes qemu look up every absolute path the program opens under PREFIX first and
on the host second: the dynamic loader and shared libraries come from the arm64 root, while
the repository, the model and the sample images are read from where they lie on the host.

Each Raspberry Pi profile pairs qemu's CPU model with the ``/proc/cpuinfo`` that board shows.
LiteRT (through the cpuinfo library) reads that file to pick its kernels; under qemu it would
otherwise see the host's x86 description and abort while creating the interpreter. The file is
provided by a per-profile prefix (symlinks to the root plus its own ``proc/cpuinfo``), so the
product itself needs no workaround and two profiles can share one root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.arm64.cache import cache_dir
from tests.arm64.rootfs import HarnessError, RootFs

QEMU = "qemu-aarch64-static"
# The root's folders an arm64 program must see instead of the host's (loader, libraries, /etc).
SYSTEM_FOLDERS = ("usr", "bin", "sbin", "lib", "lib64", "etc")


def _cpuinfo(features: str, variant: str, part: str, revision: str, model: str, rev: str) -> str:
    core = (
        "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
        "CPU part\t: {part}\nCPU revision\t: {revision}\n\n"
    )
    cores = "".join(
        core.format(n=n, features=features, variant=variant, part=part, revision=revision) for n in range(4)
    )
    return f"{cores}Revision\t: {rev}\nSerial\t\t: 10000000ec01e5e5\nModel\t\t: {model}\n"


@dataclass(frozen=True)
class PiProfile:
    """A Raspberry Pi as the emulated program sees it: qemu CPU model and /proc/cpuinfo."""

    name: str
    qemu_cpu: str
    cpuinfo: str


PI4 = PiProfile(
    "pi4",
    "cortex-a72",
    _cpuinfo(
        "fp asimd evtstrm crc32 cpuid",
        "0x0",
        "0xd08",
        "3",
        "Raspberry Pi 4 Model B Rev 1.4",
        "d03114",
    ),
)
PI5 = PiProfile(
    "pi5",
    "cortex-a76",
    _cpuinfo(
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "0x4",
        "0xd0b",
        "1",
        "Raspberry Pi 5 Model B Rev 1.0",
        "d04170",
    ),
)
PROFILES = {profile.name: profile for profile in (PI4, PI5)}


def qemu_binary() -> str:
    found = shutil.which(QEMU)
    if not found:
        raise HarnessError(f"{QEMU} not found: apt-get install -y qemu-user-static")
    return found


def profile_prefix(rootfs: RootFs, profile: PiProfile) -> Path:
    """A qemu ``-L`` prefix: the root's system folders as symlinks, plus the board's
    ``proc/cpuinfo``. Rewritten on every call, so it always matches the profile.

    Only folders that must never come from the host are linked: a link for /root or /tmp
    would make ``realpath()`` of a host path such as /tmp/x resolve into the root (qemu
    answers lstat("/tmp") with the link), where the file does not exist.
    """
    prefix = cache_dir() / "prefix" / f"{rootfs.suite}-{profile.name}"
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "proc").mkdir(parents=True)
    for name in SYSTEM_FOLDERS:
        if os.path.lexists(rootfs.path / name):
            (prefix / name).symlink_to(rootfs.path / name)
    (prefix / "proc" / "cpuinfo").write_text(profile.cpuinfo)
    return prefix


class Emulator:
    """Runs arm64 executables of ``rootfs`` as the board ``profile``."""

    def __init__(self, rootfs: RootFs, profile: PiProfile) -> None:
        self.rootfs = rootfs
        self.profile = profile
        self.qemu = qemu_binary()
        self.prefix = profile_prefix(rootfs, profile)

    def command(self, executable: Path, *args: str | os.PathLike[str]) -> list[str]:
        """The host command line that runs ``executable args...`` under emulation."""
        return [
            self.qemu,
            "-L",
            str(self.prefix),
            "-cpu",
            self.profile.qemu_cpu,
            str(executable),
            *(str(arg) for arg in args),
        ]

    def environment(self) -> dict[str, str]:
        """What a login shell on the board would have, so nothing of the host's Python setup
        (PYTHONPATH, virtualenv, pip config) leaks into the emulated program."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.rootfs.path / "root"),
            "LANG": "C.UTF-8",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
        }

    def run(
        self,
        executable: Path,
        *args: str | os.PathLike[str],
        timeout: float = 600,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion and capture output; ``check`` raises with the output on failure."""
        done = subprocess.run(
            self.command(executable, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(),
            cwd=cwd,
        )
        if check and done.returncode != 0:
            raise HarnessError(
                f"arm64 command failed ({done.returncode}): {' '.join(done.args)}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
            )
        return done
