"""TensorFlow Serving's REST API over the same model, so TF Serving clients work unchanged:

* ``POST /v1/models/<name>[/versions/<v>]:predict`` with the row format
  (``{"instances": [...]}`` -> ``{"predictions": [...]}``) or the columnar one
  (``{"inputs": ...}`` -> ``{"outputs": [...]}``); images as ``{"b64": "..."}``, alone or under
  any input name (``{"image_bytes": {"b64": "..."}}``); ``signature_name`` may be given
  (``serving_default``);
* ``GET /v1/models/<name>[/versions/<v>]`` (model status) and ``.../metadata`` (signature);
* ``:classify`` and ``:regress`` answered as TF Serving answers them for a model whose only
  signature is a predict one (HTTP 400, ``Expected classification signature method_name to be
  tensorflow/serving/classify. Was: tensorflow/serving/predict``), and ``/labels/<label>`` as
  TF Serving answers a label its config does not have (HTTP 400, ``Unrecognized servable
  version label: <label>``): EcoLens serves one version and names no labels;
* errors as ``{"error": "message"}`` (the error middleware renders them in that shape on these
  routes).

A prediction is the model's output per image: the probability of each label, in the order of
the labels in the metadata (the same numbers as ``scores`` in ``/predict``'s result).
The TF Serving version of the model is the major number of its metadata version (``2.1.0`` -> 2).
"""

from __future__ import annotations

import json
from typing import Any

from ecolens.core.classifier import Classifier
from ecolens.edge.api.errors import BadRequest, InvalidJson, MissingField, NotFound, TooManyImages
from ecolens.edge.api.inference import inspect_all
from ecolens.edge.api.parsing import decode_base64
from ecolens.edge.api.request_io import json_response, read_request_body, state_of
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
# verb -> (TF Serving's word for it in its error, the method name its signature would need)
OTHER_VERBS = {
    "classify": ("classification", "tensorflow/serving/classify"),
    "regress": ("regression", "tensorflow/serving/regress"),
}
INPUT_NAME = "image_bytes"
OUTPUT_NAME = "probabilities"


def tf_version(classifier: Classifier) -> str:
    major = classifier.metadata.version.split(".", 1)[0]
    return major if major.isdigit() else "1"


def served(request: Request) -> Classifier:
    """The classifier, if the path names it (and its version); TF Serving's 404 otherwise."""
    classifier = state_of(request).holder.get()
    name = request.path_params["name"]
    version = request.path_params.get("version")
    if name != classifier.metadata.name:
        wanted = f"Specific({name}, {version})" if version else f"Latest({name})"
        raise NotFound(f"Servable not found for request: {wanted}")
    if version is not None and version != tf_version(classifier):
        raise NotFound(f"Servable not found for request: Specific({name}, {version})")
    return classifier


async def other_verb(request: Request) -> Response:
    """``:classify`` / ``:regress``: the model exists, but its signature is a predict one."""
    served(request)
    word, method = OTHER_VERBS[request.url.path.rsplit(":", 1)[1]]
    raise BadRequest(f"Expected {word} signature method_name to be {method}. Was: {PREDICT_METHOD}")


async def version_label(request: Request) -> Response:
    """``/labels/<label>``: TF Serving checks the label before the model's name."""
    raise BadRequest(f"Unrecognized servable version label: {request.path_params['label']}")


def image_from(value: Any, where: str) -> bytes:
    """``{"b64": "..."}`` or ``{"<input name>": {"b64": "..."}}`` -> the image bytes."""
    if isinstance(value, dict) and len(value) == 1:
        key, inner = next(iter(value.items()))
        if key == "b64":
            return decode_base64(inner, where + ".b64")
        if isinstance(inner, dict) and set(inner) == {"b64"}:
            return decode_base64(inner["b64"], f"{where}.{key}.b64")
    raise BadRequest(
        f'{where}: expected an image as {{"b64": "<base64>"}} or {{"{INPUT_NAME}": {{"b64": "<base64>"}}}} '
        "(the model has one input, an encoded image)"
    )


