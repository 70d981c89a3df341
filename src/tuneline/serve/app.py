"""FastAPI application factory for the OpenAI-compatible server."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.serve.config import ServeConfig
from tuneline.serve.engines.engine import Engine
from tuneline.serve.protocol import error_body
from tuneline.serve.state import RAG_SUFFIX, APIError, Route, ServerState, build_state

__all__ = ["RAG_SUFFIX", "APIError", "Route", "build_app"]

_PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/docs", "/openapi.json"}


def build_app(routes: dict[str, Engine | Route], settings: ServeConfig | None = None,
              retriever: Any = None, feedback_path: Path | None = None,
              canary_name: str | None = None, environ: dict[str, str] | None = None,
              traffic: Any = None, drift_baseline: Any = None,
              follow_candidate: Callable[[ServerState], Any] | None = None) -> Any:
    """An app serving each route under its model name.

    Args:
        routes: model name (as clients send it in `model`) → engine (the engine's own model)
            or Route (an engine with an adapter).
        settings: the serve section (defaults when None).
        retriever: a `tuneline.rag.retrieve.Retriever`; with one, every model is also served
            as '<name>+rag' (retrieval on by default), and requests may set "rag": true.
        feedback_path: SQLite file for POST /v1/feedback (off when None).
        canary_name: the model name whose traffic `settings.canary` splits.
        environ: where API keys are read from (default: os.environ).
        traffic: a `tuneline.monitor.traffic.TrafficRecorder` that answered requests are
            handed to (none: nothing is recorded); closed when the app shuts down.
        drift_baseline: the served version's `DriftBaseline`; with `traffic`, the recorded
            requests are checked against it every settings.traffic.drift_every_s.
        follow_candidate: with a canary, called with the server's state; what it returns
            (e.g. a `tuneline.serve.follow.CandidateFollower`) is closed at shutdown.
    """
    fastapi = require("fastapi")
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from tuneline.serve.routes import generate, ops
    from tuneline.serve.routes.auth import authenticate

    settings = settings or ServeConfig()
    wrapped = {n: r if isinstance(r, Route) else Route(r) for n, r in routes.items()}
    state = build_state(wrapped, settings, retriever, feedback_path, canary_name, environ)
    state.traffic = traffic
    watcher = None
    if traffic is not None and drift_baseline is not None and settings.traffic.drift_every_s:
        from tuneline.monitor.traffic import DriftWatcher

        watcher = DriftWatcher(traffic.store, drift_baseline, state.metrics,
                               settings.traffic.drift_every_s, settings.traffic.drift_window,
                               settings.traffic.drift_webhook)

    follower = follow_candidate(state) if follow_candidate and state.canary else None

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        state.draining = True
        if follower is not None:
            follower.close()
        for engine in state.engines():
            engine.close(settings.drain_timeout_s)
        if watcher is not None:
            watcher.close()
        if state.traffic is not None:
            state.traffic.close()

    app = fastapi.FastAPI(title="tuneline", version="1", lifespan=lifespan)
    app.state.tuneline = state
    auth = fastapi.Depends(authenticate)
    app.include_router(ops.public)
    app.include_router(ops.router, dependencies=[auth])
    app.include_router(generate.router, dependencies=[auth])

    @app.exception_handler(APIError)
    async def _api_error(_: Any, exc: APIError) -> JSONResponse:
        body = error_body(str(exc), exc.type, exc.param, exc.code)
        return JSONResponse(status_code=exc.status, content=body, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = _param_path(first["loc"])
        if first.get("type") == "json_invalid":
            message, param = "request body is not valid JSON", None
        else:
            message, param = f"{'.'.join(loc) or 'body'}: {first['msg']}", ".".join(loc) or None
        body = error_body(message, "invalid_request_error", param)
        return JSONResponse(status_code=400, content=body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own errors (an undecodable body, an unknown path or method) in
        # OpenAI's shape like every other error.
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                            content=error_body(str(exc.detail), type_))

    @app.exception_handler(Exception)
    async def _unexpected(_: Any, exc: Exception) -> JSONResponse:
        state.logger.exception("unhandled error")
        return JSONResponse(status_code=500, content=error_body(
            f"internal error: {type(exc).__name__}", "server_error"))

    @app.middleware("http")
    async def request_context(request: Any, call_next: Any) -> Any:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.key_name = "anonymous"
        started = time.perf_counter()
        if settings.tracing:
            from tuneline.serve.tracing import request_span

            with request_span(request.method, request.url.path,
                              request.state.request_id) as span:
                response = await call_next(request)
                span.set_attribute("http.response.status_code", response.status_code)
        else:
            response = await call_next(request)
        response.headers["x-request-id"] = request.state.request_id
        if request.url.path not in _PUBLIC_PATHS:
            state.logger.info("request", extra={"fields": {
                "request_id": request.state.request_id, "method": request.method,
                "path": request.url.path, "status": response.status_code,
                "latency_s": round(time.perf_counter() - started, 4),
                "key": request.state.key_name}})
        return response

    return app


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|dict|list)\b|\[|^function-")


def _param_path(loc: Any) -> list[str]:
    """The request field an error is about: pydantic's location less 'body' and from the first
    union-member tag on ('stop.list[str]' → 'stop', 'messages.0.content.str' → ...content)."""
    path = []
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, str) and _TYPE_TAG.search(part):
            break
        path.append(str(part))
    return path
