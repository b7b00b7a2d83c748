"""The local API as a Flask Blueprint, for a team that runs a Flask site (``create_blueprint``),
and as the Flask app that ``ecolens serve --server flask`` runs under gunicorn
(``create_flask_app``, ``server``). Flask is imported only in this package, so the default
server (Starlette under uvicorn) never needs it.

Nothing here decides anything: the request id, the refusals (``admission.admit``), the route
table and endpoints (``routes``, ``tfserving``), parsing, limits, keys, errors, metrics and the
access log are the ones the ASGI app uses; ``bridge`` carries a WSGI request to them."""

from ecolens.edge.api.flask.blueprint import FlaskApi, create_blueprint, create_flask_app

__all__ = ["FlaskApi", "create_blueprint", "create_flask_app"]
