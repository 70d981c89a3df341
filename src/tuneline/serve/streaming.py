"""Bridge from an engine's thread to asyncio: submit, then await its events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from tuneline.serve.engines.engine import Engine, FinalEvent, GenerationRequest, TextEvent


class PendingGeneration:
    """A submitted request; iterate `events()` once to receive its text and final event.

    Submitting happens in the constructor so that a full queue (QueueFull) is raised before any
    response has started.
    """

    def __init__(self, engine: Engine, request: GenerationRequest, timeout_s: float):
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[TextEvent | FinalEvent] = asyncio.Queue()
        self._timeout_s = timeout_s
        self.request = request
        self.started = time.perf_counter()
        self.first_token_s: float | None = None
        self._cancel = engine.submit(request, self._from_engine)

    def _from_engine(self, event: TextEvent | FinalEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone (server stopped): nobody is listening
            self._cancel.set()

    async def events(self) -> AsyncIterator[TextEvent | FinalEvent]:
        """Text events then one FinalEvent; TimeoutError after the request timeout."""
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    event = await self._queue.get()
                    if self.first_token_s is None:
                        self.first_token_s = time.perf_counter() - self.started
                    yield event
                    if isinstance(event, FinalEvent):
                        return
        finally:
            self._cancel.set()

    async def result(self) -> FinalEvent:
        """Wait for the whole answer."""
        async for event in self.events():
            if isinstance(event, FinalEvent):
                return event
        raise RuntimeError("the engine ended a request without a final event")


class FixedReply:
    """Stands in for the engine where the answer is decided without the model (retrieval kept
    no passage: index.retrieval.decline_without_passages): the reply, at once, as one text event
    and a final one, so streaming, usage, the logs and the traffic record treat it as any
    answer. Its completion tokens are the reply's tokens in `engine`'s tokenizer, cut to the
    request's max_tokens as a generation would be; no log-probabilities (none were computed)."""

    def __init__(self, text: str, engine: Engine):
        self.text, self.engine = text, engine

    def submit(self, request: GenerationRequest, sink: Any) -> threading.Event:
        ids = self.engine.encode_text(self.text)
        text, reason = self.text, "stop"
        if len(ids) > request.sampling.max_tokens:
            ids = ids[:request.sampling.max_tokens]
            text, reason = "".join(self.engine.token_strings(ids)), "length"
        asked = request.sampling.logprobs is not None
        sink(TextEvent(text))
        sink(FinalEvent(text, len(request.prompt_ids), len(ids), reason,
                        logprobs=() if asked else None))
        return threading.Event()


def sse(data: Any) -> bytes:
    """One server-sent event carrying JSON (or the literal [DONE])."""
    import json

    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()
