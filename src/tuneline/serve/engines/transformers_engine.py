"""CPU/GPU generation engine on transformers: one model, requests served one at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.models.generation import Generation, generate_batch, render_prompt


class TransformersEngine:
    """Serves a base model with an optional merged LoRA adapter."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self._lock = threading.Lock()

    @classmethod
    def load(cls, base: str, adapter_dir: Path | None, cache_dir: Path | None = None,
             precision: str = "auto") -> TransformersEngine:
        """Load the base model (merging the adapter when given) on the best device."""
        from tuneline.models.loading import (
            load_base_model,
            load_tokenizer,
            load_tuned_model,
            pick_device,
            set_cpu_threads,
            use_bf16,
        )

        torch = require("torch")
        set_cpu_threads()
        device = pick_device()
        dtype = torch.bfloat16 if use_bf16(precision, device) else torch.float32
        if adapter_dir is not None:
            tokenizer = load_tokenizer(str(adapter_dir), cache_dir)
            model = load_tuned_model(base, adapter_dir, cache_dir)
        else:
            tokenizer = load_tokenizer(base, cache_dir)
            model = load_base_model(base, cache_dir)
        return cls(model.to(device=device, dtype=dtype).eval(), tokenizer)

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        prompt = render_prompt(self.tokenizer, messages)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def chat(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float
    ) -> Generation:
        with self._lock:
            return generate_batch(self.model, self.tokenizer, [messages], max_tokens,
                                  temperature, top_p)[0]
