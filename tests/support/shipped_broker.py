"""The shipped broker configuration (systemd/mosquitto) installed by its own script into a
scratch /etc/mosquitto and run by a real Mosquitto on free ports (install.sh needs root)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
from ecolens.bench.mosquitto import free_port, mosquitto_binary
from ecolens.bench.postgres import wait_until

from tests.test_daemon_tls import make_pki

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "systemd" / "mosquitto" / "install.sh"
PASSWORDS = {
    "ecolens-aggregator": "agg-secret",
    "ecolens-rollout": "rollout-secret",
    "bin-1": "one-secret",
    "bin-2": "two-secret",
}


class ShippedBroker:
    """Mosquitto reading the installed conf.d/ecolens.conf, on free ports."""

    def __init__(self, root: Path, passwords: dict[str, str] | None = None, extra_acl: str = "") -> None:
        self.root = root
        self.passwords = PASSWORDS if passwords is None else passwords
        self.extra_acl = extra_acl  # test-only users appended to the installed ACL
        self.etc = root / "etc"
        self.tls_port, self.plain_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def install(self) -> subprocess.CompletedProcess:
        self.etc.mkdir(parents=True)
        (self.root / "data").mkdir()
        (self.etc / "mosquitto.conf").write_text(
            f"persistence_location {self.root}/data/\nlog_dest file {self.root}/mosquitto.log\n"
            f"log_type all\nuser root\ninclude_dir {self.etc}/conf.d\n"
        )
        pki = make_pki(self.root / "pki")
        (self.etc / "certs").mkdir()
        shutil.copy(pki["server.crt"], self.etc / "certs" / "ecolens-broker.crt")
        shutil.copy(pki["server.key"], self.etc / "certs" / "ecolens-broker.key")
        self.ca_file = pki["ca.crt"]
        done = subprocess.run(
            ["sh", str(INSTALL), "--etc", str(self.etc), "--no-restart"], capture_output=True, text=True
        )
        if self.extra_acl:
            with (self.etc / "ecolens.acl").open("a") as acl:
                acl.write("\n" + self.extra_acl)
        for user, password in self.passwords.items():
            subprocess.run(
                ["sh", str(INSTALL), "--etc", str(self.etc), "--add-user", user],
                input=f"{password}\n{password}\n", capture_output=True, text=True, check=True,
            )  # fmt: skip
        conf = self.etc / "conf.d" / "ecolens.conf"
        text = conf.read_text().replace("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n")
        conf.write_text(text.replace("listener 1883 127.0.0.1\n", f"listener {self.plain_port} 127.0.0.1\n"))
        return done

    def start(self) -> ShippedBroker:
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.etc / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_until(listening, timeout=10)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self, user: str | None, password: str | None = None) -> tuple[mqtt.Client, object]:
        """A bin's client over the TLS listener; returns it with its CONNACK reason code."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            client.username_pw_set(user, password)
        client.tls_set(ca_certs=str(self.ca_file))
        answer: list = []
        client.on_connect = lambda c, u, f, reason, p: answer.append(reason)
        client.connect("127.0.0.1", self.tls_port)
        client.loop_start()
        assert wait_until(lambda: bool(answer), timeout=10)
        return client, answer[0]


OBSERVERS = ("observer-1", "observer-2", "observer-3")
ATTACKER = "ecolens-rollout"  # the broker user who may write every manifest and chunk, without the key


class FleetBroker(ShippedBroker):
    """The shipped configuration with a broker user per actor, as a real fleet has them: each bin
    (user = device id), the aggregator, `ecolens rollout`, and test-only readers of everything
    (one user each: the broker makes the user name the client id). Attacks use ATTACKER's
    credentials, the strongest short of the signing key."""

    def __init__(self, root: Path, bins: tuple[str, ...]) -> None:
        users = (*bins, "ecolens-aggregator", ATTACKER, *OBSERVERS)
        readers = "".join(f"user {name}\ntopic read ecolens/#\n" for name in OBSERVERS)
        super().__init__(root, {user: f"{user}-pw" for user in users}, readers)
        self._free_observers = list(OBSERVERS)

    @property
    def port(self) -> int:
        return self.plain_port

    def url_for(self, user: str) -> str:
        """The broker URL with ``user``'s credentials (the loopback listener, as on the fleet host)."""
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.plain_port}"

    def auth(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]

    def observer(self) -> tuple[str, str]:
        """Credentials of a reader nobody else uses."""
        return self.auth(self._free_observers.pop(0))
