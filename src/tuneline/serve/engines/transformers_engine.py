"""CPU/GPU generation engine on transformers: one model, requests served one at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

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
        from tuneline.models.loading import load_for_inference

        return cls(*load_for_inference(base, adapter_dir, cache_dir, precision))

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        prompt = render_prompt(self.tokenizer, messages)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def chat(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float
    ) -> Generation:
        with self._lock:
            return generate_batch(self.model, self.tokenizer, [messages], max_tokens,
                                  temperature, top_p)[0]
