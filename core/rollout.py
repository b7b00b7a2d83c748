"""Signed model rollout: the manifest a fleet server signs and a bin verifies, and Ed25519
signing (the `cryptography` package). Its topics are built by ``core.wire``.

A manifest names one device and one model (sha256, size, version) and where to fetch it: the
model travels as retained chunks on ``<prefix>/models/<sha256>/<index>`` (one copy on the broker,
whatever the number of bins), the manifest as a retained message on
``<prefix>/<device_id>/model/manifest``. A bin accepts a manifest only when its Ed25519
signature verifies against the public key in its config, it names this bin, its serial is above
every serial the bin accepted before (no replay) and, unless it is a rollback to the bin's own
previous model, the model version is newer than the running one.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from ecolens.core.errors import EcoLensError

MANIFEST_SCHEMA = "ecolens.rollout/1"
CHUNK_BYTES = 256 * 1024  # below the 1 MiB default packet limit of common brokers (EMQX)
ACTIONS = ("install", "rollback")


class RolloutError(EcoLensError):
    """A manifest or key that must not be used, with the reason."""


def version_key(version: str) -> tuple:
    """'1.10.0' > '1.9.2': numeric parts compare as numbers, others as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", version))


@dataclass(frozen=True)
class Manifest:
    device_id: str
    serial: int  # strictly increasing per fleet (milliseconds since the epoch when issued)
    action: str  # "install" or "rollback"
    name: str
    version: str
    sha256: str
    size: int
    chunks: int
    chunk_bytes: int
    fetch: str  # the chunk topic prefix, "<prefix>/models/<sha256>"
    issued: str
    rollout_id: str

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["schema"] = MANIFEST_SCHEMA
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.pop("schema", None) != MANIFEST_SCHEMA:
                raise RolloutError("unknown manifest schema")
            manifest = cls(**data)
        except RolloutError:
            raise
        except (ValueError, TypeError) as exc:
            raise RolloutError(f"malformed manifest: {exc}") from exc
        if manifest.action not in ACTIONS or not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
            raise RolloutError("malformed manifest: unknown action or bad sha256")
        return manifest


# --- keys and signatures ------------------------------------------------------------------------


def generate_keypair() -> tuple[bytes, str]:
    """(private key as PKCS#8 PEM, public key as base64 of its 32 raw bytes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pem, base64.b64encode(raw).decode()


def load_private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise RolloutError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RolloutError("the rollout key must be an Ed25519 key (make one with `ecolens rollout keygen`)")
    return key


def load_public_key(text: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise RolloutError("rollout public key must be the base64 of 32 raw Ed25519 bytes") from exc


def sign(manifest: Manifest, private_key: Any) -> bytes:
    """The envelope published on the manifest topic."""
    body = manifest.to_bytes()
    signature = private_key.sign(body)
    return json.dumps(
        {"manifest": base64.b64encode(body).decode(), "signature": base64.b64encode(signature).decode()}
    ).encode()


def verify(envelope: bytes, public_key: Any) -> Manifest:
    """The manifest inside ``envelope`` if its signature verifies, else RolloutError."""
    from cryptography.exceptions import InvalidSignature

    try:
        data = json.loads(envelope)
        body = base64.b64decode(data["manifest"], validate=True)
        signature = base64.b64decode(data["signature"], validate=True)
    except (ValueError, TypeError, KeyError) as exc:
        raise RolloutError("unsigned or malformed manifest envelope") from exc
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise RolloutError("manifest signature does not verify") from exc
    return Manifest.from_bytes(body)
