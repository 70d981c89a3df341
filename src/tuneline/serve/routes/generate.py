"""POST /v1/chat/completions and /v1/completions, streamed (SSE) or whole."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from tuneline.serve.engines.engine import (
    FinalEvent,
    GenerationRequest,
    QueueFull,
    SamplingParams,
    TextEvent,
)
from tuneline.serve.engines.engine import TokenLogprob as EngineTokenLogprob  # not the reply's
from tuneline.serve.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionRequest,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from tuneline.serve.state import APIError, Route, ServerState
from tuneline.serve.streaming import FixedReply, PendingGeneration, sse

router = APIRouter()


@dataclass
class _Call:
    """One generation request on its way through the server."""

    state: ServerState
    requested: str
    served: str
    route: Route
    key_name: str
    request_id: str
    started: float
    passages: int | None = None  # retrieved for it, when it asked with RAG


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request
                           ) -> JSONResponse | StreamingResponse:
    _refuse_unsupported(body)
    call = _start(request, body.model)
    messages = [m.model_dump() for m in body.messages]
    citations = None
    if body.rag is False and call.state.settings.retrieval == "always":
        raise APIError(400, "this server answers every request with retrieval "
                       "(serve.retrieval: always); \"rag\": false is not served",
                       "invalid_request_error", "rag")
    if body.rag if body.rag is not None else call.route.rag:
        messages, citations = await run_in_threadpool(_retrieve, call.state.retriever, messages)
        call.passages = len(citations)
    prompt_ids = await run_in_threadpool(call.route.engine.encode_chat, messages,
                                         call.route.adapter)
    sampling = _sampling(call, len(prompt_ids), body.max_completion_tokens or body.max_tokens,
                         body.temperature, body.top_p, body.seed, body.stop,
                         (body.top_logprobs or 0) if body.logprobs else None,
                         over_passages=citations is not None)
    generation = GenerationRequest(prompt_ids, sampling, call.route.adapter)
    reply = call.state.retriever.no_passage_reply if citations == [] else None
    pending = (_submit(call, generation) if reply is None
               else PendingGeneration(FixedReply(reply, call.route.engine), generation,
                                      call.state.settings.batching.request_timeout_s))
    response_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _sse_chunks(call, pending, response_id, messages, include_usage, True,
                             citations)
        return StreamingResponse(chunks, media_type="text/event-stream",
                                 headers=_headers(call))
    final = await _finish(call, pending, messages)
    completion = ChatCompletion(
        id=response_id, model=call.served,
        choices=[Choice(index=0, message=ChatMessage(role="assistant", content=final.text),
                        finish_reason=_finish_reason(final),
                        logprobs=_chat_logprobs(call.route.engine, final.logprobs))],
        usage=_usage(final), citations=citations)
    call.state.responses.remember(response_id, call.served, messages, final.text)
    return JSONResponse(completion.model_dump(exclude_none=True), headers=_headers(call))


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request
                      ) -> JSONResponse | StreamingResponse:
    _refuse_unsupported(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(400, "send one prompt per request", "invalid_request_error", "prompt")
    call = _start(request, body.model)
    if call.state.settings.retrieval == "always":
        raise APIError(400, "this server answers every request with retrieval "
                       "(serve.retrieval: always): a raw prompt has no question to retrieve "
                       "for; use /v1/chat/completions", "invalid_request_error", "model")
    prompt_ids = await run_in_threadpool(call.route.engine.encode_text, prompts[0])
    if not prompt_ids:
        raise APIError(400, "the prompt is empty", "invalid_request_error", "prompt")
    sampling = _sampling(call, len(prompt_ids), body.max_tokens, body.temperature, body.top_p,
                         body.seed, body.stop, body.logprobs)
    pending = _submit(call, GenerationRequest(prompt_ids, sampling, call.route.adapter))
    response_id = f"cmpl-{uuid.uuid4().hex}"
    messages = [{"role": "user", "content": prompts[0]}]
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _sse_chunks(call, pending, response_id, messages, include_usage, False)
        return StreamingResponse(chunks, media_type="text/event-stream",
                                 headers=_headers(call))
    final = await _finish(call, pending, messages)
    completion = Completion(
        id=response_id, model=call.served, usage=_usage(final),
        choices=[CompletionChoice(index=0, text=final.text,
                                  finish_reason=_finish_reason(final),
                                  logprobs=_completion_logprobs(call.route.engine,
                                                                final.logprobs))])
    call.state.responses.remember(response_id, call.served, messages, final.text)
    return JSONResponse(completion.model_dump(), headers=_headers(call))


def _refuse_unsupported(body: ChatCompletionRequest | CompletionRequest) -> None:
    """A 400 naming the first field this server would otherwise have to ignore."""
    refused = body.refusal()
    if refused is not None:
        param, message = refused
        raise APIError(400, message, "invalid_request_error", param)


def _start(request: Request, model: str) -> _Call:
    state: ServerState = request.app.state.tuneline
    if state.draining:
        raise APIError(503, "the server is shutting down", "server_error", None,
                       "shutting_down", {"Retry-After": "1"})
    key_name = request.state.key_name
    sticky = request.headers.get(state.settings.canary.sticky_header) or (
        key_name if key_name != "anonymous" else (request.client.host if request.client else ""))
    served, route = state.resolve(model, sticky)
    if state.quota is not None and (wait := state.quota.check(key_name)) is not None:
        state.metrics.rejected("quota")
        raise APIError(429, f"daily token quota of {state.settings.limits.daily_token_quota} "
                       f"exhausted for key '{key_name}'", "insufficient_quota", None,
                       "insufficient_quota", {"Retry-After": str(int(wait) + 1)})
    return _Call(state, model, served, route, key_name, request.state.request_id,
                 time.perf_counter())


def _sampling(call: _Call, prompt_tokens: int, max_tokens: int | None, temperature: float,
              top_p: float, seed: int | None, stop: str | list[str] | None,
              logprobs: int | None = None, over_passages: bool = False) -> SamplingParams:
    """The request's decoding; an answer over retrieved passages also ends where it runs on
    into the prompt's passage markup (rag.prompt.ANSWER_STOPS, as evaluation's do)."""
    from tuneline.rag.prompt import ANSWER_STOPS

    max_tokens = max_tokens or call.state.settings.max_tokens_default
    context = call.route.engine.context_length
    if prompt_tokens + max_tokens > context:
        raise APIError(400, f"This model's maximum context length is {context} tokens; the "
                       f"prompt has {prompt_tokens} and max_tokens is {max_tokens}.",
                       "invalid_request_error", "max_tokens", "context_length_exceeded")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > 4:
        raise APIError(400, "at most 4 stop sequences", "invalid_request_error", "stop")
    stops = tuple(s for s in stops if s) + (ANSWER_STOPS if over_passages else ())
    return SamplingParams(max_tokens, temperature, top_p, seed, stops, logprobs)


def _chat_logprobs(engine: Any, logprobs: Sequence[EngineTokenLogprob] | None
                   ) -> ChoiceLogprobs | None:
    """OpenAI's chat shape: per answer token its text, bytes, log-probability, alternatives."""
    if logprobs is None:
        return None
    text = _token_texts(engine, logprobs)

    def entry(token: int, logprob: float) -> dict[str, Any]:
        return {"token": text[token], "logprob": logprob,
                "bytes": list(text[token].encode("utf-8"))}

    return ChoiceLogprobs(content=[
        TokenLogprob(**entry(t.token_id, t.logprob),
                     top_logprobs=[TopLogprob(**entry(i, lp)) for i, lp in t.top])
        for t in logprobs])


