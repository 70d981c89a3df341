"""CPU/GPU engine on transformers: continuous batching, several LoRA adapters on one base."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.models.generation import prompt_ids
from tuneline.serve.config import BatchingConfig
from tuneline.serve.engines.engine import EngineStats, GenerationRequest, Sink
from tuneline.serve.scheduler import ContinuousBatcher


class TransformersEngine:
    """One base model, optionally with LoRA adapters selectable per request.

    With a single adapter and no need for the bare base, the adapter is merged into the weights
    (decoding an unmerged LoRA costs ~30%); with several, PEFT runs them side by side in one
    batch (`adapter_names` per row).
    """

    def __init__(self, load: Callable[[], tuple[Any, dict[str | None, Any]]],
                 batching: BatchingConfig | None = None, on_step: Any = None,
                 adapters: tuple[str, ...] = ()):
        """`load` returns (model, tokenizers: adapter name or None → tokenizer); it runs on
        the engine's own thread (see ContinuousBatcher)."""
        batching = batching or BatchingConfig()
        tokenizers: dict[str | None, Any] = {}

        def load_on_batcher_thread() -> tuple[Any, Any]:
            model, loaded = load()
            tokenizers.update(loaded)
            return model, loaded[None]

        self.adapters = tuple(sorted(adapters))
        self.batcher = ContinuousBatcher(load_on_batcher_thread, batching.max_batch_size,
                                         batching.max_queue, mixed_adapters=bool(adapters),
                                         on_step=on_step)
        self.model, self.tokenizers = self.batcher.model, tokenizers
        self.tokenizer = tokenizers[None]
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.batcher.shared_prefixes = {name: self._shared_prefix(name)
                                        for name in (None, *self.adapters)}

    @classmethod
    def load(cls, base: str, adapter_dir: Path | None, cache_dir: Path | None = None,
             precision: str = "auto", batching: BatchingConfig | None = None
             ) -> TransformersEngine:
        """The base model with one adapter (or a fully fine-tuned folder) merged in, or bare."""
        from tuneline.models.loading import load_for_inference

        def load() -> tuple[Any, dict[str | None, Any]]:
            model, tokenizer = load_for_inference(base, adapter_dir, cache_dir, precision)
            return model, {None: tokenizer}

        return cls(load, batching)

    @classmethod
    def load_adapters(cls, base: str, adapters: dict[str, Path], cache_dir: Path | None = None,
                      precision: str = "auto", batching: BatchingConfig | None = None
                      ) -> TransformersEngine:
        """The bare base plus every adapter (served name → adapter folder), unmerged."""
        from tuneline.models.loading import load_for_inference, load_tokenizer

        def load() -> tuple[Any, dict[str | None, Any]]:
            model, tokenizer = load_for_inference(base, None, cache_dir, precision)
            tokenizers: dict[str | None, Any] = {None: tokenizer}
            if not adapters:
                return model, tokenizers
            peft = require("peft")
            dtype = next(model.parameters()).dtype
            names = list(adapters)
            model = peft.PeftModel.from_pretrained(model, str(adapters[names[0]]),
                                                   adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(str(adapters[name]), adapter_name=name)
            tokenizers |= {name: load_tokenizer(str(adapters[name]), cache_dir) for name in names}
            return model.to(dtype=dtype).eval(), tokenizers

        return cls(load, batching, adapters=tuple(adapters))

    def encode_chat(self, messages: list[dict[str, str]], adapter: str | None) -> list[int]:
        return prompt_ids(self.tokenizers.get(adapter, self.tokenizer), messages)

    def _shared_prefix(self, adapter: str | None) -> list[int]:
        """The tokens every one-turn chat prompt starts with under this adapter's template
        (e.g. a default system prompt): their KV is computed once and reused at prefill."""
        first, second = (self.encode_chat([{"role": "user", "content": text}], adapter)
                         for text in ("Hello there", "Why 42?"))
        shared = 0
        while shared < min(len(first), len(second)) and first[shared] == second[shared]:
            shared += 1
        return first[:shared]

    def encode_text(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def token_strings(self, ids: list[int]) -> list[str]:
        return [str(self.tokenizer.decode([i])) for i in ids]

    def submit(self, request: GenerationRequest, sink: Sink) -> threading.Event:
        if request.adapter is not None and request.adapter not in self.adapters:
            raise KeyError(f"adapter '{request.adapter}' is not loaded")
        return self.batcher.submit(request, sink)

    def stats(self) -> EngineStats:
        return self.batcher.stats()

    def close(self, timeout_s: float = 30.0) -> None:
        self.batcher.close(timeout_s)
