"""The OpenAPI 3.1 description served at /openapi.json. The result schema is the contract's own
JSON Schema file, embedded, so the documented response cannot drift from what MQTT carries."""

from __future__ import annotations

from typing import Any

from ecolens.core.contract import result_schema

from ecolens import __version__

# What the server decodes: standard or URL-safe base64 of at least one byte, padding optional,
# optionally as a data URL. (The server also skips whitespace; the bytes must be an image, else 422.)
_B64 = "[A-Za-z0-9+/_-]"
BASE64_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": f"^(data:image/[A-Za-z0-9.+-]+;base64,)?({_B64}{{4}})*"
    f"({_B64}{{4}}|{_B64}{{2}}(==)?|{_B64}{{3}}=?)$",
    "description": "base64 (standard or URL-safe) image bytes, or a data URL (data:image/png;base64,...)",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def tf_serving_paths(protected: dict[str, Any], max_batch: int) -> dict[str, Any]:
    """TensorFlow Serving's REST routes (predict, status, metadata), with and without a version."""
    tf_error = {
        "description": "TF Serving's error shape",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                }
            }
        },
    }
    b64_image = {
        "type": "object",
        "required": ["b64"],
        "properties": {"b64": BASE64_STRING},
        "additionalProperties": False,
    }
    named_image = {  # {"<input name>": {"b64": ...}}: exactly one name, any but "b64"
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": {"not": {"const": "b64"}},
        "additionalProperties": b64_image,
    }
    instance = {"anyOf": [b64_image, named_image]}
    instances = {"type": "array", "items": instance, "minItems": 1, "maxItems": max_batch}
    named_inputs = {**named_image, "additionalProperties": {"anyOf": [instance, instances]}}
    signature = {"type": "string", "enum": ["", "serving_default"]}
    predict_body = {
        "oneOf": [
            {
                "type": "object",
                "required": [field],
                "properties": {"signature_name": signature, field: schema},
                "additionalProperties": False,
            }
            for field, schema in (
                ("instances", instances),
                ("inputs", {"anyOf": [instance, instances, named_inputs]}),
            )
        ]
    }
    probabilities = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
    answer = {
        "type": "object",
        "properties": {"predictions": probabilities, "outputs": probabilities},
    }
    errors = {code: tf_error for code in ("400", "401", "403", "404", "408", "413", "422", "429", "503")}

    def parameters(versioned: bool) -> list[dict[str, Any]]:
        names = ["name", "version"] if versioned else ["name"]
        return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]

    paths: dict[str, Any] = {}
    for versioned in (False, True):
        base = "/v1/models/{name}" + ("/versions/{version}" if versioned else "")
        suffix = "_version" if versioned else ""
        paths[base + ":predict"] = {
            "post": {
                "operationId": "tf_serving_predict" + suffix,
                "summary": "TF Serving predict: row (instances) or columnar (inputs) format",
                **protected,
                "parameters": parameters(versioned),
                "requestBody": {"required": True, "content": {"application/json": {"schema": predict_body}}},
                "responses": {"200": _json(answer, "one probability per label and image"), **errors},
            }
        }
        paths[base] = {
            "get": {
                "operationId": "tf_serving_status" + suffix,
                "summary": "TF Serving model status",
                **protected,
                "parameters": parameters(versioned),
                "responses": {"200": _json({"type": "object"}, "model_version_status"), **errors},
            }
        }
        paths[base + "/metadata"] = {
            "get": {
                "operationId": "tf_serving_metadata" + suffix,
                "summary": "TF Serving model metadata (signature_def)",
                **protected,
                "parameters": parameters(versioned),
                "responses": {"200": _json({"type": "object"}, "model_spec and metadata"), **errors},
            }
        }
    return paths


def openapi_document(max_batch: int, auth: bool) -> dict[str, Any]:
    contract = {k: v for k, v in result_schema().items() if k not in ("$schema", "$id")}
    base64_string = BASE64_STRING
    image = {
        "oneOf": [
            base64_string,
            {
                "type": "object",
                "required": ["b64"],
                "properties": {"b64": base64_string},
                "additionalProperties": False,
            },
        ]
    }
    images = {"type": "array", "items": image, "minItems": 1, "maxItems": max_batch}

    def one_field(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [name],
            "properties": {name: schema},
            "additionalProperties": False,
        }

    security = [{"bearer": []}, {"apiKeyHeader": []}] if auth else []
    protected = {"security": security} if auth else {}
    common_errors = {
        "401": _error("missing or wrong API key"),
        "403": _error("client address not in auth.allow_cidrs"),
    }
    file = {"type": "string", "format": "binary", "minLength": 1}  # an empty file is a 400
    binary = {"schema": file}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EcoLens local API",
            "version": __version__,
            "description": "Classify a waste item image as plastic / non_plastic. The response "
            "is the same result contract a bin publishes on MQTT, plus request_id.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Classify one image, or a batch",
                    **protected,
                    "parameters": [
                        {
                            "name": "X-Request-ID",
                            "in": "header",
                            "required": False,
                            "description": "your id for this request (1-128 of A-Z a-z 0-9 "
                            "._:-); echoed back, else one is generated",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        one_field("image", image),
                                        one_field("b64", base64_string),
                                        one_field("images", images),
                                        one_field("instances", images),
                                    ]
                                }
                            },
                            "image/jpeg": binary,
                            "image/png": binary,
                            "image/webp": binary,
                            "image/bmp": binary,
                            "multipart/form-data": {
                                "schema": {
                                    "oneOf": [
                                        one_field("image", file),
                                        one_field(
                                            "images",
                                            {
                                                "type": "array",
                                                "items": file,
                                                "minItems": 1,
                                                "maxItems": max_batch,
                                            },
                                        ),
                                    ]
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Result"},
                                    {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Result"},
                                    },
                                ]
                            },
                            "one result, or a list of results (same order) for a batch",
                        ),
                        "400": _error("bad JSON, bad base64, missing or unknown field"),
                        **common_errors,
                        "408": _error("the body did not arrive within server.body_timeout"),
                        "413": _error(
                            "body over limits.max_body_bytes, too many images, or a batch over "
                            "limits.max_batch_pixels"
                        ),
                        "415": _error("unsupported Content-Type"),
                        "422": _error("not a decodable image, or too many pixels"),
                        "429": _error("rate limit exceeded (see Retry-After)"),
                        "503": _error("the model is not loaded yet (see Retry-After)"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is alive",
                    "responses": {"200": _json({"type": "object"}, "alive")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The model is loaded and /predict will answer",
                    "responses": {
                        "200": _json({"type": "object"}, "ready"),
                        "503": _json({"type": "object"}, "not ready, with the reason"),
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The served model's metadata",
                    **protected,
                    "responses": {
                        "200": _json({"type": "object"}, "metadata"),
                        **common_errors,
                        "503": _error("the model is not loaded yet"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    **protected,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **common_errors,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
            **tf_serving_paths(protected, max_batch),
        },
        "components": {
            "schemas": {
                "Result": contract,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "request_id": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
