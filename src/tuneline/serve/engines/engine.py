"""The interface every generation engine implements, and what flows through it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # None: no log-probabilities; k: each chosen token's, with the k likeliest alternatives
    logprobs: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Token ids to continue, with the adapter to use (None: the base model)."""

    prompt_ids: list[int]
    sampling: SamplingParams
    adapter: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token with its log-probability under the model (log-softmax of its logits,
    before temperature and top-p) and the likeliest alternatives, best first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class TextEvent:
    """New text for a streaming client, with the log-probabilities (when asked) of the tokens
    generated since the previous event (EOS never among them)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class FinalEvent:
    """The finished answer: whole text, token accounting, why it ended."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | cancelled | error
    error: str | None = None
    token_ids: tuple[int, ...] = ()  # the generated tokens, EOS included
    logprobs: tuple[TokenLogprob, ...] | None = None  # when asked: per answer token, EOS not


@dataclass(frozen=True)
class EngineStats:
    waiting: int
    active: int


class QueueFull(Exception):
    """The engine cannot take another request now; retry after `retry_after_s`."""

    def __init__(self, retry_after_s: float, reason: str):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


Sink = Callable[[TextEvent | FinalEvent], None]


class Engine(Protocol):
    """Generates for one base model and the adapters loaded on it.

    `submit` is thread-safe and returns at once: events reach `sink` from the engine's own
    thread, a run of TextEvents then exactly one FinalEvent.
    """

    context_length: int
    adapters: tuple[str, ...]

    def encode_chat(self, messages: list[dict[str, str]], adapter: str | None) -> list[int]:
        """Token ids of the prompt that asks for the next assistant turn."""
        ...

    def encode_text(self, prompt: str) -> list[int]:
        """Token ids of a raw completion prompt."""
        ...

    def token_strings(self, ids: list[int]) -> list[str]:
        """Each token's own text (for log-probabilities)."""
        ...

    def submit(self, request: GenerationRequest, sink: Sink) -> threading.Event:
        """Queue a request (raises QueueFull); setting the returned event cancels it."""
        ...

    def stats(self) -> EngineStats:
        """Requests waiting and sequences being decoded."""
        ...

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish running requests (up to the timeout) and release the model."""
        ...
