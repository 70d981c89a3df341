"""Config section for the pairwise LLM judge: challenger vs champion, both orders."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tuneline.config_sections.base import _Section
from tuneline.config_sections.synthesize import LlmEndpointConfig


class JudgeConfig(_Section):
    endpoint: LlmEndpointConfig | None = Field(
        None,
        description="The OpenAI-compatible endpoint of the judge model (any server: OpenAI, "
        "vLLM, Ollama, `tuneline serve`); unset: the judge is off.",
    )
    max_pairs: int | None = Field(
        None, ge=1,
        description="Judge at most this many questions (two requests each, one per answer "
        "order); unset: all of them.",
    )
    temperature: float = Field(
        0.0, ge=0, le=2,
        description="Judge sampling temperature; replaces endpoint.temperature (0: repeatable).",
    )
    max_tokens: int = Field(
        256, ge=1,
        description="Completion budget of each verdict; replaces endpoint.max_tokens.",
    )
    rubric: Path | None = Field(
        None,
        description="A rubric prompt file replacing the packaged one; it must keep the "
        "{question} {reference} {answer_a} {answer_b} placeholders and ask for "
        "'VERDICT: A|B|TIE' then 'REASON: ...'.",
    )
