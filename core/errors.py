"""Typed errors, so every transport (CLI, MQTT, HTTP) can map them to one clear message."""

from __future__ import annotations


class EcoLensError(Exception):
    """Base of every error that carries a user-facing message (no traceback needed)."""


class ModelError(EcoLensError):
    """The model file is missing, corrupt, or lacks the metadata the edge needs."""


class ImageError(EcoLensError):
    """The bytes are not a decodable image."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed (decompression-bomb guard)."""


class ConfigError(EcoLensError):
    """A configuration file, environment override or flag is invalid."""


class MissingDependencyError(EcoLensError):
    """An optional extra is needed for this command but is not installed."""
