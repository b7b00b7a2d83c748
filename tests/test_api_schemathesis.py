"""The OpenAPI document against the running server (schemathesis over real HTTP): every request
the document calls valid is answered as documented, every request it calls invalid is refused,
and every answer matches its documented schema. Catches a document that drifts from the server
(an empty ``{"b64": ""}`` documented as valid, a TF Serving batch over ``limits.max_batch``
undocumented, multipart parts the server ignored).

Against the default server only, to keep the suite's time (about a minute per server): the Flask
server serves the same document from the same code, and test_api_parity.py requires its answers
to be this server's, so what agrees here agrees there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.api_server import KEY_HASHED, small_limits_server

pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")

# schemathesis' default expectations plus what the document says and a schema cannot express:
# 422 for base64 that is well formed but not an image; 413 for a batch over maxItems.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
[checks.negative_data_rejection]
expected-statuses = [
  "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"
]
[parameters]
"path.name" = "{name}"
"path.version" = "{version}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path, api_kind: str):
    folder = tmp_path_factory.mktemp(f"api-schemathesis-{api_kind}")
    api = small_limits_server(folder, reference_model, workers=1, threads=2, kind=api_kind)
    yield api
    api.stop()
    assert "Traceback" not in api.log()


@pytest.mark.parametrize("api_kind", ["uvicorn"], indirect=True)  # see the module's docstring
def test_openapi_document_agrees_with_the_server(server, tmp_path: Path):
    headers = {"Authorization": f"Bearer {KEY_HASHED}"}
    model = requests.get(server.url + "/v1/model", headers=headers, timeout=10).json()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(name=model["name"], version=model["version"].split(".")[0]))
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
            server.url + "/openapi.json",
            *("-H", f"Authorization: Bearer {KEY_HASHED}"),
            *("--checks", "all", "--max-examples", "15", "--seed", "20261126"),
            *("--phases", "coverage,fuzzing", "--no-color"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # its .schemathesis cache stays out of the checkout
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "11 selected / 11 total" in report and " passed" in report, report
