"""The two servers of `ecolens serve` (uvicorn, and the Flask Blueprint under gunicorn) side by
side: the same requests, every error among them, get the same status, the same JSON (but for
the time a result was made and the model's milliseconds) and the same headers (but for those
that belong to the connection, not the contract: Date, Server, Connection, Keep-Alive), and
leave the same request counts in /metrics. The parameterised API tests check each server
against the contract; this one checks the two against each other, so neither drifts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests

from tests.support.api_server import ApiServer, auth_config, bearer, png_header

pytest.importorskip("flask", reason="--server flask needs the flask extra")
pytest.importorskip("gunicorn", reason="--server flask needs the flask extra")

CONNECTION_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding"}
NAME = "ecolens-plastic-lite0"


@pytest.fixture(scope="module")
def servers(tmp_path_factory, reference_model: Path):
    started = []
    try:
        for kind in ("uvicorn", "flask"):
            config = {
                "model": {"path": str(reference_model)},
                "server": {"workers": 1, "threads": 1},
                "auth": auth_config(),
                "limits": {
                    **{"max_batch": 2, "max_body_bytes": 65536, "rate": ""},
                    **{"max_pixels": 1_000_000, "max_batch_pixels": 1_000_000},
                },
            }
            started.append(ApiServer(tmp_path_factory.mktemp(f"parity-{kind}"), config, kind=kind).start())
        yield started
    finally:
        for api in started:
            api.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cases(jpeg: bytes) -> dict[str, dict]:
    """Name -> requests.request keyword arguments (``url`` is a path here)."""
    key = bearer()
    as_json = {**key, "Content-Type": "application/json"}
    image = b64(jpeg)

    def post(path: str = "/predict", headers: dict | None = None, **kwargs) -> dict:
        return {"method": "POST", "url": path, "headers": key if headers is None else headers, **kwargs}

    def raw(data: bytes) -> dict:
        return post(headers=as_json, data=data)

    tf = f"/v1/models/{NAME}"
    return {
        "json": post(json={"image": image}),
        "raw": post(headers={**key, "Content-Type": "image/jpeg"}, data=jpeg),
        "multipart": post(files={"image": ("a.jpg", jpeg)}),
        "batch": post(json={"images": [image] * 2}),
        "invalid_json": raw(b"{nope"),
        "nesting_bomb": raw(b"[" * 50_000),
        "not_an_object": raw(b"[1]"),
        "missing_field": raw(b"{}"),
        "unknown_field": raw(b'{"picture": "x"}'),
        "bad_base64": raw(b'{"image": "abcde"}'),
        "too_many": post(json={"images": [image] * 3}),
        "too_large_body": post(json={"image": "A" * 70_000}),
        "unsupported_type": post(headers={**key, "Content-Type": "text/plain"}),
        "form_fields": post(data={"image": "abc"}),
        "not_an_image": post(json={"image": b64(b"junk")}),
        "too_many_pixels": post(json={"image": b64(png_header(2000, 2000))}),
        "bad_in_batch": post(json={"images": [image, "!"]}),
        "batch_pixels": post(json={"images": [b64(png_header(900, 900))] * 2}),
        "multipart_other_field": post(files={"other": ("a", jpeg)}),
        "no_key": post(headers={}, json={"image": image}),
        "wrong_key": post(headers={"Authorization": "Bearer nope"}),
        "basic_auth": post(headers={"Authorization": "Basic eDp5"}),
        "x_api_key": post(headers={"X-API-Key": "nope"}),
        "get_predict": {"method": "GET", "url": "/predict", "headers": key},
        "options": {"method": "OPTIONS", "url": "/healthz"},
        "head": {"method": "HEAD", "url": "/healthz"},
        "unknown_path": {"method": "GET", "url": "/nope"},
        "trailing_slash": {"method": "GET", "url": "/healthz/", "allow_redirects": False},
        "healthz": {"method": "GET", "url": "/healthz"},
        "readyz": {"method": "GET", "url": "/readyz"},
        "model": {"method": "GET", "url": "/v1/model", "headers": key},
        "metrics_no_key": {"method": "GET", "url": "/metrics"},
        "openapi": {"method": "GET", "url": "/openapi.json"},
        "tf_predict": post(tf + ":predict", json={"instances": [{"b64": image}]}),
        "tf_columnar": post(tf + "/versions/2:predict", json={"inputs": {"b64": image}}),
        "tf_unknown_model": post("/v1/models/x:predict", json={"instances": []}),
        "tf_bad_json": post(tf + ":predict", headers=as_json, data=b"{"),
        "tf_no_key": post(tf + ":predict", headers={}, json={}),
        "tf_status": {"method": "GET", "url": tf, "headers": key},
        "tf_metadata": {"method": "GET", "url": tf + "/metadata", "headers": key},
        "tf_wrong_method": {"method": "PUT", "url": tf + "/metadata", "headers": key},
    }


def comparable(response: requests.Response) -> dict:
    """What the contract fixes in an answer."""
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in CONNECTION_HEADERS}
    if "allow" in headers:  # the order of a set of methods is not part of it
        headers["allow"] = sorted(m.strip() for m in headers["allow"].split(","))
    if "location" in headers:
        headers["location"] = headers["location"].replace(response.url.split("/", 3)[2], "HOST")
    body: object = response.content
    if response.headers.get("Content-Type") == "application/json" and response.content:
        body = response.json()
        for result in body if isinstance(body, list) else [body]:
            if isinstance(result, dict) and "inference_ms" in result:
                del result["timestamp"], result["inference_ms"]
                headers.pop("content-length", None)  # the milliseconds' digits vary
    return {"status": response.status_code, "headers": headers, "body": body}


def test_the_same_requests_get_the_same_answers_and_metrics(servers, eval_dir: Path):
    jpeg = sorted((eval_dir / "plastic").glob("*.jpg"))[0].read_bytes()
    answers: dict[str, list[dict]] = {}
    for name, request in cases(jpeg).items():
        for api in servers:
            arguments = {**request, "url": api.url + request["url"]}
            arguments["headers"] = {**request.get("headers", {}), "X-Request-ID": f"parity-{name}"}
            answers.setdefault(name, []).append(comparable(requests.request(**arguments, timeout=30)))
    differences = {name: pair for name, pair in answers.items() if pair[0] != pair[1]}
    assert not differences, json.dumps(differences, default=str)[:6000]
    assert {pair[0]["status"] for pair in answers.values()} >= {200, 307, 400, 401, 404, 405, 413, 415, 422}
    counts = [request_counts(api) for api in servers]
    assert counts[0] == counts[1]
    assert counts[0]['ecolens_http_requests_total{endpoint="/predict",method="POST",status="200"}'] == 4


def request_counts(api: ApiServer) -> dict[str, float]:
    """The ecolens_* counters (not /readyz, which the start-up polled a varying number of times)."""
    text = requests.get(api.url + "/metrics", headers=bearer(), timeout=10).text
    samples = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        counter = line.startswith(("ecolens_http_requests_total", "ecolens_predictions_total"))
        if counter and "/readyz" not in name:
            samples[name] = float(value)
    return samples
