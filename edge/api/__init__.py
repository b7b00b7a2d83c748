"""The local HTTP API: ``POST /predict`` returning the result contract, served by gunicorn.

Kept import-light on purpose: ``ecolens --help`` imports the benchmark registry, which must not
pull Flask or gunicorn in. Use :func:`ecolens.edge.api.app.create_app` for the app factory.
"""
