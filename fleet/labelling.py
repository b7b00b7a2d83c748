"""The labelling API and page, mounted on the aggregator's dashboard server (so its keys and
LAN checks guard them too).

    GET  /label                              the page: a grid, uncertain first, keyboard labels
    GET  /api/samples?device=&model=&state=  samples (state: unlabelled, labelled, all)
    GET  /api/samples/progress               counts per human label, bins and model versions
    GET  /api/samples/<event_id>/image       the crop the bin classified
    POST /api/samples/<event_id>/label       {"label": "plastic" | "non_plastic" | "skip"}

Writes need a JSON body: a browser sends one cross-site only after a CORS preflight, which this
server never grants, so another web page cannot label on the operator's behalf.
"""

from __future__ import annotations

from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.http.errors import error_body
from ecolens.fleet.samples.store import SampleStore


def labelling_blueprint(store: SampleStore) -> Any:
    from flask import Blueprint, current_app, jsonify, request, send_file

    blueprint = Blueprint("labelling", __name__)

    @blueprint.errorhandler(ConfigError)
    def bad_request(exc: ConfigError) -> Any:
        return jsonify(error_body("bad_request", str(exc))), 400

    @blueprint.get("/label")
    def page() -> Any:
        return current_app.send_static_file("label.html")

    @blueprint.get("/api/samples")
    def samples() -> Any:
        args = request.args
        try:
            limit = int(args.get("limit", 200))
        except ValueError as exc:
            raise ConfigError("limit must be a number") from exc
        found = store.list(
            args.get("device") or None, args.get("model") or None, args.get("state", "unlabelled"), limit
        )
        return jsonify(samples=[s.public() for s in found])

    @blueprint.get("/api/samples/progress")
    def progress() -> Any:
        return jsonify(store.progress())

    @blueprint.get("/api/samples/<event_id>/image")
    def image(event_id: str) -> Any:
        path = store.image(event_id)
        if path is None or not path.is_file():
            return jsonify(error_body("not_found", f"no sample {event_id}")), 404
        return send_file(path, mimetype="image/jpeg", max_age=3600)

    @blueprint.post("/api/samples/<event_id>/label")
    def label(event_id: str) -> Any:
        body = request.get_json(silent=True) if request.is_json else None
        if not isinstance(body, dict) or "label" not in body:
            return jsonify(
                error_body("bad_request", 'send JSON {"label": "plastic"|"non_plastic"|"skip"}')
            ), 415
        if not store.label(event_id, str(body["label"])):
            return jsonify(error_body("not_found", f"no sample {event_id}")), 404
        return jsonify(event_id=event_id, label=body["label"])

    return blueprint