def columnar_images(inputs: Any) -> list[tuple[bytes, str]]:
    """``inputs``: one image object, a list of them, or ``{"<input name>": one or a list}``."""
    where = "inputs"
    if isinstance(inputs, dict) and len(inputs) == 1 and "b64" not in inputs:
        key, inputs = next(iter(inputs.items()))
        where = f"inputs.{key}"
    if isinstance(inputs, list):
        return [(image_from(item, f"{where}[{i}]"), f"{where}[{i}]") for i, item in enumerate(inputs)]
    return [(image_from(inputs, where), where)]


def request_images(document: Any, max_batch: int) -> tuple[list[tuple[bytes, str]], bool]:
    """(image bytes with their names, row format?) from a TF Serving predict body."""
    if not isinstance(document, dict):
        raise BadRequest("the request body must be a JSON object with 'instances' or 'inputs'")
    unknown = sorted(set(document) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}")
    signature = document.get("signature_name", SIGNATURE)
    if signature not in ("", SIGNATURE):
        raise BadRequest(f'Serving signature name: "{str(signature)[:100]}" not found in signature def')
    if ("instances" in document) == ("inputs" in document):
        raise BadRequest("give exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise BadRequest("'instances' must be a list")
        images = [
            (image_from(item, f"instances[{i}]"), f"instances[{i}]") for i, item in enumerate(instances)
        ]
        row = True
    else:
        images = columnar_images(document["inputs"])
        row = False
    if not images:
        raise MissingField("no images in the request")
    if len(images) > max_batch:
        raise TooManyImages(f"{len(images)} images, the limit is {max_batch} (limits.max_batch)")
    return images, row


async def predict(request: Request) -> Response:
    state = state_of(request)
    classifier = served(request)
    body = await read_request_body(request)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"JSON Parse error: {str(exc)[:200]}") from None
    images, row = request_images(document, state.config.limits.max_batch)
    names = [where for _, where in images]
    inspected = inspect_all(
        [data for data, _ in images], names, classifier.max_pixels, state.config.limits.max_batch_pixels
    )
    info = request.scope["ecolens"]
    results = await state.pool.classify(classifier, inspected, names, info.request_id)
    info.labels = [r["label"] for r in results]
    values = [[r["scores"][label] for label in classifier.labels] for r in results]
    return json_response({"predictions": values} if row else {"outputs": values})


async def status(request: Request) -> Response:
    classifier = served(request)
    state = {"version": tf_version(classifier), "state": "AVAILABLE"}
    state["status"] = {"error_code": "OK", "error_message": ""}
    return json_response({"model_version_status": [state]})


async def metadata(request: Request) -> Response:
    classifier = served(request)
    spec = classifier.metadata.input

    def tensor(name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
        shape = {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
        return {"dtype": dtype, "tensor_shape": shape, "name": name}

    signature = {
        "inputs": {INPUT_NAME: tensor(INPUT_NAME, "DT_STRING", [-1])},
        "outputs": {OUTPUT_NAME: tensor(OUTPUT_NAME, "DT_FLOAT", [-1, len(classifier.labels)])},
        "method_name": PREDICT_METHOD,
    }
    return json_response(
        {
            "model_spec": {
                "name": classifier.metadata.name,
                "signature_name": "",
                "version": tf_version(classifier),
            },
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
            "ecolens": {
                "labels": list(classifier.labels),
                "input": {"height": spec.height, "width": spec.width},
            },
        }
    )


def tf_serving_routes() -> list[Route]:
    base, versioned = "/v1/models/{name}", "/v1/models/{name}/versions/{version}"
    labelled = "/v1/models/{name}/labels/{label}"
    return [
        *(
            Route(path + ":" + verb, other_verb, methods=["POST"])
            for path in (base, versioned)
            for verb in OTHER_VERBS
        ),
        Route(labelled + ":predict", version_label, methods=["POST"]),
        *(Route(labelled + ":" + verb, version_label, methods=["POST"]) for verb in OTHER_VERBS),
        Route(labelled + "/metadata", version_label, methods=["GET"]),
        Route(labelled, version_label, methods=["GET"]),
        Route(base + ":predict", predict, methods=["POST"]),
        Route(versioned + ":predict", predict, methods=["POST"]),
        Route(base + "/metadata", metadata, methods=["GET"]),
        Route(versioned + "/metadata", metadata, methods=["GET"]),
        Route(base, status, methods=["GET"]),
        Route(versioned, status, methods=["GET"]),
    ]
