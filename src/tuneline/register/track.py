"""Stage 7, track: log the run to MLflow whether or not the quality gate
passed: config as params, training metrics per step, evaluation metrics, the gate result,
and the artifacts (weights, config, metrics, reports, dataset card). Register versions that run.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tuneline
from tuneline.artifacts import (
    Artifact,
    StageResult,
    hash_strings,
    read_jsonl,
    run_stage,
    write_json_atomic,
)
from tuneline.config import PipelineConfig
from tuneline.evaluate.gate import GateResult
from tuneline.evaluate.stage import JUDGMENTS, METRICS, PREDICTIONS, REPORT
from tuneline.monitor.baseline import BASELINE_DIR
from tuneline.report.card import CARD, PLOTS_DIR
from tuneline.train.job import LOSS_PLOT, TRAIN_LOG
from tuneline.train.stage import model_files

TRACKING = "tracking.json"
STEP_METRICS = ("loss", "val_loss", "lr", "grad_norm", "tokens_per_second")


def run(cfg: PipelineConfig, curated: Artifact, trained: Artifact, evaluated: Artifact,
        out_dir: Path, force: bool = False, *, gate: GateResult) -> Artifact:
    """Log one MLflow run for this pipeline run; `tracking.json` names it (run_id, URI).

    The run also gets the run folder's config.yaml, gate.json and report.html (`out_dir`'s
    parent)."""
    from tuneline.registry import open_registry

    artifacts = {"curate": curated, "train": trained, "evaluate": evaluated}
    run_dir = out_dir.parent
    inputs = {stage: artifacts[stage].output_hash for stage in ("curate", "train", "evaluate")}
    inputs["gate"] = hash_strings(json.dumps(gate.to_dict(), sort_keys=True))

    def work(tmp: Path) -> StageResult:
        registry = open_registry(cfg.register)
        run_id = registry.log_run(  # type: ignore[attr-defined]
            run_name=cfg.run.name,
            params=config_params(cfg),
            metrics=flat_metrics(_read_json(artifacts["evaluate"].path / METRICS)),
            step_metrics=list(step_series(artifacts["train"].path / TRAIN_LOG)),
            files=run_files(artifacts, run_dir),
            tags=run_tags(cfg, artifacts, gate),
        )
        record = {"run_id": run_id, "tracking_uri": registry.location,
                  "experiment": cfg.register.experiment}
        write_json_atomic(tmp / TRACKING, record)
        return StageResult(counts={}, details=record)

    return run_stage("track", out_dir, cfg.section_hash("register", "run"), inputs, work, force)


def tracked_run_id(tracked: Artifact | None) -> str | None:
    if tracked is None:
        return None
    return str(_read_json(tracked.path / TRACKING)["run_id"])


def config_params(cfg: PipelineConfig) -> dict[str, str]:
    """The resolved config flattened to dotted keys (MLflow params are flat strings)."""
    params: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            params[prefix] = json.dumps(value) if not isinstance(value, str) else value

    walk("", cfg.model_dump(mode="json"))
    return params


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """`variant.set.metric` (and `judge.win_rate`, ...) for every number in metrics.json.

    MLflow refuses '+' in names: variant `tuned+rag` is logged as `tuned_rag`."""
    flat: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key not in ("ci95", "by_category", "by_group"):
                    name = str(key).replace("+", "_")
                    walk(f"{prefix}.{name}" if prefix else name, inner)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix] = float(value)

    walk("", metrics)
    return flat


def step_series(train_log: Path) -> Iterator[tuple[str, float, int]]:
    """(metric, value, step) for every number the training loop logged per step."""
    if not train_log.is_file():
        return
    for row in read_jsonl(train_log):
        for key in STEP_METRICS:
            if isinstance(row.get(key), int | float):
                yield f"train.{key}", float(row[key]), int(row["step"])


def run_files(artifacts: dict[str, Artifact], run_dir: Path) -> dict[str, Path]:
    """Artifact name → file or folder, for whichever of them this run produced."""
    trained, evaluated, curated = (artifacts[s].path for s in ("train", "evaluate", "curate"))
    files = model_files(artifacts["train"])
    candidates = {
        "config.yaml": run_dir / "config.yaml", "gate.json": run_dir / "gate.json",
        "report.html": run_dir / "report.html", METRICS: evaluated / METRICS,
        PREDICTIONS: evaluated / PREDICTIONS, REPORT: evaluated / REPORT,
        JUDGMENTS: evaluated / JUDGMENTS, TRAIN_LOG: trained / TRAIN_LOG,
        LOSS_PLOT: trained / LOSS_PLOT, CARD: curated / CARD, PLOTS_DIR: curated / PLOTS_DIR,
        BASELINE_DIR: evaluated / BASELINE_DIR,
    }
    return {**files, **{name: path for name, path in candidates.items() if path.exists()}}


def run_tags(cfg: PipelineConfig, artifacts: dict[str, Artifact],
             gate: GateResult) -> dict[str, str]:
    return {"tuneline.run": cfg.run.name, "base_model": cfg.model.base,
            "data_hash": artifacts["curate"].output_hash,
            "adapter_hash": artifacts["train"].output_hash,
            "config_hash": lineage_config_hash(cfg), "code_version": code_version(),
            "gate": "passed" if gate.passed else "failed"}


def lineage_config_hash(cfg: PipelineConfig) -> str:
    return cfg.section_hash("train", "model", "curate", "synthesize")


def code_version() -> str:
    """tuneline's version, plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(tuneline.__file__).parent,
            capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{tuneline.__version__}+g{commit}" if commit else tuneline.__version__


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))
