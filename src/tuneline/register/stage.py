"""Stage 8, register: a new model version (adapter or remote model id, config, metrics, report)
with lineage (base model, data hash, config hash, code version, gate result), aliased
`candidate`. On MLflow the version points at the run the track stage logged."""

from __future__ import annotations

import json
from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, run_stage, write_json_atomic
from tuneline.config import PipelineConfig, save_config
from tuneline.evaluate.gate import GateResult
from tuneline.evaluate.stage import METRICS, REPORT
from tuneline.monitor.baseline import BASELINE_DIR
from tuneline.register.track import code_version, lineage_config_hash, tracked_run_id
from tuneline.registry import open_registry
from tuneline.train.managed.common import read_remote_model
from tuneline.train.stage import model_files

REGISTRATION = "registration.json"


def run(cfg: PipelineConfig, curated: Artifact, trained: Artifact, evaluated: Artifact,
        tracked: Artifact | None, out_dir: Path, force: bool = False, *,
        gate: GateResult) -> Artifact:
    """Register a new version of `cfg.register.name` and write `registration.json`."""
    inputs = {"curate": curated.output_hash, "train": trained.output_hash,
              "evaluate": evaluated.output_hash}
    if tracked is not None:
        inputs["track"] = tracked.output_hash

    def work(tmp: Path) -> StageResult:
        save_config(cfg, tmp / "config.yaml")
        registry = open_registry(cfg.register)
        model_files, model_meta = _trained_model(cfg, trained)
        run_id = tracked_run_id(tracked)
        files = {} if run_id else {**model_files, "config.yaml": tmp / "config.yaml",
                                   "metrics.json": evaluated.path / METRICS,
                                   "report.md": evaluated.path / REPORT,
                                   **_baseline(evaluated)}
        version = registry.register(
            cfg.register.name,
            files=files,
            meta={
                **model_meta,
                "run": cfg.run.name,
                "data_hash": curated.output_hash,
                "adapter_hash": trained.output_hash,
                "config_hash": lineage_config_hash(cfg),
                "code_version": code_version(),
                "gate": gate.to_dict(),
                "metrics": json.loads((evaluated.path / METRICS).read_text()),
            },
            run_id=run_id,
        )
        write_json_atomic(tmp / REGISTRATION, {"name": version.name, "version": version.version,
                                               "path": str(version.path),
                                               "registry": registry.location,
                                               "run_id": run_id})
        return StageResult(counts={"version": version.version},
                           details={"model": f"{version.name}/{version.version}"})

    return run_stage("register", out_dir, cfg.section_hash("register"), inputs, work, force)


def _baseline(evaluated: Artifact) -> dict[str, Path]:
    folder = evaluated.path / BASELINE_DIR
    return {BASELINE_DIR: folder} if folder.is_dir() else {}


def _trained_model(cfg: PipelineConfig, trained: Artifact) -> tuple[dict[str, Path], dict]:
    """What the train stage made: a local adapter folder, or a provider's model id.

    A managed backend's `remote_model.json` is stored in the version as is; the version's
    meta names the provider, the model id to call, the job and the provider's base model.
    """
    remote = read_remote_model(trained.path)
    if remote is None:  # adapter/ (LoRA, QLoRA) or model/ (full fine-tuning)
        return model_files(trained), {"base_model": cfg.model.base}
    meta = {"base_model": remote["base_model"], "provider": remote["provider"],
            "model_id": remote["model_id"], "job_id": remote["job_id"]}
    if remote.get("provisioned_model_arn"):
        meta["provisioned_model_arn"] = remote["provisioned_model_arn"]
    return model_files(trained), meta
