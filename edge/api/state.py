"""What every request of one worker shares: built once by ``app.create_app``, read by the
middlewares (as their arguments) and the endpoints (``request_io.state_of``)."""

from __future__ import annotations

from dataclasses import dataclass

from ecolens.core.http.keys import KeyStore
from ecolens.edge.api.access_log import AccessLog
from ecolens.edge.api.auth import ClientFilter
from ecolens.edge.api.inference import InferencePool
from ecolens.edge.api.model_holder import ModelHolder
from ecolens.edge.api.ratelimit import RateLimit
from ecolens.edge.api.settings import ApiConfig


@dataclass
class ApiState:
    """What every request of this worker shares."""

    config: ApiConfig
    keys: KeyStore
    clients: ClientFilter
    rate: RateLimit
    access_log: AccessLog
    holder: ModelHolder
    pool: InferencePool
