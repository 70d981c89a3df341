"""Run the configured managed backend's fine-tuning job (OpenAI or Bedrock)."""

from __future__ import annotations

from pathlib import Path

from tuneline.artifacts import Artifact, StageResult
from tuneline.config import PipelineConfig


def run_managed_job(cfg: PipelineConfig, curated: Artifact, tmp: Path) -> StageResult:
    """Run `cfg.train.backend`'s fine-tuning job on the curated data; write remote_model.json."""
    if cfg.train.backend == "openai":
        from tuneline.train.managed.openai_job import run_openai_job

        return run_openai_job(cfg, curated, tmp)
    if cfg.train.backend == "bedrock":
        from tuneline.train.managed.bedrock_job import run_bedrock_job

        return run_bedrock_job(cfg, curated, tmp)
    raise ValueError(f"not a managed backend: {cfg.train.backend!r}")
