"""The fleet's front door: one object that starts the aggregator and everything that runs beside
it (the samples subscriber, canary supervision, the dashboard with the labelling page), in a
fixed order, and stops them again. `ecolens aggregate` only turns flags into a FleetConfig and
calls :meth:`FleetService.run`, as `run` and `serve` do for the daemon and the API.

Start-up: signing key -> ingest modules -> dashboard keys and exposure -> database schema ->
(one line) samples -> aggregator -> canary -> dashboard -> "aggregating ..." on stderr. Every
check comes before anything starts, so a refused start stays one line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecolens.core.errors import EcoLensError
from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore
from ecolens.core.http.webserver import BackgroundServer
from ecolens.fleet.canary.keys import read_signing_key
from ecolens.fleet.canary.supervisor import CanarySupervisor
from ecolens.fleet.client_ids import client_ids, state_folder
from ecolens.fleet.config import FleetConfig
from ecolens.fleet.labelling import labelling_blueprint
from ecolens.fleet.samples.store import DEFAULT_BIN_MAX_FILES, DEFAULT_MAX_MB, SampleStore
from ecolens.fleet.samples.subscriber import SampleSubscriber
from ecolens.fleet.storage import open_database
from ecolens.fleet.subscriber import Aggregator
from ecolens.fleet.web import create_app

if TYPE_CHECKING:
    from ecolens.fleet.rollout.publish import Connection, Opener

log = logging.getLogger("ecolens.fleet")


def require_ingest_modules() -> None:
    """Import now what the writer thread needs for every message, so that a missing extra
    fails at start with the pip command (the CLI maps ModuleNotFoundError), not on the first
    message inside a thread."""
    import ecolens.core.mqtt.client  # noqa: F401 - paho
    import jsonschema  # noqa: F401
    from ecolens.core.contract import _result_validator

    _result_validator()


def canary_supervisor(config: FleetConfig, connect: Opener) -> CanarySupervisor:
    """Judges the staged rollouts recorded in the database; signs rollbacks with the key and
    publishes them on ``connect``'s connection (the aggregator's)."""
    key_file = config.rollout.key_file
    key = read_signing_key(key_file) if key_file is not None else None
    url = config.storage.url
    return CanarySupervisor(
        lambda: open_database(url, migrate=False),
        connect,
        config.subscriber.prefix,
        key,
        config.rollout.check_interval_s,
        manifest_ttl_s=config.rollout.manifest_ttl_s,
    )


@dataclass(frozen=True)
class SampleQuotas:
    """`ecolens aggregate`'s --samples-max-mb, --samples-bin-max-mb, --samples-bin-max-files."""

    max_mb: int | None = None
    bin_max_mb: int | None = None
    bin_max_files: int | None = None


