"""Start-up safety and access control over real HTTP(S): LAN refusal without keys, auth off,
HTTPS, the client allow-list, rate limiting, 503 while the model is absent, config errors. The
tests that start a server run against both servers (``api_kind``); the settings are checked
before the server is chosen, so the bad-config and key tests run once."""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.api_server import (
    ApiServer,
    auth_config,
    bearer,
    free_port,
    key_hash,
)


@pytest.fixture(scope="module")
def jpeg(eval_dir: Path) -> bytes:
    return sorted((eval_dir / "plastic").glob("*.jpg"))[0].read_bytes()


def serve_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_refuses_a_lan_address_without_keys(reference_model, api_kind):
    completed = serve_cli("--server", api_kind, "--host", "0.0.0.0", "--port", str(free_port()))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve the API on 0.0.0.0 without API keys" in lines[0]
    assert "Traceback" not in completed.stderr


def test_lan_without_keys_needs_insecure_and_then_serves_without_auth(
    tmp_path, reference_model, jpeg, api_kind
):
    config = {"model": {"path": str(reference_model)}, "server": {"host": "0.0.0.0"}}
    with ApiServer(tmp_path, config, extra_args=["--insecure"], kind=api_kind) as api:
        response = requests.post(
            api.url + "/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert requests.get(api.url + "/metrics", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[server]\ntls_cert = '/etc/hostname'\n", "tls_cert and tls_key must be given together"),
        ("[auth]\nkey_hashes = ['md5:abc']\n", "auth.key_hashes"),
        ("[auth]\nallow_cidrs = ['10.0.0.0/33']\n", "auth.allow_cidrs"),
        ("[limits]\nrate = 'lots'\n", "limits.rate"),
        ("[server]\nhots = '127.0.0.1'\n", "server.hots: unknown setting"),
        ("[model]\npath = '/nonexistent/model.tflite'\n", "model file not found"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, toml, message):
    config = tmp_path / "api.toml"
    config.write_text(toml)
    completed = serve_cli("--config", str(config), "--port", str(free_port()))
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


def test_new_key_and_hash_key(tmp_path):
    made = serve_cli("--new-key")
    key = made.stdout.split("key:")[1].split()[0]
    printed_hash = made.stdout.split("hash:")[1].split()[0]
    assert len(key) >= 40 and printed_hash == key_hash(key)
    hashed = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "serve", "--hash-key"],
        input=key + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert hashed.stdout.strip() == printed_hash


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_with_cert_and_key_and_an_allow_list_that_admits_us(tmp_path, reference_model, jpeg, api_kind):
    cert, key = make_certificate(tmp_path)
    config = {
        "model": {"path": str(reference_model)},
        "server": {"tls_cert": str(cert), "tls_key": str(key)},
        "auth": {**auth_config(), "allow_cidrs": ["10.0.0.0/8", "127.0.0.0/8"]},
    }
    with ApiServer(tmp_path, config, verify=str(cert), kind=api_kind) as api, requests.Session() as client:
        assert api.url.startswith("https://")
        response = client.post(
            api.url + "/predict",
            json={"image": base64.b64encode(jpeg).decode()},
            headers=bearer(),
            verify=str(cert),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["label"] in ("plastic", "non_plastic")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(api.url + "/healthz", timeout=10)  # untrusted without the cert
        with pytest.raises(requests.ConnectionError):
            requests.get(api.url.replace("https", "http") + "/healthz", timeout=10)
        # The client keeps its TLS connection in its pool: the server still stops on SIGTERM by
        # itself (uvicorn waited 30 s for the client's close_notify and was killed at 15 s).
        api.stop()
        assert api.process.returncode in (0, -signal.SIGTERM), api.log()[-2000:]  # not SIGKILL


def test_tls_cert_and_key_that_do_not_match_are_refused(tmp_path, api_kind):
    cert, _ = make_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = make_certificate(other)
    tls = ("--tls-cert", str(cert), "--tls-key", str(wrong_key))
    completed = serve_cli("--server", api_kind, *tls, "--port", str(free_port()))
    assert completed.returncode == 2
    assert "not a usable pair" in completed.stderr


def test_allow_list_refuses_other_clients_with_403(tmp_path, reference_model, jpeg, api_kind):
    config = {
        "model": {"path": str(reference_model)},
        "auth": {"allow_cidrs": ["10.0.0.0/8", "fd00::/8"]},
    }
    with ApiServer(tmp_path, config, wait_for="listening", kind=api_kind) as api:
        for path in ("/predict", "/healthz", "/metrics"):
            response = requests.post(api.url + path, data=jpeg, timeout=10)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "forbidden"


def test_rate_limit_answers_429_with_retry_after(tmp_path, reference_model, jpeg, api_kind):
    config = {
        "model": {"path": str(reference_model)},
        "auth": auth_config(),
        "limits": {"rate": "3/minute"},
    }
    with ApiServer(tmp_path, config, kind=api_kind) as api:
        statuses = []
        for _ in range(5):
            response = requests.post(
                api.url + "/predict",
                data=jpeg,
                headers={**bearer(), "Content-Type": "image/jpeg"},
                timeout=30,
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429, 429]
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert requests.get(api.url + "/healthz", timeout=10).status_code == 200  # not limited


def test_503_until_the_model_file_appears(tmp_path, reference_model, jpeg, api_kind):
    model = tmp_path / "delivered" / "model.tflite"
    config = {
        "model": {"path": str(model)},
        "server": {"wait_for_model": True, "model_poll_seconds": 0.2},
    }
    with ApiServer(tmp_path, config, wait_for="alive", kind=api_kind) as api:
        ready = requests.get(api.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert "waiting for the model file" in ready.json()["reason"]
        response = requests.post(
            api.url + "/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=10
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_not_ready"
        assert response.headers["Retry-After"]
        model.parent.mkdir()
        shutil.copy(reference_model, model)
        deadline = time.monotonic() + 20
        while requests.get(api.url + "/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, api.log()
            time.sleep(0.1)
        response = requests.post(
            api.url + "/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
        )
        assert response.status_code == 200, response.text


def test_server_flask_without_flask_names_the_package_in_one_line(tmp_path):
    """The flask extra missing (Flask made unimportable in the child): one line naming it."""
    code = (
        "import sys; sys.modules['flask'] = None; from ecolens.cli import main; "
        "sys.exit(main(['serve', '--server', 'flask']))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "ecolens serve: error: ecolens serve --server flask needs the Python package 'flask', which is "
        "not installed: pip install 'ecolens[flask]'"
    ]
