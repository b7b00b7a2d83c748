"""The MQTT client id of this aggregator installation's persistent session (results, samples
and canary rollbacks share it): random once, then kept in its state folder.

Why random: the broker finds a persistent session by its client id alone, and any broker user
who connects with that id takes the session over (Mosquitto drops the queued results its ACL
does not let the newcomer read). ``ecolens-aggregator-<hostname>`` and ``ecolens-samples`` could
be guessed; 128 random bits cannot, and no broker client can read another client's id.

Why kept: a new id is a new, empty session; restarts must find the old one.

The shipped broker configuration goes further (``use_username_as_clientid``: the id is the user
name); this id still protects the session on a broker configured otherwise."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from ecolens.core.errors import ConfigError

FILE_NAME = "mqtt-client-ids.json"
ROLES = ("aggregator",)  # a "samples" id in an older file is left alone, unused


def state_folder(storage_url: str) -> Path:
    """systemd's ``$STATE_DIRECTORY``, else the SQLite database's folder, else the working folder."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if storage_url.startswith("sqlite:///"):
        return Path(storage_url[len("sqlite:///") :]).parent
    return Path.cwd()


def client_ids(folder: Path, configured: str | None = None) -> dict[str, str]:
    """{"aggregator": id}. A configured ``mqtt.client_id`` names the session; otherwise the id
    in ``folder/mqtt-client-ids.json``, made once with 128 random bits and written mode 0600."""
    if configured:
        return {"aggregator": configured}
    path = folder / FILE_NAME
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the MQTT client ids in {path}: {exc}") from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path} is not a JSON object; delete it to make new client ids")
    ids = {role: stored.get(role) for role in ROLES}
    if all(isinstance(value, str) and value for value in ids.values()):
        return ids  # type: ignore[return-value]
    made = {
        role: value if isinstance(value, str) and value else f"ecolens-{role}-{secrets.token_hex(16)}"
        for role, value in ids.items()
    }
    temporary = folder / f".{FILE_NAME}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(made, handle, indent=2)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot keep the MQTT client ids in {path}: {exc.strerror or exc}") from None
    return made  # type: ignore[return-value]
