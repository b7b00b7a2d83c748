"""EcoLens: Keras .h5 -> quantized .tflite -> LiteRT on smart bins, results over MQTT and HTTP.

Layers (ARCHITECTURE.md): ``core`` (shared by everything) <- ``edge`` (a bin) / ``fleet`` (the
server) / ``convert`` (a workstation) <- ``bench`` <- this package's CLI.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecolens")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
