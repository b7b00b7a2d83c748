"""What runs on a bin: the daemon (camera -> MQTT) and the local HTTP API.

Nothing in this package may import TensorFlow: a device installs only the edge runtime.
"""
