"""Stage 6, register: record the adapter, config, data hash and metrics as a registry version."""

from __future__ import annotations

import json
from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, run_stage, write_json_atomic
from tuneline.config import PipelineConfig, save_config
from tuneline.registry.local import LocalRegistry
from tuneline.stages.evaluate import METRICS, REPORT
from tuneline.stages.train import ADAPTER_DIR

REGISTRATION = "registration.json"


def run(
    cfg: PipelineConfig,
    curated: Artifact,
    trained: Artifact,
    evaluated: Artifact,
    out_dir: Path,
    force: bool = False,
) -> Artifact:
    """Register a new version of `cfg.register.name` and write `registration.json`."""
    inputs = {"curate": curated.output_hash, "train": trained.output_hash,
              "evaluate": evaluated.output_hash}

    def work(tmp: Path) -> StageResult:
        save_config(cfg, tmp / "config.yaml")
        registry = LocalRegistry(cfg.register.registry_dir)
        version = registry.register(
            cfg.register.name,
            files={"adapter": trained.path / ADAPTER_DIR, "config.yaml": tmp / "config.yaml",
                   "metrics.json": evaluated.path / METRICS, "report.md": evaluated.path / REPORT},
            meta={
                "base_model": cfg.model.base,
                "run": cfg.run.name,
                "data_hash": curated.output_hash,
                "adapter_hash": trained.output_hash,
                "config_hash": cfg.section_hash("train", "model", "curate", "synthesize"),
                "metrics": json.loads((evaluated.path / METRICS).read_text()),
            },
        )
        write_json_atomic(tmp / REGISTRATION, {"name": version.name, "version": version.version,
                                               "path": str(version.path)})
        return StageResult(counts={"version": version.version},
                           details={"model": f"{version.name}/{version.version}"})

    return run_stage("register", out_dir, cfg.section_hash("register"), inputs, work, force)