def _token_texts(engine: Any, logprobs: Sequence[EngineTokenLogprob]) -> dict[int, str]:
    """The text of every chosen and alternative token, decoded in one call."""
    ids = list(dict.fromkeys([t.token_id for t in logprobs]
                             + [i for t in logprobs for i, _ in t.top]))
    return dict(zip(ids, engine.token_strings(ids), strict=True))


def _completion_logprobs(engine: Any, logprobs: Sequence[EngineTokenLogprob] | None,
                         before: str = "") -> dict[str, list[Any]] | None:
    """OpenAI's legacy completions shape (tokens, token_logprobs, top_logprobs, text_offset).

    `before`: the texts of the answer's earlier tokens (streamed in earlier chunks). An offset
    is where the token starts in the answer's text, which has its leading space stripped."""
    if logprobs is None:
        return None
    text = _token_texts(engine, logprobs)
    tokens = [text[t.token_id] for t in logprobs]
    starts = [len(before) + sum(len(t) for t in tokens[:n]) for n in range(len(tokens))]
    joined = before + "".join(tokens)
    lead = len(joined) - len(joined.lstrip())
    offsets = [max(0, start - lead) for start in starts]
    return {"tokens": tokens, "token_logprobs": [t.logprob for t in logprobs],
            "top_logprobs": [{text[i]: lp for i, lp in t.top} for t in logprobs],
            "text_offset": offsets}


def _submit(call: _Call, request: GenerationRequest) -> PendingGeneration:
    try:
        return PendingGeneration(call.route.engine, request,
                                 call.state.settings.batching.request_timeout_s)
    except QueueFull as full:
        call.state.metrics.rejected("queue_full")
        call.state.record(call.served, call.requested, 429, 0.0, None, None, call.key_name)
        wait = max(1, round(full.retry_after_s))
        raise APIError(429, f"{full}; retry after {wait} s", "rate_limit_error", None,
                       "server_overloaded", {"Retry-After": str(wait)}) from None


async def _finish(call: _Call, pending: PendingGeneration, messages: list[dict[str, str]]
                  ) -> FinalEvent:
    try:
        final = await pending.result()
    except TimeoutError:
        _account(call, pending, 504, None, messages)
        raise APIError(504, f"the request did not finish within "
                       f"{call.state.settings.batching.request_timeout_s:g} s",
                       "timeout_error", None, "timeout") from None
    status = 500 if final.finish_reason == "error" else 200
    _account(call, pending, status, final, messages)
    if status == 500:
        raise APIError(500, f"generation failed: {final.error}", "server_error")
    return final


