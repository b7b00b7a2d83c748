"""LiteRT's C++ core prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight
to file descriptor 2 on every model load, which Python logging cannot filter. While a model
loads, fd 2 goes to a temporary file; afterwards the known informational lines become debug
log records (shown with ``ecolens -v``) and anything else is written back to stderr unchanged,
so a real native error, or another thread's line, is never lost."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

INFORMATIONAL = re.compile(
    rb"^INFO: (Created TensorFlow Lite .*delegate|Initialized TensorFlow Lite runtime)"
)


@contextmanager
def native_info_to_debug(log: logging.Logger) -> Iterator[None]:
    if log.isEnabledFor(logging.DEBUG):
        yield  # -v: the user asked to see everything as it comes
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters, closed stderr)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().splitlines(keepends=True):
                if INFORMATIONAL.match(line):
                    log.debug("%s", line.decode("utf-8", "replace").strip())
                else:
                    os.write(2, line)
