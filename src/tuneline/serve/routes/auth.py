"""The API-key and rate-limit check that guards every route but health, ready and metrics."""

from __future__ import annotations

from fastapi import Request

from tuneline.serve.guards import bearer_token
from tuneline.serve.state import APIError, ServerState


async def authenticate(request: Request) -> None:
    """API key (when any is configured) and the per-key rate limit."""
    state: ServerState = request.app.state.tuneline
    if state.keys.enabled:
        name = state.keys.identify(bearer_token(request.headers.get("authorization")))
        if name is None:
            state.metrics.rejected("unauthorized")
            raise APIError(401, "Incorrect API key provided. Send 'Authorization: Bearer "
                           "<key>'.", "invalid_request_error", None, "invalid_api_key")
        request.state.key_name = name
    if state.limiter is not None:
        wait = state.limiter.acquire(request.state.key_name)
        if wait is not None:
            state.metrics.rejected("rate_limit")
            raise APIError(429, f"Rate limit reached for key '{request.state.key_name}': "
                           f"{state.settings.limits.requests_per_minute:g} requests per "
                           f"minute. Retry after {wait:.1f} s.", "rate_limit_error", None,
                           "rate_limit_exceeded", {"Retry-After": str(int(wait) + 1)})
