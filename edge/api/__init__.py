"""The local HTTP API: ``POST /predict`` returning the result contract (and TF Serving's REST
API), an ASGI app served by uvicorn.

Kept import-light on purpose: ``ecolens --help`` imports the benchmark registry, which must not
pull Starlette or uvicorn in. Use :func:`ecolens.edge.api.app.create_app` for the app factory.
"""
