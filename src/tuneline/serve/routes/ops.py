"""Models, health, readiness, Prometheus metrics and feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tuneline.serve.protocol import FeedbackRequest, ModelCard, ModelList
from tuneline.serve.state import APIError, ServerState

public = APIRouter()  # no API key needed
router = APIRouter()


def _state(request: Request) -> ServerState:
    return request.app.state.tuneline


@public.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = _state(request)
    body: dict[str, Any] = {"status": "ok", "models": sorted(state.routes)}
    if state.canary is not None:
        body["canary"] = state.canary.router.status()
    return body


@public.get("/ready", response_model=None)
async def ready(request: Request) -> JSONResponse:
    state = _state(request)
    if state.draining:
        return JSONResponse({"ready": False, "reason": "draining"}, status_code=503)
    stats = [engine.stats() for engine in state.engines()]
    return JSONResponse({"ready": True, "waiting": sum(s.waiting for s in stats),
                         "active": sum(s.active for s in stats)})


@public.get("/metrics")
async def metrics(request: Request) -> Response:
    state = _state(request)
    stats = [engine.stats() for engine in state.engines()]
    state.metrics.set_queue(sum(s.waiting for s in stats), sum(s.active for s in stats))
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/v1/models")
async def models(request: Request) -> ModelList:
    state = _state(request)
    cards = [ModelCard(id=name, root=route.root, parent=route.parent)
             for name, route in sorted(state.routes.items())]
    if state.canary is not None:
        cards.append(ModelCard(id=state.canary.name, root=None, parent="canary"))
    return ModelList(data=cards)


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    from fastapi.concurrency import run_in_threadpool

    state = _state(request)
    if state.feedback is None:
        raise APIError(404, "feedback is not enabled on this server", "invalid_request_error")
    response = state.responses.get(body.response_id)
    feedback_id = await run_in_threadpool(state.feedback.add, body.response_id, body.rating,
                                          body.comment, response, request.state.key_name,
                                          body.correction)
    return {"id": feedback_id, "object": "feedback", "response_id": body.response_id,
            "matched_response": response is not None}