class FleetService:
    """The aggregator with its samples, canary supervision and dashboard, as one service."""

    def __init__(
        self, config: FleetConfig, samples_dir: Path | None = None, samples_quotas: SampleQuotas | None = None
    ) -> None:
        self.config = config
        self.samples_dir = samples_dir
        self.samples_quotas = samples_quotas or SampleQuotas()
        self.aggregator: Aggregator | None = None
        self.canary: CanarySupervisor | None = None
        self.samples: SampleSubscriber | None = None
        self.server: BackgroundServer | None = None
        self._stop = threading.Event()

    @property
    def failure(self) -> str | None:
        """Why the aggregator's writer died (the process must exit non-zero), or None."""
        return self.aggregator.failure if self.aggregator is not None else None

    def _open_database(self) -> Any:
        return open_database(self.config.storage.url, migrate=False)

    def start(self) -> FleetService:
        """Check everything, then start the parts; raises with one clear line if refused."""
        config = self.config
        url = config.storage.url
        # A key others may read stops the start here. Rollbacks go out on the aggregator's
        # connection: the shipped broker allows one connection per user (use_username_as_clientid).
        canary = canary_supervisor(config, self.shared_connection)
        require_ingest_modules()
        keys = None
        if config.http.enabled:
            keys = KeyStore.from_settings(config.auth)
            check_exposure(config.http, keys.enabled, "the dashboard", "http")
        open_database(url).close()  # create/migrate the schema once, with a clear error if unusable
        ids = client_ids(state_folder(url), config.mqtt.client_id)  # unguessable, kept across restarts
        # Said only once every check passed: a refused start stays one line.
        log.info(
            "canary supervision every %.0f s, %s",
            config.rollout.check_interval_s,
            f"rolling back with {config.rollout.key_file}"
            if config.rollout.key_file is not None
            else "without a key (worse canaries are only logged)",
        )
        self.aggregator = Aggregator(
            config.mqtt,
            config.subscriber,
            self._open_database,
            client_id=ids["aggregator"],
            retention=config.storage,
        )
        self.samples = self._samples(self.aggregator)
        self.aggregator.start()
        self.canary = canary.start()
        if keys is not None:
            try:
                self.server = self._start_dashboard(keys)
            except Exception:
                self.canary.stop()
                self.aggregator.stop()
                raise
            log.info(
                "dashboard and API on %s://%s:%d/", self.server.scheme, config.http.host, self.server.port
            )
        print(
            f"aggregating {config.subscriber.prefix}/+/result into {url.split('@')[-1]}"
            + (
                f" (dashboard {self.server.scheme}://{config.http.host}:{self.server.port}/)"
                if self.server
                else ""
            ),
            file=sys.stderr,
            flush=True,
        )
        return self

    def shared_connection(self, name: str) -> Connection:
        """The aggregator's running connection for a canary step (``name``: rollback, refresh)."""
        from ecolens.fleet.rollout.publish import SharedConnection  # paho: checked at start

        assert self.aggregator is not None, "start() first"
        return SharedConnection(self.aggregator.client)

    def _samples(self, aggregator: Aggregator) -> SampleSubscriber | None:
        """The bins' samples for labelling (``samples_dir``) on the aggregator's connection, or None."""
        if self.samples_dir is None:
            return None
        quotas, mb = self.samples_quotas, 1024**2
        store = SampleStore(
            self.samples_dir,
            max_bytes=(quotas.max_mb or DEFAULT_MAX_MB) * mb,
            bin_max_bytes=quotas.bin_max_mb * mb if quotas.bin_max_mb else None,
            bin_max_files=quotas.bin_max_files or DEFAULT_BIN_MAX_FILES,
        )
        return SampleSubscriber(self.config.subscriber.prefix, store).attach(aggregator)

    def _start_dashboard(self, keys: KeyStore) -> BackgroundServer:
        """The dashboard and JSON API, with the labelling page when samples are received."""
        aggregator, canary = self.aggregator, self.canary
        assert aggregator is not None and canary is not None

        def ingest_stats() -> dict[str, Any]:
            return {**aggregator.stats.snapshot(), "canary": canary.stats.snapshot()}

        app = create_app(self._open_database, self.config.report, ingest_stats, keys)
        if self.samples is not None:
            app.register_blueprint(labelling_blueprint(self.samples.store))
        return BackgroundServer(app, self.config.http).start()

    def wait(self) -> None:
        """Block until :meth:`request_stop` or until the aggregator's writer dies."""
        failed = self.aggregator.failed if self.aggregator is not None else threading.Event()
        while not self._stop.wait(0.5) and not failed.is_set():
            pass

    def request_stop(self) -> None:
        """Make :meth:`wait` return (safe from a signal handler)."""
        self._stop.set()

    def run_until_signal(self) -> None:
        """Block until SIGINT or SIGTERM (systemd stop), or until the writer dies."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.request_stop())
        self.wait()

    def stop(self) -> None:
        """Stop the parts, the dashboard first; log what was stored."""
        if self.server is not None:
            self.server.stop()
        if self.canary is not None:
            self.canary.stop()
        if self.aggregator is not None:
            self.aggregator.stop()
        if self.aggregator is not None:
            stats = self.aggregator.stats.snapshot()
            log.info(
                "stopped: %d stored, %d duplicates, %d rejected, %d status messages",
                stats["stored"],
                stats["duplicates"],
                stats["rejected"],
                stats["statuses"],
            )

    def run(self) -> int:
        """Start, serve until a signal, stop; non-zero (EcoLensError) when the writer died, so
        systemd restarts it and the broker resends what is unacked."""
        self.start()
        try:
            self.run_until_signal()
        finally:
            self.stop()
        if self.failure:
            raise EcoLensError(self.failure)
        return 0
