"""OpenAI-compatible chat client: bounded concurrency, retries, a prompt cache, cost totals."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.artifacts import write_text_atomic
from tuneline.errors import LlmEndpointError
from tuneline.llm.config import LlmEndpointConfig

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
FATAL_STATUS = {401: "the API key was refused", 403: "the API key lacks permission",
                404: "the URL or model name is wrong"}
MAX_BACKOFF_S = 30.0

Messages = list[dict[str, str]]


@dataclass
class ChatResult:
    """One completed request: the text, or the reason it failed after every retry."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None


@dataclass
class UsageTotals:
    """Requests, tokens and cost of a batch of calls (cached answers cost nothing)."""

    requests: int = 0
    cached: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "errors"},
                "cost_usd": round(self.cost_usd, 6), "errors": dict(self.errors)}


class LlmClient:
    """Chat completions against one endpoint; thread-safe, so calls can run concurrently.

    Args:
        cfg: endpoint, model, limits and prices.
        cache_dir: folder for cached responses keyed by request hash (None: no cache).
        sleep: the backoff sleep (tests pass a no-op).
    """

    def __init__(self, cfg: LlmEndpointConfig, cache_dir: Path | None,
                 sleep: Callable[[float], None] = time.sleep):
        httpx = require("httpx")
        self.cfg = cfg
        self.cache_dir = cache_dir if cfg.cache else None
        self.totals = UsageTotals()
        self._sleep = sleep
        self._lock = threading.Lock()
        key = os.environ.get(cfg.api_key_env or "", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=cfg.concurrency)
        self._http = httpx.Client(base_url=cfg.base_url.rstrip("/") + "/", headers=headers,
                                  timeout=cfg.timeout_s, limits=limits)

    def close(self) -> None:
        self._http.close()

    def chat_many(self, conversations: list[Messages]) -> Iterator[tuple[int, ChatResult]]:
        """Run every conversation, at most `concurrency` at once; yields (index, result)."""
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            futures = {pool.submit(self.chat, messages): i
                       for i, messages in enumerate(conversations)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def chat(self, messages: Messages) -> ChatResult:
        """One chat completion, from the cache when the same request was answered before."""
        body = {"model": self.cfg.model, "messages": messages,
                "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        cache_path = self._cache_path(body)
        if cache_path is not None and cache_path.is_file():
            result = ChatResult(**json.loads(cache_path.read_text(encoding="utf-8")))
            result.cached = True
        else:
            result = self._post_with_retries(body)
            if cache_path is not None and result.error is None:
                write_text_atomic(cache_path, json.dumps(result.__dict__))
        self._account(result)
        return result

    def _post_with_retries(self, body: dict[str, Any]) -> ChatResult:
        httpx = require("httpx")
        reason = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                with self._lock:
                    self.totals.retries += 1
            try:
                response = self._http.post("chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = f"{type(exc).__name__}"
                self._sleep(_backoff(attempt, None))
                continue
            if response.status_code == 200:
                return _parse_completion(response)
            if response.status_code in FATAL_STATUS:
                raise LlmEndpointError(
                    f"{self.cfg.base_url}: HTTP {response.status_code} for model "
                    f"'{self.cfg.model}' ({FATAL_STATUS[response.status_code]}): "
                    f"{_error_message(response)}; check llm.endpoint and ${self.cfg.api_key_env}"
                )
            reason = f"http_{response.status_code}"
            if response.status_code not in RETRYABLE_STATUS:
                return ChatResult(text=None, error=f"{reason}: {_error_message(response)}")
            self._sleep(_backoff(attempt, response.headers.get("retry-after")))
        if reason in {"ConnectError", "ConnectTimeout"}:
            raise LlmEndpointError(f"cannot reach {self.cfg.base_url} ({reason} after "
                                   f"{self.cfg.max_retries + 1} attempts); is the server up?")
        return ChatResult(text=None, error=reason)

    def _account(self, result: ChatResult) -> None:
        with self._lock:
            t = self.totals
            t.requests += 1
            t.cached += result.cached
            if result.error is not None:
                t.failed += 1
                t.errors[result.error.split(":")[0]] += 1
            if not result.cached:
                t.prompt_tokens += result.prompt_tokens
                t.completion_tokens += result.completion_tokens
                t.cost_usd += (result.prompt_tokens * self.cfg.input_price_per_mtok
                               + result.completion_tokens * self.cfg.output_price_per_mtok) / 1e6

    def _cache_path(self, body: dict[str, Any]) -> Path | None:
        if self.cache_dir is None:
            return None
        identity = json.dumps({"base_url": self.cfg.base_url, **body}, sort_keys=True)
        digest = hashlib.sha256(identity.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.json"


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait: the server's Retry-After when given, else capped exponential + jitter."""
    if retry_after is not None:
        try:
            return min(float(retry_after), 2 * MAX_BACKOFF_S)
        except ValueError:
            pass  # an HTTP date; fall back to our own schedule
    return min(MAX_BACKOFF_S, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)


def _parse_completion(response: Any) -> ChatResult:
    try:
        payload = response.json()
        text = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ChatResult(text=None, error="malformed_response")
    usage = payload.get("usage") or {}
    return ChatResult(text=text or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                      completion_tokens=int(usage.get("completion_tokens", 0)))


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message", error))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


def chat_all(endpoint: LlmEndpointConfig, conversations: list[Messages],
             cache_dir: Path | None, desc: str) -> tuple[list[ChatResult], UsageTotals]:
    """Every conversation's result in request order behind a progress bar, and the usage
    totals.

    Raises:
        LlmEndpointError: every request failed (one failure alone is in its result).
    """
    from tqdm.auto import tqdm

    results: dict[int, ChatResult] = {}
    client = LlmClient(endpoint, cache_dir)
    try:
        with tqdm(total=len(conversations), desc=desc, unit="req") as bar:
            for index, result in client.chat_many(conversations):
                results[index] = result
                bar.update()
                bar.set_postfix(out_tok=client.totals.completion_tokens,
                                cost=f"${client.totals.cost_usd:.4f}", refresh=False)
    finally:
        client.close()
    ordered = [results[i] for i in range(len(conversations))]
    failures = [r.error for r in ordered if r.error is not None]
    if ordered and len(failures) == len(ordered):
        raise LlmEndpointError(f"{endpoint.base_url}: every one of the {len(ordered)} "
                               f"request(s) to model '{endpoint.model}' failed; the first: "
                               f"{failures[0]}")
    return ordered, client.totals
