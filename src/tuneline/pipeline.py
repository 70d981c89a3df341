"""Run the stages in order, reusing every stage whose fingerprint is unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tuneline.artifacts import Artifact, write_json_atomic
from tuneline.config import PipelineConfig, save_config
from tuneline.curate import stage as curate
from tuneline.errors import ConfigError, QualityGateFailed
from tuneline.evaluate import stage as evaluate
from tuneline.evaluate.gate import GateResult, check_gate
from tuneline.index import stage as index
from tuneline.ingest import stage as ingest
from tuneline.register import stage as register
from tuneline.register import track
from tuneline.synthesize import stage as synthesize
from tuneline.train import stage as train

STAGES = ("ingest", "synthesize", "index", "curate", "train", "evaluate", "register")
GATE = "gate.json"
REPORT_HTML = "report.html"


@dataclass
class PipelineResult:
    """The artifacts produced (or reused) by a pipeline run, by stage name."""

    run_dir: Path
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    gate: GateResult | None = None
    report: Path | None = None


def run_pipeline(
    cfg: PipelineConfig,
    until: str = STAGES[-1],
    force: frozenset[str] = frozenset(),
    on_stage: Callable[[Artifact], None] | None = None,
    resume: bool = False,
) -> PipelineResult:
    """Run stages up to and including `until`; stages named in `force` rerun regardless.

    `resume` insists that training continues from a checkpoint (it does so anyway when one
    of the same run exists)."""
    run_dir = cfg.run.runs_dir / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    result = PipelineResult(run_dir)
    a = result.artifacts

    steps: dict[str, Callable[[], Artifact]] = {
        "ingest": lambda: ingest.run(cfg, run_dir / "ingest", "ingest" in force),
        "synthesize": lambda: synthesize.run(cfg, a["ingest"], run_dir / "synthesize",
                                             "synthesize" in force),
        "index": lambda: index.run(cfg, a["ingest"], run_dir / "index", "index" in force),
        "curate": lambda: curate.run(cfg, a["synthesize"], run_dir / "curate", "curate" in force,
                                     a.get("index")),
        "train": lambda: train.run(cfg, a["curate"], run_dir / "train", "train" in force,
                                   resume),
        "evaluate": lambda: evaluate.run(cfg, a["curate"], a["train"], run_dir / "evaluate",
                                         "evaluate" in force, a.get("index")),
        "register": lambda: register.run(cfg, a["curate"], a["train"], a["evaluate"],
                                         gate_of(result), a.get("track"), run_dir / "register",
                                         "register" in force),
    }
    if until == "index" and not cfg.index.enabled:
        raise ConfigError(["index: the index stage is off; set index.enabled: true"])
    for name in STAGES[: STAGES.index(until) + 1]:
        if name == "index" and not cfg.index.enabled:
            continue
        a[name] = steps[name]()
        if on_stage is not None:
            on_stage(a[name])
        if name == "evaluate":
            _after_evaluate(cfg, result, force, on_stage)
    return result


def gate_of(result: PipelineResult) -> GateResult:
    assert result.gate is not None, "the gate is checked right after evaluate"
    return result.gate


def _after_evaluate(cfg: PipelineConfig, result: PipelineResult, force: frozenset[str],
                    on_stage: Callable[[Artifact], None] | None) -> None:
    """Gate, HTML report, MLflow run (every run, passing or not); then stop on a failed gate."""
    from tuneline.report.html import write_html_report

    a, run_dir = result.artifacts, result.run_dir
    result.gate = check_and_record_gate(cfg, a["evaluate"], run_dir)
    result.report = write_html_report(run_dir)
    if cfg.register.backend == "mlflow":
        a["track"] = track.run(cfg, a, result.gate, run_dir, "evaluate" in force)
        if on_stage is not None:
            on_stage(a["track"])
    if not result.gate.passed:
        raise_gate_failure(result.gate, run_dir)


def check_and_record_gate(cfg: PipelineConfig, evaluated: Artifact, run_dir: Path) -> GateResult:
    """Check evaluate's metrics against `cfg.gate` and write `<run>/gate.json`."""
    metrics = json.loads((evaluated.path / "metrics.json").read_text(encoding="utf-8"))
    gate = check_gate(cfg.gate, metrics)
    write_json_atomic(run_dir / GATE, gate.to_dict())
    return gate


def raise_gate_failure(gate: GateResult, run_dir: Path) -> None:
    """Raises QualityGateFailed naming every failed threshold with its value; the pipeline
    stops there, so a failing model is never registered."""
    lines = "\n".join(f"  - {check.message}" for check in gate.failures)
    raise QualityGateFailed(
        f"quality gate failed ({len(gate.failures)} of {len(gate.checks)} check(s)); "
        f"the model is not registered:\n{lines}\nsee {run_dir / GATE} and "
        f"{run_dir / REPORT_HTML}; the thresholds are under `gate:` in the config")
