"""Config sections for managed fine-tuning backends: OpenAI and Amazon Bedrock jobs."""

from __future__ import annotations

from pydantic import Field

from tuneline.config_sections.base import _Section


class OpenAiJobConfig(_Section):
    model: str = Field("gpt-4o-mini-2024-07-18", description="Base model to fine-tune.")


class BedrockJobConfig(_Section):
    base_model_id: str = Field("meta.llama3-2-1b-instruct-v1:0",
                               description="Bedrock base model identifier.")
