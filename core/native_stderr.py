"""One JSON log stream on stderr, whatever native libraries print to file descriptor 2.

OpenCV's and FFmpeg's C++ loggers (``[ WARN:0@0.565] global cap_v4l.cpp ... can't open camera by
index``) are silenced at their source by ``quiet_native_loggers``: what they would say (a camera
that does not open, a stream that drops) is already a log record of the daemon's own. With
``-v`` they speak again.

LiteRT's C++ core prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight
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


# Read by OpenCV when it first logs and by its FFmpeg backend when it starts (AV_LOG_QUIET = -8);
# a value the user exported wins.
QUIET_NATIVE_ENV = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def quiet_native_loggers(verbose: bool) -> None:
    """Silence OpenCV's and FFmpeg's own stderr lines, unless ``verbose`` (``ecolens -v``)."""
    if verbose:
        return
    for name, value in QUIET_NATIVE_ENV.items():
        os.environ.setdefault(name, value)
    cv2 = sys.modules.get("cv2")  # imported already: its logger read the variable at import
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "SILENT":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


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
