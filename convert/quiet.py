"""TensorFlow, absl and the TFLite converter print many lines per run to stderr (some from C++,
past Python's reach): silenced unless -v, so the converter's own lines stay readable."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


def silence_python_logs() -> None:
    """Before TensorFlow is imported: C++ log level, Python warnings and loggers."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    warnings.filterwarnings("ignore")
    for name in ("tensorflow", "absl", "keras", "tf_keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


@contextlib.contextmanager
def native_output_silenced(enabled: bool = True) -> Iterator[None]:
    """Send file descriptors 1 and 2 to a scratch file while TensorFlow's C++ code runs."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def import_tensorflow_quietly() -> None:
    """TensorFlow 2.2x announces oneDNN, missing CUDA drivers and a failed cuInit from C++ on
    import and first use, whatever TF_CPP_MIN_LOG_LEVEL says: imported and its devices listed
    once here, with those lines silenced (`ecolens train` without -v)."""
    silence_python_logs()
    with native_output_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
