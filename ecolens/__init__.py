"""EcoLens: Keras .h5 -> quantized .tflite -> LiteRT on smart bins, results over MQTT and HTTP.

Layers (ARCHITECTURE.md): ``core`` (shared by everything) <- ``edge`` (a bin) / ``fleet`` (the
server) / ``convert`` (a workstation) <- ``bench`` <- this package's CLI.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__`` is looked up only when asked for: reading the installed distribution's
    metadata scans sys.path (tens of milliseconds), a cost every `ecolens classify` would pay."""
    if name != "__version__":
        raise AttributeError(f"module 'ecolens' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("ecolens")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
