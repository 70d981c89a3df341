"""Continuous batching on transformers: waiting requests join the running batch at every step."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneline._optional import require
from tuneline.models.generation import end_token_ids
from tuneline.serve.engines.engine import (
    EngineStats,
    FinalEvent,
    GenerationRequest,
    QueueFull,
    Sink,
    TextEvent,
    TokenLogprob,
)

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


@dataclass
class _Sequence:
    """One request while it is being decoded."""

    request: GenerationRequest
    sink: Sink
    cancelled: threading.Event
    submitted: float = field(default_factory=time.perf_counter)
    ids: list[int] = field(default_factory=list)
    emitted: str = ""
    position: int = 0
    generator: Any = None
    done: bool = False
    logprobs: list[TokenLogprob] = field(default_factory=list)
    logprobs_sent: int = 0  # how many of `logprobs` went out with a TextEvent


class ContinuousBatcher:
    """Decodes up to `max_batch_size` sequences together, admitting new ones between steps.

    New requests are prefilled as one left-padded batch and their KV cache is merged into the
    running batch's (left-padding the shorter one), so a long answer never holds up a short
    request; finished sequences leave the batch at once. One background thread owns the model.
    """

    def __init__(self, load: Callable[[], tuple[Any, Any]], max_batch_size: int,
                 max_queue: int, mixed_adapters: bool = False,
                 on_step: Callable[[int], None] | None = None):
        """`load` returns (model, tokenizer); it runs on the batcher's own thread, because
        torch driven from a second thread runs ~1/3 slower on this CPU (measured: two OpenMP
        teams then compete)."""
        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.mixed_adapters = mixed_adapters
        self.on_step = on_step  # a test hook, called before every decode step
        self.on_batch: Callable[[int], None] | None = None  # metrics: the step's batch size
        self._torch = require("torch")
        self._waiting: deque[_Sequence] = deque()
        self._active: list[_Sequence] = []
        self._cache: Any = None
        self._mask: Any = None
        self._cv = threading.Condition()
        self._stopping = False
        self._step_seconds = 0.05
        # adapter → the token ids every chat prompt starts with (set by the engine)
        self.shared_prefixes: dict[str | None, list[int]] = {}
        self._prefix_kv: dict[str | None, list[tuple[Any, Any]]] = {}
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), name="tuneline-batcher",
                                        daemon=True)
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error

    def _run(self, load: Callable[[], tuple[Any, Any]]) -> None:
        try:
            self.model, self.tokenizer = load()
            self.eos_ids = end_token_ids(self.model, self.tokenizer)
            parameters = _forward_parameters(self.model)
            self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
            self._keeps_logits = "logits_to_keep" in parameters
        except BaseException as exc:  # raised again in the constructor's thread
            self._load_error = exc
            return
        finally:
            self._loaded.set()
        self._loop()

    # -- requests -----------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, sink: Sink) -> threading.Event:
        """Queue a request; returns the event that cancels it. Raises QueueFull when full."""
        with self._cv:
            if self._stopping:
                raise QueueFull(1.0, "the server is shutting down")
            free_slots = self.max_batch_size - len(self._active)
            if len(self._waiting) >= self.max_queue + max(free_slots, 0):
                raise QueueFull(self._retry_after(), "the request queue is full")
            cancelled = threading.Event()
            self._waiting.append(_Sequence(request, sink, cancelled))
            self._cv.notify()
            return cancelled

    def stats(self) -> EngineStats:
        with self._cv:
            return EngineStats(waiting=len(self._waiting), active=len(self._active))

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking requests, let running ones finish (up to the timeout), stop the thread."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._stopping = True
            while (self._waiting or self._active) and time.monotonic() < deadline:
                self._cv.wait(0.05)
            self._cv.notify_all()
        self._thread.join(max(deadline - time.monotonic(), 0.1))

    def _retry_after(self) -> float:
        waiting = len(self._waiting) + len(self._active)
        return max(1.0, round(self._step_seconds * waiting, 1))

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._waiting and not self._active:
                    if self._stopping:
                        return
                    self._cv.wait()
                admitted = self._admit()
            try:
                started = time.perf_counter()
                if admitted:
                    self._prefill(admitted)
                if self._active:
                    self._decode_step()
                self._step_seconds = 0.8 * self._step_seconds + 0.2 * (
                    time.perf_counter() - started)
            except Exception as exc:  # a failed step fails its requests, not the server
                self._fail_all(admitted, exc)
            with self._cv:
                self._cv.notify_all()

    def _admit(self) -> list[_Sequence]:
        admitted = []
        while self._waiting and len(self._active) + len(admitted) < self.max_batch_size:
            sequence = self._waiting.popleft()
            if sequence.cancelled.is_set():
                self._finish(sequence, "", "cancelled")
                continue
            admitted.append(sequence)
        return admitted

    def _fail_all(self, admitted: list[_Sequence], exc: Exception) -> None:
        for sequence in {id(s): s for s in [*admitted, *self._active]}.values():
            if not sequence.done:
                sequence.done = True
                sequence.sink(FinalEvent(sequence.emitted, len(sequence.request.prompt_ids),
                                         len(sequence.ids), "error", error=str(exc)))
        self._active, self._cache, self._mask = [], None, None

    # -- model steps --------------------------------------------------------------------------

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any,
                 adapters: list[str | None]) -> Any:
        kwargs: dict[str, Any] = {}
        if self.mixed_adapters:
            kwargs["adapter_names"] = [adapter or BASE_ADAPTER for adapter in adapters]
        kwargs[self._cache_kwarg] = cache
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 1  # the LM head over the prompt is wasted work
        with self._torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, **kwargs)
        return out.logits[:, -1, :].float(), cache  # the cache was updated in place

    def _prefill(self, sequences: list[_Sequence]) -> None:
        """Prefill new sequences, those starting with their adapter's shared prefix (the chat
        template's default system prompt, say) from its cached KV, the rest from scratch."""
        groups: dict[tuple[bool, str | None], list[_Sequence]] = {}
        for sequence in sequences:
            adapter = sequence.request.adapter
            prefix = self.shared_prefixes.get(adapter, [])
            prompt = sequence.request.prompt_ids
            shared = 0 < len(prefix) < len(prompt) and prompt[: len(prefix)] == prefix
            groups.setdefault((shared, adapter if shared else None), []).append(sequence)
        for (shared, adapter), group in groups.items():
            prefix = self.shared_prefixes[adapter] if shared else []
            self._prefill_group(group, prefix, adapter)

    def _prefill_group(self, sequences: list[_Sequence], prefix: list[int],
                       adapter: str | None) -> None:
        torch = self._torch
        from transformers import DynamicCache

        device = self.model.device
        suffixes = [s.request.prompt_ids[len(prefix):] for s in sequences]
        width = max(len(suffix) for suffix in suffixes)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (sequence, suffix) in enumerate(zip(sequences, suffixes, strict=True)):
            ids[row, width - len(suffix):] = torch.tensor(suffix)
            mask[row, width - len(suffix):] = 1
            # Where the last token sits; +1 per new one.
            sequence.position = len(sequence.request.prompt_ids) - 1
            if sequence.request.sampling.temperature > 0:
                seed = sequence.request.sampling.seed
                sequence.generator = torch.Generator().manual_seed(
                    secrets.randbits(63) if seed is None else seed)
        positions = len(prefix) + (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache()
        if prefix:  # rows are [prefix | padding | suffix]; the mask hides the padding
            cache = self._prefix_cache(prefix, adapter, len(sequences))
            mask = torch.cat([torch.ones((len(sequences), len(prefix)), dtype=mask.dtype), mask],
                             dim=1)
        adapters = [s.request.adapter for s in sequences]
        logits, cache = self._forward(ids.to(device), mask.to(device), positions.to(device),
                                      cache, adapters)
        self._merge(cache, mask.to(device), sequences)
        self._advance(logits, sequences)

    def _prefix_cache(self, prefix: list[int], adapter: str | None, rows: int) -> Any:
        """A cache holding the shared prefix's keys and values for `rows` rows (computed once
        per adapter)."""
        from transformers import DynamicCache

        torch = self._torch
        if adapter not in self._prefix_kv:
            ids = torch.tensor([prefix], device=self.model.device)
            computed = DynamicCache()
            self._forward(ids, torch.ones_like(ids), torch.arange(len(prefix))[None].to(ids),
                          computed, [adapter])
            self._prefix_kv[adapter] = [(layer.keys, layer.values) for layer in computed.layers]
        return DynamicCache([(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
                             for keys, values in self._prefix_kv[adapter]])

    def _merge(self, cache: Any, mask: Any, sequences: list[_Sequence]) -> None:
        """Append newly prefilled rows to the running batch, left-padding the shorter cache."""
        torch = self._torch
        if self._cache is None:
            self._cache, self._mask, self._active = cache, mask, list(sequences)
            return
        old_len, new_len = self._mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        for old_layer, new_layer in zip(self._cache.layers, cache.layers, strict=True):
            old_layer.keys = torch.cat([_left_pad(old_layer.keys, width, 2),
                                        _left_pad(new_layer.keys, width, 2)])
            old_layer.values = torch.cat([_left_pad(old_layer.values, width, 2),
                                          _left_pad(new_layer.values, width, 2)])
        self._mask = torch.cat([_left_pad(self._mask, width, 1), _left_pad(mask, width, 1)])
        self._active.extend(sequences)

    def _decode_step(self) -> None:
        torch = self._torch
        device = self.model.device
        sequences = self._active
        if self.on_step is not None:
            self.on_step(len(sequences))
        if self.on_batch is not None:
            self.on_batch(len(sequences))
        last = torch.tensor([[s.ids[-1]] for s in sequences], device=device)
        positions = torch.tensor([[s.position] for s in sequences], device=device)
        self._mask = torch.cat(
            [self._mask, torch.ones((len(sequences), 1), dtype=self._mask.dtype, device=device)],
            dim=1)
        logits, _ = self._forward(last, self._mask, positions, self._cache,
                                  [s.request.adapter for s in sequences])
        self._advance(logits, sequences)

    def _advance(self, logits: Any, sequences: list[_Sequence]) -> None:
        """Sample one token per sequence, stream its text, retire finished sequences."""
        tokens = self._sample(logits, sequences)
        self._record_logprobs(logits, sequences, tokens)
        for sequence, token in zip(sequences, tokens, strict=True):
            sequence.ids.append(token)
            sequence.position += 1
            self._emit(sequence, token)
        keep = [i for i, s in enumerate(self._active) if not s.done]
        if len(keep) < len(self._active):
            self._drop_finished(keep)

    def _sample(self, logits: Any, sequences: list[_Sequence]) -> list[int]:
        torch = self._torch
        chosen = logits.argmax(dim=-1).tolist()
        for row, sequence in enumerate(sequences):
            sampling = sequence.request.sampling
            if sampling.temperature <= 0:
                continue
            probs = torch.softmax(logits[row] / sampling.temperature, dim=-1)
            if sampling.top_p < 1.0:
                probs = _top_p_filter(torch, probs, sampling.top_p)
            chosen[row] = int(torch.multinomial(probs.cpu(), 1, generator=sequence.generator))
        return chosen

    def _record_logprobs(self, logits: Any, sequences: list[_Sequence],
                         tokens: list[int]) -> None:
        rows = [i for i, s in enumerate(sequences) if s.request.sampling.logprobs is not None]
        if not rows:
            return
        logprobs = self._torch.log_softmax(logits[rows].float(), dim=-1)
        for at, row in enumerate(rows):
            sequence, token = sequences[row], tokens[row]
            k = sequence.request.sampling.logprobs or 0
            top = logprobs[at].topk(k) if k else None
            alternatives = (tuple(zip(top.indices.tolist(), top.values.tolist(), strict=True))
                            if top is not None else ())
            sequence.logprobs.append(
                TokenLogprob(token, float(logprobs[at, token]), alternatives))

    def _emit(self, sequence: _Sequence, token: int) -> None:
        request = sequence.request
        if sequence.cancelled.is_set():
            return self._finish(sequence, sequence.emitted, "cancelled")
        if token in self.eos_ids:
            return self._finish(sequence, self._text(sequence.ids[:-1]), "stop")
        text = self._text(sequence.ids)
        stop_at = _first_stop(text, request.sampling.stop)
        if stop_at is not None:
            return self._finish(sequence, text[:stop_at], "stop")
        if len(sequence.ids) >= request.sampling.max_tokens:
            return self._finish(sequence, text, "length")
        safe = _streamable(text, request.sampling.stop)
        if len(safe) > len(sequence.emitted):
            delta, sequence.emitted = safe[len(sequence.emitted):], safe
            sequence.sink(TextEvent(delta, self._unsent_logprobs(sequence)))
        return None

    def _unsent_logprobs(self, sequence: _Sequence) -> tuple[TokenLogprob, ...]:
        """The tokens' log-probabilities not streamed yet (a token whose text is held back, a
        partial character or a possible stop string, goes out with the next text)."""
        unsent = sequence.logprobs[sequence.logprobs_sent:]
        sequence.logprobs_sent = len(sequence.logprobs)
        return tuple(t for t in unsent if t.token_id not in self.eos_ids)

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)).lstrip()

    def _finish(self, sequence: _Sequence, text: str, reason: str) -> None:
        sequence.done = True
        rest = text[len(sequence.emitted):] if text.startswith(sequence.emitted) else ""
        unsent = self._unsent_logprobs(sequence)
        if rest or unsent:
            sequence.sink(TextEvent(rest, unsent))
        logprobs = None
        if sequence.request.sampling.logprobs is not None:
            logprobs = tuple(t for t in sequence.logprobs if t.token_id not in self.eos_ids)
        sequence.sink(FinalEvent(text, len(sequence.request.prompt_ids), len(sequence.ids),
                                 reason, token_ids=tuple(sequence.ids), logprobs=logprobs))

    def _drop_finished(self, keep: list[int]) -> None:
        if not keep:
            self._active, self._cache, self._mask = [], None, None
            return
        index = self._torch.tensor(keep, device=self._mask.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        self._active = [self._active[i] for i in keep]
        # Columns that are padding for every remaining row are dead weight in attention.
        used = self._mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else 0
        if start > 0:
            self._mask = self._mask[:, start:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]


def _forward_parameters(model: Any) -> set[str]:
    """What the model's forward takes (transformers 5.x renamed `past_key_values` to `cache`)."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(inner.forward).parameters)


def _left_pad(tensor: Any, width: int, dim: int) -> Any:
    """Zero-pad `tensor` on the left of `dim` up to `width`."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    torch = require("torch")
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor],
                     dim=dim)


def _top_p_filter(torch: Any, probs: Any, top_p: float) -> Any:
    ordered, order = probs.sort(descending=True)
    outside = ordered.cumsum(dim=-1) - ordered > top_p
    ordered[outside] = 0.0
    filtered = torch.zeros_like(probs).scatter(0, order, ordered)
    return filtered / filtered.sum()


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    positions = [text.find(s) for s in stops if s and s in text]
    return min(positions) if positions else None


def _streamable(text: str, stops: tuple[str, ...]) -> str:
    """The part of `text` that is safe to send: no half-decoded character, no possible stop."""
    text = text.rstrip("\ufffd")
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                held = max(held, size)
                break
    return text[: len(text) - held]
