"""Property-based fuzzing of the running server (hypothesis, a few thousand real HTTP requests):
malformed JSON, base64, data URLs, mutated real images, odd content types and headers.
Every answer must be a 2xx/4xx with the contract or the error shape: never a 5xx.

Methods, paths and headers are fuzzed against both servers (routing, keys and request ids meet
the transport there). The bodies are fuzzed against the default server only, to keep the suite's
time: what they reach (parsing, base64, multipart, image headers, limits) is the same code under
`--server flask`, whose body reading is checked against this server's in test_api_parity.py and
by every error test of test_api_errors.py."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest
import requests
from ecolens.core.contract import validate_result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.api_server import bearer, small_limits_server

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    derandomize=True,  # the same requests on every run: a CI failure is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SAMPLE = sorted((Path(__file__).resolve().parent.parent / "models/samples/eval/plastic").glob("*.jpg"))[
    0
].read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path, api_kind: str):
    folder = tmp_path_factory.mktemp(f"api-fuzz-{api_kind}")
    api = small_limits_server(folder, reference_model, workers=2, threads=4, kind=api_kind)
    yield api
    api.stop()
    assert "Traceback" not in api.log()


@pytest.fixture(scope="module")
def session() -> requests.Session:
    return requests.Session()


# The body fuzz: the default server only (see the module's docstring).
DEFAULT_SERVER_ONLY = pytest.mark.parametrize("api_kind", ["uvicorn"], indirect=True)
# statuses answered per fuzz test, to show the fuzz reached every outcome
SEEN: dict[str, Counter[int]] = {}


def check(response: requests.Response, test: str) -> None:
    SEEN.setdefault(test, Counter())[response.status_code] += 1
    assert response.status_code < 500, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    if response.status_code == 200:
        for result in body if isinstance(body, list) else [body]:
            validate_result(result, written=True)
    else:
        assert set(body) == {"error"}
        assert body["error"]["code"] and body["error"]["message"]


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(SAMPLE)
    operation = draw(st.sampled_from(["truncate", "flip", "insert", "intact"]))
    if operation == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if operation == "flip":
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if operation == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
header_values = printable.map(str.strip)  # what an HTTP client can send at all
encoded_images = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    mutated_images().map(lambda b: base64.b64encode(b).decode()),
    mutated_images().map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.tuples(printable, st.sampled_from([";base64,", ",", ";charset=x;base64,"])).map(
        lambda t: f"data:{t[0]}{t[1]}" + base64.b64encode(SAMPLE[:64]).decode()
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
image_items = st.one_of(encoded_images, st.fixed_dictionaries({"b64": encoded_images}), json_values)
field_names = st.sampled_from(["image", "images", "b64", "instances"]) | st.text(max_size=10)
documents = st.one_of(
    json_values,
    st.dictionaries(
        field_names,
        st.one_of(image_items, st.lists(image_items, max_size=6)),
        max_size=3,
    ),
)


@DEFAULT_SERVER_ONLY
@FUZZ
@given(document=documents)
def test_json_documents(server, session, document):
    headers = {**bearer(), "Content-Type": "application/json"}
    body = json.dumps(document)  # NaN/Infinity included: the server must cope with them too
    check(session.post(server.url + "/predict", data=body, headers=headers, timeout=30), "json")


@DEFAULT_SERVER_ONLY
@FUZZ
@given(
    body=st.one_of(st.binary(max_size=2048), mutated_images()),
    content_type=st.one_of(
        st.sampled_from(
            [
                "application/json",
                "image/jpeg",
                "image/png",
                "image/webp",
                "multipart/form-data",
                "multipart/form-data; boundary=xyz",
                "application/x-www-form-urlencoded",
                "text/plain",
                "",
            ]
        ),
        header_values,
    ),
)
@example(body=b"\x89HDF\r\n\x1a\n", content_type="image/jpeg")  # a 0x0 header once divided by zero
def test_raw_bodies_with_any_content_type(server, session, body, content_type):
    headers = {**bearer(), "Content-Type": content_type}
    check(session.post(server.url + "/predict", data=body, headers=headers, timeout=30), "raw")


@DEFAULT_SERVER_ONLY
@settings(FUZZ, max_examples=400)
@given(
    files=st.lists(
        st.tuples(st.sampled_from(["image", "images", "other"]), mutated_images()),
        max_size=5,
    ),
)
@example(files=[("images", SAMPLE)] * 5)  # one over limits.max_batch: a 413
def test_multipart_uploads(server, session, files):
    # "other" is an unknown field (a 400); a part without a filename is an image like a file
    multipart = [(name, ("upload.jpg", data, "image/jpeg")) for name, data in files[:3]]
    multipart += [(name, (None, data)) for name, data in files[3:]]
    check(session.post(server.url + "/predict", files=multipart, headers=bearer(), timeout=30), "multipart")


@settings(FUZZ, max_examples=400)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.sampled_from(["/predict", "/v1/model", "/metrics", "/readyz", "/x"]) | printable,
    authorization=header_values,
    request_id=header_values,
)
def test_methods_paths_and_headers(server, session, method, path, authorization, request_id):
    url = server.url + "/" + path.lstrip("/")
    headers = {"Authorization": authorization, "X-Request-ID": request_id}
    response = session.request(method, url, headers=headers, timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and method != "HEAD":
        assert response.json()["error"]["code"]


@DEFAULT_SERVER_ONLY
def test_the_fuzz_reached_every_outcome(server, session):
    """The generated requests got results as well as each kind of rejection. In any order: a
    fuzz test this process has not run (this test alone, random order, another xdist worker)
    is run here first."""
    for name, fuzz in (("json", test_json_documents), ("raw", test_raw_bodies_with_any_content_type),
                       ("multipart", test_multipart_uploads)):  # fmt: skip
        if name not in SEEN:
            fuzz(server, session)
    seen = sum(SEEN.values(), Counter())
    assert {200, 400, 413, 415, 422} <= set(seen), seen
    assert sum(seen.values()) >= 2000
