"""Builds (once, then cached) a minimal Debian arm64 root filesystem that holds Python.

``debootstrap --foreign`` downloads and unpacks the essential packages without running any
arm64 code. Its second stage would have to run arm64 ``dpkg`` inside a chroot, which needs
binfmt_misc; instead the harness unpacks the remaining packages (Python and its venv module)
with the host's ``dpkg-deb``. Package scripts never run, which costs nothing here: the harness
only needs the files, and runs them with ``qemu-aarch64-static -L ROOT``.

    python -m tests.arm64.rootfs bookworm     # build or reuse; prints the root's path
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.arm64.cache import cache_dir, locked

DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "ECOLENS_ARM64_MIRROR"
READY_STAMP = ".ecolens-rootfs"
# Debian's own release names; Python 3.11 on bookworm (Pi OS 12), 3.13 on trixie (Pi OS 13).
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
PACKAGES = ("python3", "python3-venv")


class HarnessError(RuntimeError):
    """Something the arm64 harness needs is missing; the message says how to get it."""


@dataclass(frozen=True)
class RootFs:
    suite: str
    path: Path
    python_version: str

    @property
    def python(self) -> Path:
        return self.path / "usr" / "bin" / f"python{self.python_version}"

    def pip_wheel(self) -> Path:
        """Debian's pip (python3-pip-whl): the same pip `python3 -m venv` gives a Pi user."""
        wheels = sorted((self.path / "usr/share/python-wheels").glob("pip-*.whl"))
        if not wheels:
            raise HarnessError(f"{self.path}: python3-pip-whl is missing")
        return wheels[-1]


def _debian_uris_one_line(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        fields = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(fields) >= 3 and fields[0] == "deb" and "-" not in fields[2]:
            uris.append(fields[1])
    return uris


def _debian_uris_deb822(text: str) -> list[str]:
    uris = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        suites = fields.get("suites", [])
        if "deb" in fields.get("types", []) and any("-" not in suite for suite in suites):
            uris.extend(fields.get("uris", []))
    return uris


def apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt already uses here (``$ECOLENS_ARM64_MIRROR`` wins), so the
    harness reaches the same mirror through the same network path."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    candidates: list[str] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            candidates += _debian_uris_one_line(path.read_text(errors="replace"))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        candidates += _debian_uris_deb822(path.read_text(errors="replace"))
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return DEFAULT_MIRROR


def require_tools() -> None:
    missing = [tool for tool in ("debootstrap", "dpkg-deb", "tar") if not shutil.which(tool)]
    if missing:
        raise HarnessError(f"missing {', '.join(missing)}: apt-get install -y debootstrap qemu-user-static")
    if os.geteuid() != 0:
        raise HarnessError("debootstrap must run as root to build the arm64 root filesystem")


def unpack_deb(deb: Path, root: Path) -> None:
    """Unpack one .deb's files, keeping the root's merged-/usr symlinks (/lib -> usr/lib)."""
    payload = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    unpack = subprocess.run(
        ["tar", "-x", "--keep-directory-symlink", "-C", str(root)],
        stdin=payload.stdout,
        capture_output=True,
        text=True,
    )
    assert payload.stdout is not None
    payload.stdout.close()
    if payload.wait() != 0 or unpack.returncode != 0:
        raise HarnessError(f"cannot unpack {deb.name}: {unpack.stderr.strip()}")


def unpack_base_packages(root: Path) -> None:
    """Unpack what ``--foreign`` only downloaded (the --include packages and their deps)."""
    base = (root / "debootstrap" / "base").read_text().split()
    debpaths = dict(
        line.split(maxsplit=1)
        for line in (root / "debootstrap" / "debpaths").read_text().splitlines()
        if line.strip()
    )
    for package in base:
        unpack_deb(root / debpaths[package].strip().lstrip("/"), root)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()  # unpacked now; the cache keeps only the tree


def debootstrap(suite: str, target: Path, mirror: str) -> None:
    command = [
        "debootstrap",
        "--foreign",
        "--arch=arm64",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        suite,
        str(target),
        mirror,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        log = target / "debootstrap" / "debootstrap.log"
        details = log.read_text(errors="replace")[-2000:] if log.is_file() else done.stdout[-2000:]
        raise HarnessError(f"{' '.join(command)} failed:\n{done.stderr}\n{details}")


def ensure_rootfs(suite: str) -> RootFs:
    """The cached root filesystem for ``suite``, built first if absent or half-built."""
    if suite not in SUITE_PYTHON:
        raise HarnessError(f"unknown suite {suite!r}; known: {', '.join(SUITE_PYTHON)}")
    root = cache_dir() / "rootfs" / suite
    rootfs = RootFs(suite, root, SUITE_PYTHON[suite])
    if (root / READY_STAMP).is_file():
        return rootfs
    with locked(f"rootfs-{suite}"):
        if (root / READY_STAMP).is_file():
            return rootfs  # built by another run while we waited
        require_tools()
        root.parent.mkdir(parents=True, exist_ok=True)
        mirror = apt_mirror()
        partial = Path(tempfile.mkdtemp(prefix=f"{suite}.partial-", dir=root.parent))
        try:
            debootstrap(suite, partial, mirror)
            unpack_base_packages(partial)
            built = RootFs(suite, partial, SUITE_PYTHON[suite])
            if not built.python.is_file():
                raise HarnessError(f"{suite}: {built.python.name} missing after unpacking")
            built.pip_wheel()
            (partial / READY_STAMP).write_text(f"suite={suite}\nmirror={mirror}\n")
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return rootfs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build or reuse a cached Debian arm64 root")
    parser.add_argument("suites", nargs="+", choices=sorted(SUITE_PYTHON))
    args = parser.parse_args(argv)
    try:
        for suite in args.suites:
            print(ensure_rootfs(suite).path)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
