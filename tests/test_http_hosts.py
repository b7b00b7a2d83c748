"""The Host allow-list of the unauthenticated web pages (core.http.hosts), on a real server: the
fleet dashboard with its labelling page on loopback without keys. A label POST that names
another Host (what a DNS-rebinding page makes the browser send) is refused with 421, the JSON
error body and one log line, and changes nothing; IP addresses, localhost, this machine's names
and the configured names are served."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
from pathlib import Path

import pytest
from ecolens.core.http.hosts import host_allowed, host_name
from ecolens.core.http.webserver import BackgroundServer
from ecolens.edge.daemon.config.web import WebSection
from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.labelling import labelling_blueprint
from ecolens.fleet.samples.store import SampleStore
from ecolens.fleet.storage import open_database
from ecolens.fleet.web import create_app
from PIL import Image

from tests.test_samples_hostile import message


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (40, 120, 200)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def labelling(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    open_database(url).close()
    store = SampleStore(tmp_path / "samples")
    assert store.add("bin-1", message(jpeg()))
    app = create_app(lambda: open_database(url, migrate=False), ReportSection())
    app.register_blueprint(labelling_blueprint(store))
    server = BackgroundServer(app, HttpSection(port=0, allowed_hosts=["Fleet.Example.org."])).start()
    try:
        yield server.port, store
    finally:
        server.stop()
        store.close()


def post_label(port: int, host: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"label": "plastic"})
    connection.request(
        "POST",
        "/api/samples/ev-1/label",
        body,
        headers={"Host": host, "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_a_label_post_for_a_rebound_name_is_refused_and_changes_nothing(labelling, caplog):
    port, store = labelling
    with caplog.at_level(logging.WARNING, logger="ecolens.core.http"):
        status, body = post_label(port, f"rebind.evil.example:{port}")
    assert status == 421
    assert (
        body["error"]["code"] == "misdirected_request" and "rebind.evil.example" in body["error"]["message"]
    )
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "rebind.evil.example" in refusals[0] and "POST" in refusals[0]
    assert store.progress()["counts"]["plastic"] == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "fleet.example.org", "{hostname}"]
)
def test_the_servers_own_names_are_served(labelling, host):
    port, store = labelling
    status, body = post_label(port, host.format(port=port, hostname=socket.gethostname()))
    assert status == 200 and body["label"] == "plastic"
    assert store.progress()["counts"]["plastic"] == 1


def test_host_names_are_compared_without_port_case_or_final_dot():
    assert host_name("Bin.Local.:8091") == "bin.local" and host_name("[::1]:80") == "::1"
    names = {"bin.local"}
    assert host_allowed("BIN.local:8091", names) and host_allowed("192.168.1.20:8091", names)
    assert host_allowed(None, names)  # HTTP/1.0 without Host: no browser sends that
    assert not host_allowed("bin.local.evil.example", names) and not host_allowed("127.0.0.1.nip.io", names)
    assert WebSection(allowed_hosts=[" Bin-07.lan "]).allowed_hosts == ["bin-07.lan"]
