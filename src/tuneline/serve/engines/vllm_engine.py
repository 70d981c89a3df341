"""GPU engine on vLLM (AsyncLLMEngine with LoRA), behind the same Engine protocol."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.models.generation import prompt_ids
from tuneline.serve.config import ServeConfig
from tuneline.serve.engines.engine import (
    EngineStats,
    FinalEvent,
    GenerationRequest,
    QueueFull,
    Sink,
    TextEvent,
    TokenLogprob,
)


class VllmEngine:
    """vLLM's own continuous batching and paged KV cache; adapters as LoRARequests.

    vLLM runs on its own asyncio loop in a background thread, so the server's loop and the
    protocol's thread-safe `submit` stay the same as for the transformers engine.
    """

    def __init__(self, engine: Any, tokenizer: Any, lora: dict[str, Any], settings: ServeConfig,
                 merged_name: str | None = None):
        self.engine, self.tokenizer, self._lora = engine, tokenizer, lora
        self.adapters = tuple(sorted(n for n in lora if n != merged_name))
        self._default = lora.get(merged_name) if merged_name else None
        self.context_length = int(engine.model_config.max_model_len) if hasattr(
            engine, "model_config") else 4096
        self._limit = settings.batching.max_batch_size + settings.batching.max_queue
        self._in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tuneline-vllm",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, base: str, adapters: dict[str, Path], settings: ServeConfig,
             merged_name: str | None = None) -> VllmEngine:
        """Start vLLM on `base` (a local folder: nothing is downloaded) with LoRA enabled."""
        vllm = require("vllm")
        from vllm.lora.request import LoRARequest

        from tuneline.models.loading import load_tokenizer
        from tuneline.models.resolve import resolve_model

        source = str(resolve_model(base, None))
        args = vllm.AsyncEngineArgs(
            model=source, enable_lora=bool(adapters), max_loras=max(len(adapters), 1),
            max_num_seqs=settings.batching.max_batch_size, max_lora_rank=64)
        engine = vllm.AsyncLLMEngine.from_engine_args(args)
        lora = {name: LoRARequest(name, index + 1, str(path))
                for index, (name, path) in enumerate(adapters.items())}
        return cls(engine, load_tokenizer(base), lora, settings, merged_name)

    def encode_chat(self, messages: list[dict[str, str]], adapter: str | None) -> list[int]:
        return prompt_ids(self.tokenizer, messages)

    def encode_text(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def token_strings(self, ids: list[int]) -> list[str]:
        return [str(self.tokenizer.decode([i])) for i in ids]

    def submit(self, request: GenerationRequest, sink: Sink) -> threading.Event:
        if request.adapter is not None and request.adapter not in self._lora:
            raise KeyError(f"adapter '{request.adapter}' is not loaded")
        with self._lock:
            if self._in_flight >= self._limit:
                raise QueueFull(1.0, "the request queue is full")
            self._in_flight += 1
        cancelled = threading.Event()
        asyncio.run_coroutine_threadsafe(self._run(request, sink, cancelled), self._loop)
        return cancelled

    async def _run(self, request: GenerationRequest, sink: Sink,
                   cancelled: threading.Event) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        s = request.sampling
        params = SamplingParams(max_tokens=s.max_tokens, temperature=s.temperature,
                                top_p=s.top_p, seed=s.seed, stop=list(s.stop) or None,
                                logprobs=s.logprobs)
        lora = self._lora[request.adapter] if request.adapter else self._default
        request_id = uuid.uuid4().hex
        emitted, output, sent = "", None, 0
        try:
            async for result in self.engine.generate(
                    TokensPrompt(prompt_token_ids=request.prompt_ids), params, request_id,
                    lora_request=lora):
                output = result.outputs[0]
                if cancelled.is_set():
                    await self.engine.abort(request_id)
                    sink(FinalEvent(emitted, len(request.prompt_ids), len(output.token_ids),
                                    "cancelled"))
                    return
                if len(output.text) > len(emitted):
                    new = (_token_logprobs(output, s.logprobs) or ())[sent:]
                    sink(TextEvent(output.text[len(emitted):], new))
                    emitted, sent = output.text, sent + len(new)
            assert output is not None
            logprobs = _token_logprobs(output, s.logprobs)
            if logprobs and len(logprobs) > sent:
                sink(TextEvent("", logprobs[sent:]))
            sink(FinalEvent(output.text, len(request.prompt_ids), len(output.token_ids),
                            output.finish_reason or "stop", token_ids=tuple(output.token_ids),
                            logprobs=logprobs))
        except Exception as exc:  # a failed request fails alone
            sink(FinalEvent(emitted, len(request.prompt_ids), 0, "error", error=str(exc)))
        finally:
            with self._lock:
                self._in_flight -= 1

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(waiting=0, active=self._in_flight)

    def close(self, timeout_s: float = 30.0) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while self.stats().active and time.monotonic() < deadline:
            time.sleep(0.05)
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)


def _token_logprobs(output: Any, k: int | None) -> tuple[TokenLogprob, ...] | None:
    """vLLM's per-token {token id: Logprob} (the chosen token and the k likeliest, raw model
    log-probabilities by default) as TokenLogprobs; EOS is not in vLLM's token_ids."""
    if k is None or output.logprobs is None:
        return None
    found = []
    for token, candidates in zip(output.token_ids, output.logprobs, strict=False):
        ranked = sorted(candidates.items(), key=lambda c: c[1].rank or 0)
        top = tuple((int(t), float(lp.logprob)) for t, lp in ranked if lp.rank and lp.rank <= k)
        found.append(TokenLogprob(int(token), float(candidates[token].logprob), top))
    return tuple(found)
