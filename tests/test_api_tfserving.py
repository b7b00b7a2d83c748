"""TF Serving's REST API on a real `ecolens serve`, with request bodies in the shapes TF Serving's
own REST documentation shows (row `instances`, columnar `inputs`, `{"b64": ...}` binary values,
named inputs, `signature_name`), its model status and metadata answers, and its error shape."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests
from ecolens.core.metadata import read_metadata
from ecolens.models import reference_tflite

from tests.support.api_server import ApiServer, auth_config, bearer

NAME = "ecolens-plastic-lite0"
# TF Serving's version of the shipped model: the major number of its metadata version.
VERSION = read_metadata(reference_tflite()).version.split(".", 1)[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path, api_kind: str):
    api = ApiServer(
        tmp_path_factory.mktemp(f"api-tfserving-{api_kind}"),
        {
            "model": {"path": str(reference_model)},
            "server": {"workers": 1},
            "auth": auth_config(),
            "limits": {"rate": "", "max_batch": 4},
        },
        kind=api_kind,
    ).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def images(eval_dir: Path) -> list[bytes]:
    plastic = sorted((eval_dir / "plastic").glob("*.jpg"))[0]
    other = sorted((eval_dir / "non_plastic").glob("*.jpg"))[0]
    return [plastic.read_bytes(), other.read_bytes()]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def post(server: ApiServer, path: str, document: object, **kwargs) -> requests.Response:
    headers = {**bearer(), **kwargs.pop("headers", {})}
    return requests.post(server.url + path, json=document, headers=headers, timeout=30, **kwargs)


def expected(server: ApiServer, image: bytes) -> list[float]:
    """What /predict says, as TF Serving's output: probabilities in the metadata's label order."""
    result = requests.post(
        server.url + "/predict", data=image, headers={**bearer(), "Content-Type": "image/jpeg"}, timeout=30
    ).json()
    return [result["scores"]["non_plastic"], result["scores"]["plastic"]]


def assert_tf_error(response: requests.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert fragment in body["error"]


@pytest.mark.parametrize(
    "document",
    [
        lambda a, b: {"instances": [{"b64": a}, {"b64": b}]},
        lambda a, b: {
            "signature_name": "serving_default",
            "instances": [{"image_bytes": {"b64": a}}, {"image_bytes": {"b64": b}}],
        },
        lambda a, b: {"instances": [{"image": {"b64": a}}, {"b64": b}]},  # any input name
    ],
    ids=["row_b64", "row_named_input_with_signature", "row_mixed"],
)
def test_row_format_answers_predictions(server, images, document):
    response = post(server, f"/v1/models/{NAME}:predict", document(b64(images[0]), b64(images[1])))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"predictions": [expected(server, images[0]), expected(server, images[1])]}


@pytest.mark.parametrize(
    "document",
    [
        lambda a, b: {"inputs": {"image_bytes": [{"b64": a}, {"b64": b}]}},
        lambda a, b: {"signature_name": "", "inputs": [{"b64": a}, {"b64": b}]},
    ],
    ids=["columnar_named", "columnar_list"],
)
def test_columnar_format_answers_outputs(server, images, document):
    response = post(server, f"/v1/models/{NAME}:predict", document(b64(images[0]), b64(images[1])))
    assert response.status_code == 200, response.text
    assert response.json() == {"outputs": [expected(server, images[0]), expected(server, images[1])]}


def test_columnar_single_image_and_a_versioned_url(server, images):
    response = post(
        server, f"/v1/models/{NAME}/versions/{VERSION}:predict", {"inputs": {"b64": b64(images[0])}}
    )
    assert response.json() == {"outputs": [expected(server, images[0])]}
    named = post(server, f"/v1/models/{NAME}:predict", {"inputs": {"image_bytes": {"b64": b64(images[1])}}})
    assert named.json() == {"outputs": [expected(server, images[1])]}


def test_model_status_and_metadata(server):
    status = requests.get(server.url + f"/v1/models/{NAME}", headers=bearer(), timeout=10)
    assert status.json() == {
        "model_version_status": [
            {"version": VERSION, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    versioned = requests.get(
        server.url + f"/v1/models/{NAME}/versions/{VERSION}", headers=bearer(), timeout=10
    )
    assert versioned.json() == status.json()
    metadata = requests.get(server.url + f"/v1/models/{NAME}/metadata", headers=bearer(), timeout=10).json()
    assert metadata["model_spec"] == {"name": NAME, "signature_name": "", "version": VERSION}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    dims = signature["outputs"]["probabilities"]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "2"]
    assert metadata["ecolens"]["labels"] == ["non_plastic", "plastic"]


def test_errors_have_tf_servings_shape(server, images):
    image = b64(images[0])
    url = f"/v1/models/{NAME}:predict"
    other = post(server, "/v1/models/other:predict", {"instances": [{"b64": image}]})
    assert_tf_error(other, 404, "Latest(other)")
    missing_version = post(server, f"/v1/models/{NAME}/versions/7:predict", {"instances": [{"b64": image}]})
    assert_tf_error(missing_version, 404, f"Specific({NAME}, 7)")
    both = {"instances": [{"b64": image}], "inputs": [{"b64": image}]}
    assert_tf_error(post(server, url, both), 400, "exactly one of")
    wrong_signature = {"signature_name": "classify_objects", "instances": [{"b64": image}]}
    assert_tf_error(post(server, url, wrong_signature), 400, "classify_objects")
    assert_tf_error(post(server, url, {"instances": [[1, 2, 3]]}), 400, "b64")
    assert_tf_error(post(server, url, {"instances": [{"b64": "not base64!"}]}), 400, "base64")
    assert_tf_error(post(server, url, {"instances": [{"b64": b64(b"junk")}]}), 422, "instances[0]")
    assert_tf_error(post(server, url, {"instances": [{"b64": image}] * 5}), 413, "limit is 4")
    bad_json = requests.post(
        server.url + url, data=b"{nope", headers={**bearer(), "Content-Type": "application/json"}, timeout=10
    )
    assert_tf_error(bad_json, 400, "JSON")
    no_key = requests.post(server.url + url, json={"instances": [{"b64": image}]}, timeout=10)
    assert_tf_error(no_key, 401, "API key")
    assert requests.get(server.url + f"/v1/models/{NAME}", timeout=10).status_code == 401
    # /predict keeps its own error shape
    ours = requests.post(server.url + "/predict", json={}, headers=bearer(), timeout=10).json()
    assert ours["error"]["code"] == "missing_field"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/v1/models/{NAME}:classify", "Expected classification signature method_name to be "
         "tensorflow/serving/classify. Was: tensorflow/serving/predict"),
        (f"/v1/models/{NAME}/versions/{VERSION}:regress", "Expected regression signature method_name to be "
         "tensorflow/serving/regress. Was: tensorflow/serving/predict"),
        (f"/v1/models/{NAME}/labels/stable:predict", "Unrecognized servable version label: stable"),
        (f"/v1/models/{NAME}/labels/canary:classify", "Unrecognized servable version label: canary"),
    ],
)  # fmt: skip
def test_classify_regress_and_labels_answer_as_tf_serving_does(server, images, path, message):
    """A predict-only model asked to classify or regress, or for a version label it does not
    have: TF Serving's 400 and its sentence, not a 405 for a model named 'NAME:classify'."""
    document = {"examples": [{"image_bytes": {"b64": b64(images[0])}}]}
    assert_tf_error(post(server, path, document), 400, message)
    if "/labels/" in path:
        status = requests.get(server.url + path.rsplit(":", 1)[0], headers=bearer(), timeout=10)
        assert_tf_error(status, 400, message)
    assert_tf_error(post(server, "/v1/models/other:classify", document), 404, "Latest(other)")
