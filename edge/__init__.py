"""EcoLens edge runtime: preprocessing, the result contract and on-device inference.

Nothing in this package may import TensorFlow: a device installs only the edge runtime.
"""

__version__ = "0.1.0"
