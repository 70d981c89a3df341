"""Config of an OpenAI-compatible endpoint (synthesis, paraphrase, judge)."""

from __future__ import annotations

from pydantic import Field

from tuneline.config_base import Section


class LlmEndpointConfig(Section):
    base_url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible API root, e.g. https://api.openai.com/v1 or a local "
        "`tuneline serve` / vLLM / Ollama server.",
    )
    model: str = Field(description="Model name sent in each request.")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (never put keys in YAML); "
        "when unset or empty, requests carry no key (fine for local servers).",
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(
        5, ge=0, description="Retries on 429, 5xx, timeouts and dropped connections "
        "(exponential backoff with jitter, honouring Retry-After)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=1, description="Completion budget per request.")
    input_price_per_mtok: float = Field(
        0.0, ge=0, description="Price per million prompt tokens, for the cost report."
    )
    output_price_per_mtok: float = Field(
        0.0, ge=0, description="Price per million completion tokens, for the cost report."
    )
    cache: bool = Field(
        True, description="Reuse responses cached by prompt hash (under the tuneline cache "
        "folder), so a rerun or a resumed run pays only for new prompts."
    )
