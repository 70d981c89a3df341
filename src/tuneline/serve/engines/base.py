"""The interface every generation engine implements."""

from __future__ import annotations

from typing import Protocol

from tuneline.models.generation import Generation


class Engine(Protocol):
    """Generates chat answers for one served model."""

    context_length: int

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the rendered prompt takes."""
        ...

    def chat(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float
    ) -> Generation:
        """One assistant answer."""
        ...