def _account(call: _Call, pending: PendingGeneration, status: int, final: FinalEvent | None,
             messages: list[dict[str, str]]) -> None:
    from tuneline.serve.logs import request_record

    latency = time.perf_counter() - call.started
    call.state.record(call.served, call.requested, status, latency, pending.first_token_s,
                      final, call.key_name)
    if status == 504:
        call.state.metrics.rejected("timeout")
    if call.state.settings.tracing:
        from tuneline.serve.tracing import record_generation

        record_generation(call.started, {
            "tuneline.request_id": call.request_id, "tuneline.model": call.served,
            "tuneline.status": status, "tuneline.key": call.key_name,
            "gen_ai.usage.input_tokens": final.prompt_tokens if final else 0,
            "gen_ai.usage.output_tokens": final.completion_tokens if final else 0,
            "tuneline.ttft_s": pending.first_token_s or 0.0})
    if call.state.traffic is not None:
        from tuneline.monitor.prompts import question_of
        from tuneline.monitor.traffic import Request

        call.state.traffic.record(Request(
            time.time(), call.served, status, latency, call.passages, question_of(messages),
            final.text if final else ""))
    call.state.logger.info("generation", extra={"fields": request_record(
        call.request_id, "POST", "generate", status, latency, call.served, call.key_name,
        final.prompt_tokens if final else 0, final.completion_tokens if final else 0,
        prompt_text=str(messages), completion_text=final.text if final else None,
        log_prompts=call.state.settings.log_prompts)})


async def _sse_chunks(call: _Call, pending: PendingGeneration, response_id: str,
                      messages: list[dict[str, str]], include_usage: bool, chat: bool,
                      citations: Any = None) -> AsyncIterator[bytes]:
    """The SSE body of a streamed chat completion (`chat`) or text completion."""
    base = {"id": response_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()), "model": call.served}

    logprobs_asked = pending.request.sampling.logprobs is not None
    token_texts = ""  # the texts of the tokens streamed so far, for completions' text_offset

    def choice(event: TextEvent | None, finish: str | None) -> dict[str, Any]:
        text = None if event is None else event.text
        nonlocal token_texts
        logprobs = None
        if logprobs_asked and event is not None and chat:
            logprobs = _chat_logprobs(call.route.engine, event.logprobs)
        elif logprobs_asked and event is not None:
            logprobs = _completion_logprobs(call.route.engine, event.logprobs, token_texts)
            token_texts += "".join(logprobs["tokens"] if logprobs else [])
        if chat:
            delta = {} if text is None else {"content": text}
            return {"index": 0, "delta": delta, "finish_reason": finish,
                    **({"logprobs": logprobs.model_dump()} if logprobs is not None else {})}
        return {"index": 0, "text": text or "", "logprobs": logprobs, "finish_reason": finish}

    if chat:
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        yield sse({**base, "choices": [first], **({"citations": citations} if citations else {})})
    async for kind, payload in _stream_events(call, pending, messages, response_id):
        if kind == "text":
            yield sse({**base, "choices": [choice(payload, None)]})
        elif kind == "final":
            yield sse({**base, "choices": [choice(None, _finish_reason(payload))]})
            if include_usage:
                yield sse({**base, "choices": [], "usage": _usage(payload).model_dump()})
        else:
            yield sse(payload)
    yield sse("[DONE]")


async def _stream_events(call: _Call, pending: PendingGeneration,
                         messages: list[dict[str, str]], response_id: str
                         ) -> AsyncIterator[tuple[str, Any]]:
    """('text', TextEvent)*, then ('final', FinalEvent) or ('error', body); accounts for the
    call."""
    from tuneline.serve.protocol import error_body

    final, status = None, 200
    try:
        async for event in pending.events():
            if isinstance(event, FinalEvent):
                final = event
                if event.finish_reason == "error":
                    status = 500
                    yield "error", error_body(f"generation failed: {event.error}",
                                              "server_error")
                else:
                    yield "final", event
            else:
                yield "text", event
    except TimeoutError:
        status = 504
        yield "error", error_body("the request did not finish in time", "timeout_error",
                                  None, "timeout")
    finally:
        # A client that went away mid-stream lands here too (the generator is closed).
        if final is None and status == 200:
            status = 499
        _account(call, pending, status, final, messages)
        if final is not None and status == 200:
            call.state.responses.remember(response_id, call.served, messages, final.text)


def _finish_reason(final: FinalEvent) -> str:
    return "length" if final.finish_reason == "length" else "stop"


def _usage(final: FinalEvent) -> Usage:
    return Usage(prompt_tokens=final.prompt_tokens, completion_tokens=final.completion_tokens,
                 total_tokens=final.prompt_tokens + final.completion_tokens)


def _headers(call: _Call) -> dict[str, str]:
    return {"x-request-id": call.request_id, "x-tuneline-model": call.served}


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
