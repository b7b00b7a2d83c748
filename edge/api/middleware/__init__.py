"""The API's pure ASGI middlewares, one concern each, composed by ``app.create_app`` (outermost
first): security headers, request id, access log, metrics, error mapping, then the refusals that
need no body (client allow-list, API key, rate limit, announced size) before Starlette routes.

So a refusal costs no routing, no body read and no model work, and every answer (refusals
included) carries the request id and the security headers, is counted and gets its access-log
line. The decisions themselves are plain functions and objects (``admission``, ``auth``,
``ratelimit``, ``context``, ``errors``) that a WSGI adapter can call as well. Kept import-light:
nothing here imports Starlette beyond its types."""
