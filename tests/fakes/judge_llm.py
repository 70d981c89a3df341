"""A judge LLM behind an OpenAI-compatible endpoint (an external service, faked over real
HTTP with FastAPI), and the judge config pointing at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneline.evaluate.config import JudgeConfig


def fake_judge(decide: Callable[[str], str | None]) -> Any:
    """An OpenAI-compatible judge LLM (an external service, faked): `decide(prompt)` gives the
    reply, or None for an HTTP 400."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    app.state.bodies = []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        app.state.bodies.append(body)
        text = decide(body["messages"][-1]["content"])
        if text is None:
            return JSONResponse({"error": {"message": "prompt refused"}}, status_code=400)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    return app


def judge_config(url: str, judge: dict | None = None, **endpoint: Any) -> JudgeConfig:
    settings = {"base_url": url, "model": "judge", "max_retries": 0, "timeout_s": 60,
                "api_key_env": None, **endpoint}
    return JudgeConfig(endpoint=settings, **(judge or {}))
