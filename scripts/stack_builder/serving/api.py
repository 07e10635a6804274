"""The HTTP API (Starlette): the routes, the request size limit, and every error as JSON.

``GET /models``, ``POST /models/{image}/predict``, ``GET /healthz``, ``GET /readyz``, ``GET /openapi.json``,
``GET /docs``. The service's blocking calls run in the server's thread pool.
"""
from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from stack_builder.serving import openapi
from stack_builder.serving.access import AccessLog
from stack_builder.serving.questions import ApiError
from stack_builder.serving.service import Service

LOGGER = logging.getLogger(__name__)


def make_app(service: Service) -> AccessLog:
    """The ASGI application serving ``service``, its access log around it."""
    spec = openapi.document(service.options.limits)
    docs = openapi.page(spec)

    async def models(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(service.models))

    async def predict(request: Request) -> Response:
        body = await _body(request, service.options.limits.max_body)
        answer = await run_in_threadpool(service.predict, request.path_params["image"], body)
        request.state.keys, request.state.digest = answer.keys, answer.digest
        return Response(answer.body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        await run_in_threadpool(service.ready)
        return JSONResponse({"status": "ready"})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(docs)

    routes = [Route("/models", models, methods=["GET"]), Route("/models/{image}/predict", predict, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
              Route("/openapi.json", openapi_json, methods=["GET"]), Route("/docs", docs_page, methods=["GET"])]
    handlers: Any = {ApiError: _refused, HTTPException: _http_error, Exception: _bug}
    return AccessLog(Starlette(routes=routes, exception_handlers=handlers))


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes: by its Content-Length before reading, else as
    it arrives."""
    length = request.headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, "too large", f"a request body has at most {limit} bytes (this one says {length[:20]})")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise ApiError(413, "too large", f"a request body has at most {limit} bytes")
    return bytes(chunks)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    request.state.error = exc.kind
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "bad request")
    message = "no such path; see /docs" if exc.status_code == 404 else str(exc.detail)
    request.state.error = kind
    return JSONResponse({"error": kind, "message": message}, status_code=exc.status_code,
                        headers=dict(exc.headers or {}))


async def _bug(request: Request, exc: Exception) -> Response:
    request.state.error = "internal error"
    LOGGER.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error", "message": "the server failed; its log says why"},
                        status_code=500)
