"""Managed fine-tuning backends: the provider trains, tuneline uploads, polls and registers."""

from __future__ import annotations

from pathlib import Path

from tuneline.artifacts import Artifact, StageResult
from tuneline.config import PipelineConfig


def run_managed_job(cfg: PipelineConfig, curated: Artifact, tmp: Path) -> StageResult:
    """Run `cfg.train.backend`'s fine-tuning job on the curated data; write remote_model.json."""
    raise NotImplementedError(cfg.train.backend)
