"""Every error status over real HTTP, each as {"error": {"code", "message"}} JSON, never a 500."""

from __future__ import annotations

import base64
import io
import socket
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.api_server import KEY_HASHED, ApiServer, auth_config, bearer, png_header

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path, api_kind: str):
    api = ApiServer(
        tmp_path_factory.mktemp(f"api-errors-{api_kind}"),
        {
            "model": {"path": str(reference_model)},
            "server": {"workers": 1, "threads": 2},
            "auth": auth_config(),
            "limits": {
                "max_body_bytes": MAX_BODY,
                "max_batch": 3,
                "max_pixels": 1_000_000,
                "rate": "",
            },
        },
        kind=api_kind,
    ).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def jpeg(eval_dir: Path) -> bytes:
    return sorted((eval_dir / "plastic").glob("*.jpg"))[0].read_bytes()


def post(server: ApiServer, **kwargs) -> requests.Response:
    headers = {**bearer(), **kwargs.pop("headers", {})}
    return requests.post(server.url + "/predict", headers=headers, timeout=30, **kwargs)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"[" * 50_000, "invalid_json"),  # nesting bomb: RecursionError must not be a 500
        (b"", "missing_field"),
        (b"[1, 2]", "bad_request"),
        (b"{}", "missing_field"),
        (b'{"picture": "abc"}', "bad_request"),
        (b'{"image": "aGVsbG8=", "b64": "aGVsbG8="}', "bad_request"),
        (b'{"image": 42}', "bad_request"),
        (b'{"image": {"b64": "aGVsbG8=", "x": 1}}', "bad_request"),
        (b'{"image": "not base64 at all!"}', "invalid_base64"),
        (b'{"image": "abcde"}', "invalid_base64"),
        (b'{"image": "data:image/png,rawtext"}', "invalid_base64"),
        (b'{"image": ""}', "missing_field"),
        (b'{"images": []}', "missing_field"),
        (b'{"images": "abc"}', "bad_request"),
    ],
)
def test_400_for_bad_json_base64_or_fields(server, body, code):
    response = post(server, data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, code)


def test_401_without_or_with_a_wrong_key(server, jpeg):
    no_key = requests.post(server.url + "/predict", json={"image": b64(jpeg)}, timeout=10)
    assert_error(no_key, 401, "unauthorized")
    wrong = post(server, json={"image": b64(jpeg)}, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorized")


def test_413_is_decided_from_content_length_before_the_body_is_read(server):
    """Announce 50 MB, send 1 KB: the answer comes at once, without waiting for the rest."""
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {KEY_HASHED}\r\nContent-Type: image/jpeg\r\n"
        "Content-Length: 50000000\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b"\xff" * 1024)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert time.monotonic() - started < 5
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 413 " in status_line, reply[:300]
    assert b'"payload_too_large"' in rest


def test_413_for_an_oversized_body_sent_in_full(server, jpeg):
    response = post(server, json={"image": "A" * (MAX_BODY + 10)})
    assert_error(response, 413, "payload_too_large")


def test_413_for_an_oversized_chunked_body(server):
    def chunks():
        for _ in range(40):
            yield b"\xff" * 4096  # 160 KiB, no Content-Length

    try:
        response = post(server, data=chunks(), headers={"Content-Type": "image/jpeg"})
    except requests.ConnectionError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert_error(response, 413, "payload_too_large")


def test_413_for_too_many_images(server, jpeg):
    response = post(server, json={"images": [b64(jpeg)] * 4})
    error = assert_error(response, 413, "too_many_images")
    assert "3" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "image/gif", "application/octet-stream"]
)
def test_415_for_unsupported_content_types(server, jpeg, content_type):
    response = post(server, data=jpeg, headers={"Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")


def test_415_without_content_type_and_for_plain_form_data(server, jpeg):
    session = requests.Session()
    request = requests.Request("POST", server.url + "/predict", data=jpeg, headers=bearer())
    prepared = session.prepare_request(request)
    prepared.headers.pop("Content-Type", None)
    assert_error(session.send(prepared, timeout=10), 415, "unsupported_media_type")
    form = post(server, data={"image": "abc"})  # application/x-www-form-urlencoded fields
    assert_error(form, 415, "unsupported_media_type")
    data_url = post(server, json={"image": "data:text/plain;base64," + b64(b"hello")})
    assert_error(data_url, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "data",
    [b"definitely not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 40, b"GIF89a" + b"\x00" * 10],
)
def test_422_for_bytes_that_are_not_an_image(server, data):
    assert_error(post(server, json={"image": b64(data)}), 422, "invalid_image")
    raw = post(server, data=data, headers={"Content-Type": "image/png"})
    assert_error(raw, 422, "invalid_image")


def test_422_for_a_truncated_image(server, jpeg):
    response = post(server, data=jpeg[:120], headers={"Content-Type": "image/jpeg"})
    assert_error(response, 422, "invalid_image")


def test_422_for_a_decompression_bomb_and_for_too_many_pixels(server):
    bomb = png_header(100_000, 100_000)  # 10^10 pixels declared in a few hundred bytes
    assert len(bomb) < 1000
    error = assert_error(post(server, json={"image": b64(bomb)}), 422, "image_too_large")
    assert "too large" in error["message"]
    big = io.BytesIO()
    Image.new("RGB", (1200, 1000), (90, 120, 40)).save(big, format="JPEG")
    response = post(server, data=big.getvalue(), headers={"Content-Type": "image/jpeg"})
    error = assert_error(response, 422, "image_too_large")
    assert "1200x1000" in error["message"]


def test_422_in_a_batch_names_the_bad_image(server, jpeg):
    response = post(server, json={"images": [b64(jpeg), b64(b"junk junk junk")]})
    error = assert_error(response, 422, "invalid_image")
    assert error["message"].startswith("images[1]")


def test_unknown_paths_and_methods_are_json_too(server):
    assert_error(requests.get(server.url + "/nope", timeout=10), 404, "not_found")
    not_allowed = requests.get(server.url + "/predict", headers=bearer(), timeout=10)
    assert_error(not_allowed, 405, "method_not_allowed")
    assert "POST" in not_allowed.headers["Allow"]


def test_server_survived_and_logged_no_traceback(server, jpeg):
    assert post(server, data=jpeg, headers={"Content-Type": "image/jpeg"}).status_code == 200
    assert "Traceback" not in server.log()
