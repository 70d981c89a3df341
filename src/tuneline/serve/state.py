"""What one server holds: its routes, guards, canary, metrics and feedback store."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneline.serve.config import ServeConfig
from tuneline.serve.engines.engine import Engine, FinalEvent

RAG_SUFFIX = "+rag"


class APIError(Exception):
    """An error to return to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type_, param, code
        self.headers = headers or {}


@dataclass(frozen=True)
class Route:
    """A served model name: which engine answers it, with which adapter, with retrieval or not."""

    engine: Engine
    adapter: str | None = None
    rag: bool = False
    root: str | None = None
    parent: str | None = None


@dataclass
class Canary:
    """Traffic for `name` is split between two routes by a CanaryRouter."""

    name: str
    router: Any  # tuneline.serve.canary.CanaryRouter


@dataclass
class ServerState:
    routes: dict[str, Route]
    settings: ServeConfig
    retriever: Any = None
    keys: Any = None  # guards.ApiKeyStore
    limiter: Any = None  # guards.RateLimiter
    quota: Any = None  # guards.DailyQuota
    metrics: Any = None  # metrics.ServerMetrics
    canary: Canary | None = None
    responses: Any = None  # feedback.ResponseLog
    feedback: Any = None  # feedback.FeedbackStore
    traffic: Any = None  # monitor.traffic.TrafficRecorder
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("tuneline.serve"))
    draining: bool = False
    started: float = field(default_factory=time.time)

    def engines(self) -> list[Engine]:
        return list({id(r.engine): r.engine for r in self.routes.values()}.values())

    def resolve(self, name: str, sticky_key: str) -> tuple[str, Route]:
        """The served name and route answering a request for `name` (the canary may pick)."""
        if self.canary is not None and name == self.canary.name:
            arm = self.canary.router.choose(sticky_key)
            if self.metrics is not None:
                self.metrics.canary_request(arm)
            return arm, self.routes[arm]
        route = self.routes.get(name)
        if route is None:
            raise APIError(404, f"The model '{name}' does not exist; available: "
                           f"{sorted(self.routes)}", "invalid_request_error", "model",
                           "model_not_found")
        return name, route

    def record(self, served: str, requested: str, status: int, latency_s: float,
               ttft_s: float | None, final: FinalEvent | None, key_name: str) -> None:
        """Account for one finished generation request: metrics, canary, quota."""
        prompt = final.prompt_tokens if final else 0
        completion = final.completion_tokens if final else 0
        if self.metrics is not None:
            self.metrics.observe_request(served, status, latency_s, prompt, completion, ttft_s)
        if self.canary is not None and requested == self.canary.name:
            self.canary.router.record(served, latency_s, ok=status < 500)
        if self.quota is not None and final is not None:
            self.quota.charge(key_name, prompt + completion)


def with_retrieval_routes(routes: dict[str, Route], always: bool) -> dict[str, Route]:
    """`routes` and '<name>+rag' for each, answering with retrieval; with `always`, every
    name answers with retrieval (serve.retrieval: always)."""
    routes = {**routes, **{f"{n}{RAG_SUFFIX}": Route(r.engine, r.adapter, True, r.root, n)
                           for n, r in routes.items() if not r.rag}}
    if always:
        routes = {n: Route(r.engine, r.adapter, True, r.root, r.parent)
                  for n, r in routes.items()}
    return routes


def build_state(routes: dict[str, Route], settings: ServeConfig, retriever: Any = None,
                feedback_path: Path | None = None, canary_name: str | None = None,
                environ: dict[str, str] | None = None) -> ServerState:
    """Wire guards, metrics, canary and feedback from the settings."""
    import os

    from tuneline.serve.feedback import FeedbackStore, ResponseLog
    from tuneline.serve.guards import ApiKeyStore, DailyQuota, RateLimiter
    from tuneline.serve.prometheus import ServerMetrics

    if retriever is not None:
        routes = with_retrieval_routes(routes, settings.retrieval == "always")
    limits = settings.limits
    state = ServerState(
        routes=routes, settings=settings, retriever=retriever,
        keys=ApiKeyStore.from_config(settings.auth, os.environ if environ is None else environ),
        limiter=(RateLimiter(limits.requests_per_minute, limits.burst)
                 if limits.requests_per_minute else None),
        quota=DailyQuota(limits.daily_token_quota) if limits.daily_token_quota else None,
        metrics=ServerMetrics(), responses=ResponseLog(),
        feedback=FeedbackStore(feedback_path) if feedback_path is not None else None,
    )
    for engine in state.engines():
        if hasattr(engine, "batcher"):
            engine.batcher.on_batch = state.metrics.observe_batch
    if canary_name is not None and settings.canary.percent > 0:
        state.canary = Canary(canary_name, canary_for(state, canary_name))
    return state


def canary_for(state: ServerState, name: str) -> Any:
    """A fresh CanaryRouter splitting `name` between its champion and candidate routes."""
    from tuneline.serve.canary import CanaryRouter

    settings = state.settings.canary
    champion = settings.champion or f"{name}@champion"
    candidate = settings.candidate or f"{name}@candidate"
    for arm in (champion, candidate):
        if arm not in state.routes:
            raise APIError(500, f"serve.canary: '{arm}' is not served", "server_error")

    def rolled_back(reason: str) -> None:
        state.metrics.canary_rollback()
        state.logger.warning("canary rolled back", extra={"fields": {
            "event": "canary_rollback", "candidate": candidate, "reason": reason}})

    return CanaryRouter(settings, champion, candidate, on_rollback=rolled_back)
