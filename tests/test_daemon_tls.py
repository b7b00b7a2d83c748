"""TLS + password broker: the daemon gets in with the right credentials, and wrong ones
give a clear log line. Certificates and the password file are made by the test."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from ecolens.bench.mosquitto import MosquittoBroker
from ecolens.core.mqtt import BrokerSection
from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config import load_daemon_config
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection
from ecolens.edge.daemon.mqtt_link import MqttLink
from ecolens.edge.daemon.stats import DaemonStats
from ecolens.edge.daemon.store import ResultQueue


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder: Path) -> dict[str, Path]:
    """CA, a server certificate for 127.0.0.1, a client certificate, all signed by the CA."""
    folder.mkdir()
    p = {
        n: folder / n
        for n in ("ca.key", "ca.crt", "server.key", "server.crt", "client.key", "client.crt", "san.cnf")
    }
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=EcoLens test CA",
        "-keyout",
        str(p["ca.key"]),
        "-out",
        str(p["ca.crt"]),
    )
    p["san.cnf"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "bin-tls")):
        csr = folder / f"{name}.csr"
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(p[f"{name}.key"]),
            "-out",
            str(csr),
        )
        extra = ["-extfile", str(p["san.cnf"])] if name == "server" else []
        openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(p["ca.crt"]),
            "-CAkey",
            str(p["ca.key"]),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(p[f"{name}.crt"]),
            *extra,
        )
    return p


@pytest.fixture
def secure_broker(tmp_path):
    pki = make_pki(tmp_path / "pki")
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "bin-tls", "s3cret"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o600)
    broker = MosquittoBroker(
        tmp_path / "broker",
        allow_anonymous=False,
        extra_config=[
            f"password_file {passwords}",
            f"cafile {pki['ca.crt']}",
            f"certfile {pki['server.crt']}",
            f"keyfile {pki['server.key']}",
            "require_certificate true",
        ],
    ).start()
    try:
        yield broker, pki
    finally:
        broker.stop()


def tls_overrides(broker, pki, password: str) -> dict:
    return {
        "mqtt.port": broker.port,
        "mqtt.tls": True,
        "mqtt.ca_file": str(pki["ca.crt"]),
        "mqtt.cert_file": str(pki["client.crt"]),
        "mqtt.key_file": str(pki["client.key"]),
        "mqtt.username": "bin-tls",
        "mqtt.password": password,
    }


def test_tls_and_password_broker_accepts_the_daemon(tmp_path, secure_broker, reference_model, eval_dir):
    broker, pki = secure_broker
    overrides = {
        **tls_overrides(broker, pki, "s3cret"),
        "source.uri": str(next(eval_dir.glob("plastic"))),
        "model.path": str(reference_model),
        "publish.device_id": "bin-tls",
        "store.path": str(tmp_path / "q.sqlite3"),
    }
    daemon = Daemon(load_daemon_config(None, overrides, environ={}))
    daemon.run(install_signals=False)
    images = len(list((eval_dir / "plastic").glob("*.jpg")))
    assert daemon.stats.published == images  # every result acknowledged over TLS
    assert "bin-tls" in broker.log() and "ecolens/bin-tls/result" in broker.log()


def link(tmp_path, broker_section: BrokerSection) -> MqttLink:
    store = ResultQueue(tmp_path / "q.sqlite3")
    return MqttLink(
        broker_section,
        PublishSection(device_id="bin-tls"),
        store,
        DaemonStats(),
        HomeAssistantSection(),
        lambda: {},
    )


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_wrong_password_is_rejected_with_a_clear_log_line(tmp_path, secure_broker, caplog):
    broker, pki = secure_broker
    section = BrokerSection(**{k[5:]: v for k, v in tls_overrides(broker, pki, "wrong").items()})
    mqtt_link = link(tmp_path, section)
    with caplog.at_level(logging.ERROR):
        mqtt_link.start()
        assert wait_for(lambda: mqtt_link.auth_failures >= 1, 10)
        mqtt_link.stop(0)
    assert not mqtt_link.connected.is_set()
    assert "refused the connection: Not authorized (check mqtt.username and mqtt.password)" in (caplog.text)


def test_untrusted_broker_certificate_is_reported_clearly(tmp_path, secure_broker, caplog):
    broker, pki = secure_broker
    other = make_pki(tmp_path / "other")
    settings = {k[5:]: v for k, v in tls_overrides(broker, pki, "s3cret").items()}
    settings["ca_file"] = str(other["ca.crt"])
    mqtt_link = link(tmp_path, BrokerSection(**settings))
    with caplog.at_level(logging.ERROR):
        mqtt_link.start()
        assert wait_for(lambda: "TLS certificate check failed" in caplog.text, 10)
        mqtt_link.stop(0)
    assert "self-signed certificate in certificate chain" in caplog.text
