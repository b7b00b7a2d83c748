"""POST /predict over real HTTP: a real `ecolens serve` (gunicorn, 2 workers), the real model,
the shipped sample images. Every input form, batches, the contract, parity with the CLI."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from ecolens.core.contract import validate_result
from PIL import Image

from tests.support.api_server import (
    KEY_FROM_ENV,
    KEY_HASHED,
    ApiServer,
    auth_config,
    auth_env,
    bearer,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path, api_kind: str):
    api = ApiServer(
        tmp_path_factory.mktemp(f"api-predict-{api_kind}"),
        {
            "model": {"path": str(reference_model)},
            "server": {"workers": 2, "threads": 2},
            "auth": auth_config(),
            "limits": {"max_batch": 4, "rate": ""},
        },
        env=auth_env(),
        kind=api_kind,
    ).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def images(eval_dir: Path) -> list[Path]:
    plastic = sorted((eval_dir / "plastic").glob("*.jpg"))[:2]
    other = sorted((eval_dir / "non_plastic").glob("*.jpg"))[:2]
    assert len(plastic) == 2 and len(other) == 2
    return [plastic[0], other[0], plastic[1], other[1]]


def post(server: ApiServer, key: str = KEY_HASHED, **kwargs) -> requests.Response:
    headers = {**bearer(key), **kwargs.pop("headers", {})}
    return requests.post(server.url + "/predict", headers=headers, timeout=30, **kwargs)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def as_png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def same_prediction(a: dict, b: dict) -> None:
    assert a["label"] == b["label"]
    assert a["scores"] == b["scores"]
    assert a["model"] == b["model"]


def test_json_base64_returns_the_contract_with_request_id(server, images):
    response = post(server, json={"image": b64(images[0])})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    result = response.json()
    validate_result(result, written=True)
    assert result["request_id"] == response.headers["X-Request-ID"]
    assert set(result["scores"]) == {"non_plastic", "plastic"}
    assert result["label"] == max(result["scores"], key=result["scores"].get)


INPUT_FORMS = {
    "data_url": lambda p: {"json": {"image": "data:image/jpeg;base64," + b64(p)}},
    "tf_serving_b64": lambda p: {"json": {"b64": b64(p)}},
    "image_b64_object": lambda p: {"json": {"image": {"b64": b64(p)}}},
    "urlsafe_unpadded": lambda p: {
        "json": {"image": base64.urlsafe_b64encode(p.read_bytes()).decode().rstrip("=")}
    },
    "mime_line_wrapped": lambda p: {"json": {"image": base64.encodebytes(p.read_bytes()).decode()}},
    "raw_jpeg": lambda p: {"data": p.read_bytes(), "headers": {"Content-Type": "image/jpeg"}},
    "raw_png": lambda p: {"data": as_png(p), "headers": {"Content-Type": "image/png"}},
    "multipart": lambda p: {"files": {"image": (p.name, p.read_bytes(), "image/jpeg")}},
    # `curl -d '{"image": ...}'` sends application/x-www-form-urlencoded
    "curl_form_encoded": lambda p: {
        "data": json.dumps({"image": b64(p)}),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    },
}


@pytest.mark.parametrize("form", sorted(INPUT_FORMS))
def test_every_input_form_gives_the_same_result(server, images, form):
    reference = post(server, json={"image": b64(images[0])}).json()
    response = post(server, **INPUT_FORMS[form](images[0]))
    assert response.status_code == 200, response.text
    result = response.json()
    validate_result(result, written=True)
    same_prediction(result, reference)


@pytest.mark.parametrize("field", ["images", "instances"])
def test_json_batch_returns_results_in_order(server, images, field):
    singles = [post(server, json={"image": b64(p)}).json() for p in images]
    items = [b64(images[0]), {"b64": b64(images[1])}, b64(images[2]), b64(images[3])]
    response = post(server, json={field: items})
    assert response.status_code == 200, response.text
    results = response.json()
    assert isinstance(results, list) and len(results) == len(images)
    for single, result in zip(singles, results):
        validate_result(result, written=True)
        same_prediction(result, single)
        assert result["request_id"] == response.headers["X-Request-ID"]
    # different images, different scores: the batch is not one result repeated
    assert len({json.dumps(r["scores"], sort_keys=True) for r in results}) > 1


def test_multipart_batch(server, images):
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in images[:2]]
    response = post(server, files=files)
    assert response.status_code == 200, response.text
    results = response.json()
    assert len(results) == 2
    for path, result in zip(images, results):
        validate_result(result, written=True)
        same_prediction(result, post(server, json={"image": b64(path)}).json())


def test_client_request_id_is_echoed_and_bad_ones_replaced(server, images):
    mine = post(server, json={"b64": b64(images[0])}, headers={"X-Request-ID": "till-7.a:42"})
    assert mine.headers["X-Request-ID"] == "till-7.a:42"
    assert mine.json()["request_id"] == "till-7.a:42"
    bad = post(server, json={"b64": b64(images[0])}, headers={"X-Request-ID": "a b<script>"})
    assert bad.headers["X-Request-ID"] != "a b<script>"
    assert bad.json()["request_id"] == bad.headers["X-Request-ID"]


def test_predict_matches_ecolens_classify(server, images, reference_model):
    """Real CLI subprocess vs real HTTP: same label, scores and model for the same files."""
    completed = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "classify", "--model", str(reference_model)]
        + [str(p) for p in images],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    cli_results = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    assert len(cli_results) == len(images)
    for path, cli in zip(images, cli_results):
        http = post(server, data=path.read_bytes(), headers={"Content-Type": "image/jpeg"}).json()
        validate_result(cli, written=True)
        same_prediction(http, cli)


def test_auth_required_and_both_key_sources_accepted(server, images):
    body = {"image": b64(images[0])}
    missing = requests.post(server.url + "/predict", json=body, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(server, key="wrong-key-000000000000", json=body).status_code == 401
    basic = requests.post(server.url + "/predict", json=body, auth=("user", KEY_HASHED), timeout=10)
    assert basic.status_code == 401
    assert post(server, key=KEY_FROM_ENV, json=body).status_code == 200
    header_key = requests.post(
        server.url + "/predict", json=body, headers={"X-API-Key": KEY_HASHED}, timeout=10
    )
    assert header_key.status_code == 200


def test_public_and_protected_endpoints(server, reference_model):
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert requests.get(server.url + path, timeout=10).status_code == 200, path
    for path in ("/v1/model", "/metrics"):
        assert requests.get(server.url + path, timeout=10).status_code == 401, path
    ready = requests.get(server.url + "/readyz", timeout=10).json()
    assert ready["status"] == "ready"
    model = requests.get(server.url + "/v1/model", headers=bearer(), timeout=10).json()
    from ecolens.core.metadata import read_metadata

    metadata = read_metadata(reference_model)
    assert model["labels"] == list(metadata.labels)
    assert model["input"]["height"] == metadata.input.height
    assert model["quantization"] == metadata.quantization
    assert model["sha256"] == ready["model"]["sha256"]


def test_metrics_cover_requests_latency_inference_and_model(server, images):
    for _ in range(4):
        post(server, json={"image": b64(images[0])})
    requests.post(server.url + "/predict", json={}, timeout=10)  # 401
    text = requests.get(server.url + "/metrics", headers=bearer(), timeout=10).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    ok = 'ecolens_http_requests_total{endpoint="/predict",method="POST",status="200"}'
    assert samples[ok] >= 4
    assert samples['ecolens_http_requests_total{endpoint="/predict",method="POST",status="401"}'] >= 1
    assert samples['ecolens_http_request_duration_seconds_count{endpoint="/predict"}'] >= 5
    assert samples["ecolens_inference_duration_seconds_count"] >= 4
    assert samples["ecolens_model_loaded"] == 2  # both workers, summed across processes
    sha = requests.get(server.url + "/readyz", timeout=10).json()["model"]["sha256"]
    assert any(k.startswith("ecolens_model_info{") and sha in k for k in samples)


def test_access_log_is_json_with_id_status_latency_label_and_no_image(server, images):
    payload = b64(images[1])
    response = post(server, json={"image": payload}, headers={"X-Request-ID": "log-check-1"})
    label = response.json()["label"]
    entries = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    mine = [e for e in entries if e.get("request_id") == "log-check-1"]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["status"] == 200 and entry["path"] == "/predict" and entry["label"] == label
    assert entry["latency_ms"] > 0
    log = server.log()
    assert payload[:64] not in log and payload[-64:] not in log
    assert KEY_HASHED not in log and KEY_FROM_ENV not in log


def test_openapi_document_is_valid_and_describes_every_route(server, images):
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate

    document = requests.get(server.url + "/openapi.json", timeout=10).json()
    validate(document)
    tf_serving = {
        f"/v1/models/{{name}}{version}{suffix}"
        for version in ("", "/versions/{version}")
        for suffix in (":predict", "", "/metadata")
    }
    assert set(document["paths"]) == {
        "/predict",
        "/healthz",
        "/readyz",
        "/v1/model",
        "/metrics",
        "/openapi.json",
        *tf_serving,
    }
    documented = set(document["paths"]["/predict"]["post"]["responses"])
    assert {"200", "400", "401", "413", "415", "422", "429", "503"} <= documented
    result = post(server, json={"image": b64(images[0])}).json()
    Draft202012Validator(document["components"]["schemas"]["Result"]).validate(result)
