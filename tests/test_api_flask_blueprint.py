"""The Blueprint mounted in someone else's Flask app, exactly as docs/api.md shows it: the site's
own routes stay the site's, every path under the prefix is the API's (the contract, its JSON
errors, its keys), and the example runs as written."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from ecolens.bench.mosquitto import free_port
from ecolens.core.contract import validate_result

from tests.support.api_server import KEY_HASHED, auth_config, bearer
from tests.support.toml_files import write_toml

pytest.importorskip("flask", reason="the Blueprint needs the flask extra")
DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented_site() -> str:
    """The ```python block of docs/api.md that starts with ``# recycling_site.py``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    sites = [block for block in blocks if block.startswith("# recycling_site.py")]
    assert len(sites) == 1, "docs/api.md shows one recycling_site.py"
    return sites[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory, reference_model: Path):
    folder = tmp_path_factory.mktemp("flask-site")
    config = {"model": {"path": str(reference_model)}, "auth": auth_config(), "limits": {"rate": ""}}
    write_toml(folder / "api.toml", config)
    with pytest.MonkeyPatch.context() as patch:  # the example reads api.toml from its directory
        patch.chdir(folder)
        namespace: dict = {"__name__": "site"}
        exec(compile(documented_site(), str(DOC), "exec"), namespace)
    return namespace["app"].test_client()


def test_the_documented_site_serves_predict_under_its_prefix(site, eval_dir: Path):
    jpeg = sorted((eval_dir / "plastic").glob("*.jpg"))[0].read_bytes()
    headers = {**bearer(), "Content-Type": "image/jpeg", "X-Request-ID": "site-1"}
    response = site.post("/ecolens/predict", data=jpeg, headers=headers)
    assert response.status_code == 200, response.text
    result = response.get_json()
    validate_result(result)
    assert result["request_id"] == response.headers["X-Request-ID"] == "site-1"
    assert response.headers["Cache-Control"] == "no-store"
    assert site.get("/").text == "Recycling centre, bin 7"


def test_the_apis_errors_keys_and_routes_stay_under_the_prefix(site):
    no_key = site.post("/ecolens/predict", json={"image": "aGVsbG8="})
    assert no_key.status_code == 401 and no_key.get_json()["error"]["code"] == "unauthorized"
    assert no_key.headers["WWW-Authenticate"].startswith("Bearer")
    assert site.get("/ecolens/healthz").get_json() == {"status": "alive"}
    unknown = site.get("/ecolens/nope")
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"
    wrong_method = site.get("/ecolens/predict", headers=bearer())
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    redirect = site.get("/ecolens/healthz/")
    assert redirect.status_code == 307 and redirect.headers["Location"].endswith("/ecolens/healthz")
    metrics = site.get("/ecolens/metrics", headers={"Authorization": f"Bearer {KEY_HASHED}"})
    assert 'ecolens_http_requests_total{endpoint="/predict",method="POST",status="401"}' in metrics.text
    # the site's own paths are not the API's: no key needed, the site's own 404
    other = site.get("/elsewhere")
    assert other.status_code == 404 and "X-Request-ID" not in other.headers


def test_the_documented_gunicorn_command_serves_the_site(tmp_path, reference_model: Path, eval_dir: Path):
    """The ``gunicorn ... recycling_site:app`` line as written, run as ``python -m gunicorn`` with
    the same arguments (a virtual environment may lack the script), its port from
    GUNICORN_CMD_ARGS."""
    line = next(
        x for x in DOC.read_text().splitlines() if x.startswith("gunicorn ") and "recycling_site" in x
    )
    (tmp_path / "recycling_site.py").write_text(documented_site())
    config = {"model": {"path": str(reference_model)}, "auth": auth_config(), "limits": {"rate": ""}}
    write_toml(tmp_path / "api.toml", config)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECOLENS_", "PROMETHEUS_"))}
    env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
    program, *arguments = shlex.split(line.split("#", 1)[0])
    assert program == "gunicorn"
    command = [sys.executable, "-m", "gunicorn", *arguments]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                if requests.get(url + "/ecolens/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "gunicorn did not serve /ecolens/readyz"
            time.sleep(0.2)
        jpeg = sorted((eval_dir / "plastic").glob("*.jpg"))[0]
        response = requests.post(
            url + "/ecolens/predict", headers=bearer(), files={"image": jpeg.open("rb")}, timeout=30
        )
        assert response.status_code == 200, response.text
        validate_result(response.json())
        assert requests.get(url + "/", timeout=10).text == "Recycling centre, bin 7"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
