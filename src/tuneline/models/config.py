"""Config section for the base model."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tuneline.config_base import Section

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"


class ModelConfig(Section):
    base: str = Field(
        EMBEDDED_MODEL,
        description="Base model: 'embedded:<name>', a local HF model folder, or a hub id "
        "already in the local HF cache.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where converted embedded models are cached "
        "(default: $TUNELINE_CACHE or ~/.cache/tuneline).",
    )
