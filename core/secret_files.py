"""Opening and creating secret files (the rollout's signing key) so that nobody but their owner
can swap, read or redirect them: one implementation for the aggregator and the CLI.

Why each check: a symbolic link lets whoever planted it choose what is read or overwritten; a key
owned by another user (other than root) is that user's to replace; group or other mode bits let
others read it; a folder others may write lets them replace the file between two runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ecolens.core.errors import EcoLensError

READ_LIMIT = 1 << 20  # a PEM key is a few hundred bytes; a device or a huge file is not a key


class SecretFileError(EcoLensError):
    """A secret file (or its folder) that anyone but its owner could read, swap or redirect."""


def check_folder(folder: Path) -> None:
    """Refuse a folder that users other than its owner (and root) may write into."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        raise SecretFileError(f"cannot read the folder {folder}: {exc.strerror or exc}") from None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SecretFileError(
            f"{folder} may be written by others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"they could replace the key in it; chmod go-w it"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise SecretFileError(
            f"{folder} belongs to another user (uid {info.st_uid}): it could replace the key"
        )


def read_secret(path: Path) -> bytes:
    """The bytes of ``path``, opened without following a link, refused unless it is a regular
    file owned by this process's user (or root) with no group or other permission bits."""
    path = Path(path)
    check_folder(path.parent if str(path.parent) else Path("."))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise SecretFileError(f"{path} is a symbolic link; give the key file itself") from None
        raise SecretFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        if info.st_uid not in (os.geteuid(), 0):
            raise SecretFileError(
                f"{path} belongs to another user (uid {info.st_uid}, this process runs as "
                f"uid {os.geteuid()}): chown it to the user that uses it"
            )
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretFileError(
                f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(READ_LIMIT)
    finally:
        os.close(fd)


def create_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a file that must not exist yet, not even as a link (a planted link
    would send the write elsewhere): O_CREAT | O_EXCL | O_NOFOLLOW."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        kind = "a symbolic link" if os.path.islink(path) else "a file"
        raise SecretFileError(f"{path} exists ({kind}); refusing to overwrite it") from None
    except OSError as exc:
        raise SecretFileError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
