"""Signed model rollout: the manifest a fleet server signs and a bin verifies, and Ed25519
signing (the `cryptography` package). Its topics are built by ``core.wire``.

A manifest names one device and one model (sha256, size, version) and where to fetch it: the
model travels as retained chunks on ``<prefix>/models/<sha256>/<index>`` (one copy on the broker,
whatever the number of bins), the manifest as a retained message on
``<prefix>/<device_id>/model/manifest``. A bin accepts a manifest only when its Ed25519
signature verifies against the public key in its config, it names this bin, its serial is above
every serial the bin accepted before (no replay) and, unless it is a rollback to the bin's own
previous model, the model version is newer than the running one.

Every manifest also carries a signed expiry (TUF's timestamp role): the aggregator that holds the
key re-signs the current ones before they expire, so a bin that was offline while A then B were
pushed cannot be handed A again once A stopped being current (a freeze attack) for longer than
one lifetime. A manifest's work is bounded before anything is parsed: its bytes, its JSON
nesting, and the chunk count its signed size allows.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from ecolens.core.errors import EcoLensError

MANIFEST_SCHEMA = "ecolens.rollout/2"  # 2: signed expiry (expires_ms); a rollback names the revoked model
CHUNK_BYTES = 256 * 1024  # below the 1 MiB default packet limit of common brokers (EMQX)
MAX_MODEL_BYTES = 64 * 1024 * 1024  # no bin takes a larger model
MAX_CHUNKS = MAX_MODEL_BYTES // CHUNK_BYTES  # a signed manifest never makes a bin track more
MAX_ENVELOPE_BYTES = 16 * 1024  # a real envelope is under 2 KiB
MAX_JSON_DEPTH = 8  # a real manifest nests 1 deep, its envelope 1
MAX_CLOCK_SKEW_S = 300.0  # default: a bin's clock may be this far behind the signer's
ACTIONS = ("install", "rollback")


class RolloutError(EcoLensError):
    """A manifest or key that must not be used, with the reason."""


def version_key(version: str) -> tuple:
    """'1.10.0' > '1.9.2': numeric parts compare as numbers, others as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", version))


def json_depth(raw: bytes) -> int:
    """How deep ``raw``'s arrays and objects nest, counted without parsing (brackets inside
    strings are not counted): json.loads recurses, so a deep enough message would otherwise
    end in a RecursionError instead of a refusal."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def bounded_json(raw: bytes, what: str) -> Any:
    """``raw`` parsed, or RolloutError when it is too large or too deep to be a manifest."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise RolloutError(f"{what} of {len(raw)} bytes is over {MAX_ENVELOPE_BYTES}")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise RolloutError(f"{what} nests deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(raw)
    except ValueError as exc:  # also a bad UTF-8 byte (UnicodeDecodeError)
        raise RolloutError(f"malformed {what}: {exc}") from exc


@dataclass(frozen=True)
class Manifest:
    device_id: str
    serial: int  # strictly increasing per fleet (milliseconds since the epoch when issued)
    action: str  # "install" or "rollback" (of the model named here: it is revoked on the bin)
    name: str
    version: str
    sha256: str
    size: int
    chunks: int
    chunk_bytes: int
    fetch: str  # the chunk topic prefix, "<prefix>/models/<sha256>"
    issued: str
    rollout_id: str
    expires_ms: int  # signed expiry; the aggregator re-signs the current manifests before it

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["schema"] = MANIFEST_SCHEMA
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        data = bounded_json(raw, "manifest")
        if not isinstance(data, dict) or data.pop("schema", None) != MANIFEST_SCHEMA:
            raise RolloutError("unknown manifest schema")
        for item in fields(cls):
            value = data.get(item.name)
            wanted = int if item.type == "int" else str
            if type(value) is not wanted:  # bool is not an int here
                raise RolloutError(f"malformed manifest: {item.name} must be {wanted.__name__}")
        try:
            manifest = cls(**data)
        except TypeError as exc:
            raise RolloutError(f"malformed manifest: {exc}") from exc
        if manifest.action not in ACTIONS or not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
            raise RolloutError("malformed manifest: unknown action or bad sha256")
        manifest.check_bounds()
        return manifest

    def check_bounds(self) -> None:
        """Signed is not enough: the work a manifest asks of a bin is bounded whoever signed it."""
        if not 0 <= self.size <= MAX_MODEL_BYTES:
            raise RolloutError(f"manifest's size {self.size} is outside 0..{MAX_MODEL_BYTES} bytes")
        if not 0 <= self.chunks <= MAX_CHUNKS or not 0 <= self.chunk_bytes <= MAX_MODEL_BYTES:
            raise RolloutError(
                f"manifest's {self.chunks} chunks of {self.chunk_bytes} bytes are over the bound "
                f"({MAX_CHUNKS} chunks, {MAX_MODEL_BYTES} bytes)"
            )
        if self.serial < 0 or self.expires_ms < 0:
            raise RolloutError("malformed manifest: negative serial or expiry")

    def check_fresh(self, now_ms: int, skew_ms: int) -> None:
        """RolloutError when expired (beyond the clock skew a bin is allowed)."""
        if now_ms > self.expires_ms + skew_ms:
            from datetime import datetime, timezone

            at = datetime.fromtimestamp(self.expires_ms / 1000, timezone.utc)
            expired = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise RolloutError(
                f"expired manifest (serial {self.serial}, expired {expired}, "
                f"{(now_ms - self.expires_ms) // 1000} s ago; is this bin's clock right?)"
            )


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

    data = bounded_json(envelope, "manifest envelope")
    try:
        body = base64.b64decode(data["manifest"], validate=True)
        signature = base64.b64decode(data["signature"], validate=True)
    except (ValueError, TypeError, KeyError) as exc:
        raise RolloutError("unsigned or malformed manifest envelope") from exc
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise RolloutError("manifest signature does not verify") from exc
    return Manifest.from_bytes(body)
