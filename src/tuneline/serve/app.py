"""FastAPI application factory for the OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

from tuneline._optional import require
from tuneline.serve.engines.base import Engine
from tuneline.serve.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ModelCard,
    ModelList,
    Usage,
    error_body,
)


class APIError(Exception):
    """An error to return to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type_, param, code


RAG_SUFFIX = "+rag"


def build_app(engines: dict[str, Engine], default_max_tokens: int = 256,
              retriever: Any = None) -> Any:
    """An app serving each engine under its model name.

    Args:
        engines: model name (as clients send it in `model`) → engine.
        default_max_tokens: completion budget when a request sets none.
        retriever: a `tuneline.rag.retrieve.Retriever`; with one, every model is also served
            as '<name>+rag' (retrieval on by default), and requests may set "rag": true.
    """
    fastapi = require("fastapi")
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    if retriever is not None:
        engines = {**engines, **{f"{name}{RAG_SUFFIX}": e for name, e in engines.items()}}
    app = fastapi.FastAPI(title="tuneline", version="1")

    @app.exception_handler(APIError)
    async def _api_error(_: Any, exc: APIError) -> JSONResponse:
        body = error_body(str(exc), exc.type, exc.param, exc.code)
        return JSONResponse(status_code=exc.status, content=body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first["loc"] if p != "body"]
        if first.get("type") == "json_invalid":
            message, param = "request body is not valid JSON", None
        else:
            message, param = f"{'.'.join(loc) or 'body'}: {first['msg']}", ".".join(loc) or None
        body = error_body(message, "invalid_request_error", param)
        return JSONResponse(status_code=400, content=body)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": sorted(engines)}

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=name) for name in sorted(engines)])

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> ChatCompletion:
        engine = engines.get(request.model)
        if engine is None:
            raise APIError(404, f"The model '{request.model}' does not exist; available: "
                           f"{sorted(engines)}", "invalid_request_error", "model",
                           "model_not_found")
        if request.stream:
            raise APIError(400, "streaming is not supported yet; send stream=false",
                           "invalid_request_error", "stream")
        messages = [m.model_dump() for m in request.messages]
        citations = None
        if request.rag if request.rag is not None else request.model.endswith(RAG_SUFFIX):
            messages, citations = await run_in_threadpool(_retrieve, retriever, messages)
        max_tokens = request.max_completion_tokens or request.max_tokens or default_max_tokens
        prompt_tokens = await run_in_threadpool(engine.count_prompt_tokens, messages)
        if prompt_tokens + max_tokens > engine.context_length:
            raise APIError(400, f"This model's maximum context length is "
                           f"{engine.context_length} tokens; the prompt has {prompt_tokens} and "
                           f"max_tokens is {max_tokens}.", "invalid_request_error",
                           "max_tokens", "context_length_exceeded")
        generation = await run_in_threadpool(
            engine.chat, messages, max_tokens, request.temperature, request.top_p
        )
        text, finish = _apply_stop(generation.text, request.stop, generation.finish_reason)
        return ChatCompletion(
            model=request.model,
            choices=[Choice(index=0, message=ChatMessage(role="assistant", content=text),
                            finish_reason=finish)],
            usage=Usage(prompt_tokens=generation.prompt_tokens,
                        completion_tokens=generation.completion_tokens,
                        total_tokens=generation.prompt_tokens + generation.completion_tokens),
            citations=citations,
        )

    return app


def _retrieve(retriever: Any, messages: list[dict[str, str]]
              ) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The conversation with retrieved passages in its last user turn, and their citations."""
    from tuneline.rag.prompt import citations, rag_messages

    if retriever is None:
        raise APIError(400, "\"rag\": true needs an index: start the server with "
                       "index.enabled and a built index (`tuneline index`)",
                       "invalid_request_error", "rag")
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    if question is None:
        raise APIError(400, "\"rag\": true needs a user message to retrieve for",
                       "invalid_request_error", "messages")
    hits = retriever.search([question])[0]
    max_chars = retriever.settings.max_passage_chars
    return rag_messages(messages, [h.passage for h in hits], max_chars), citations(hits)


def _apply_stop(text: str, stop: str | list[str] | None, finish: str) -> tuple[str, str]:
    """Cut the text at the first stop sequence, as OpenAI does (the stop text is not returned)."""
    sequences = [stop] if isinstance(stop, str) else (stop or [])
    cuts = [text.index(s) for s in sequences if s and s in text]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, finish

