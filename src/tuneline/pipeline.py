"""Run the stages in order, reusing every stage whose fingerprint is unchanged.

Every stage module (`tuneline.<stage>.stage`, and `tuneline.register.track`) has the same
shape; it is a written protocol, checked by tests/test_layout.py:

    run(cfg, <upstream artifacts in pipeline order>, out_dir, force=False, *, <options>)
        -> Artifact

`cfg` is the whole PipelineConfig; an upstream artifact that may be absent (the index when
index.enabled is off, the MLflow run when the registry is local) is passed as None; `out_dir`
is `runs/<run>/<stage>/`; keyword-only options are what only that stage takes (train's
`resume`, the gate result for track and register). The body computes the config hash and the
input hashes, defines `work(tmp) -> StageResult` that writes into `tmp`, and returns
`artifacts.run_stage(<stage name>, out_dir, config_hash, inputs, work, force)`. The stage
name is the CLI verb, the YAML section and the artifact folder.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tuneline import sizing
from tuneline.artifacts import Artifact, write_json_atomic
from tuneline.config import PipelineConfig, save_config
from tuneline.curate import stage as curate
from tuneline.errors import ConfigError, QualityGateFailed
from tuneline.evaluate import stage as evaluate
from tuneline.evaluate.config import GateConfig
from tuneline.evaluate.gate import GateResult, check_gate
from tuneline.index import stage as index
from tuneline.ingest import stage as ingest
from tuneline.register import stage as register
from tuneline.register import track
from tuneline.report.results import REPEATS_FILE, Repeats, read_results, spread_of
from tuneline.sizing import Projection
from tuneline.synthesize import stage as synthesize
from tuneline.train import stage as train

STAGES = ("ingest", "synthesize", "index", "curate", "train", "evaluate", "track", "register")
GATE = "gate.json"
REPORT_HTML = "report.html"
# Without a projection (tuneline.sizing measures local LoRA on a CPU only), train's share of the
# budget left when it starts: evaluate took 27-42% of train plus evaluate in the bundled
# examples on the bf16 class (docs/benchmarks.md), and register and the report the rest.
TRAIN_SHARE_OF_BUDGET = 0.6

# How one stage is run: given its name and a call that runs it (or reuses its folder), return
# the artifact. The default calls it; tuneline.orchestrate wraps it in an orchestrator's task.
StageRunner = Callable[[str, Callable[[], Artifact]], Artifact]


def run_directly(name: str, call: Callable[[], Artifact]) -> Artifact:
    return call()


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
    stage_runner: StageRunner = run_directly,
) -> PipelineResult:
    """Run stages up to and including `until`; stages named in `force` rerun regardless.

    After evaluate the quality gate is checked and the HTML report written; track (the MLflow
    run, when register.backend is mlflow) follows evaluate whenever evaluate runs, so a failed
    gate is logged too, and only then does a failed gate stop the pipeline. `resume` insists
    that training continues from a checkpoint (it does so anyway when one of the same run
    exists). `stage_runner` runs each stage (an orchestrator's task, say)."""
    if until == "index" and not cfg.index.enabled:
        raise ConfigError(["index: the index stage is off; set index.enabled: true"])
    run_dir = cfg.run.runs_dir / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    result = PipelineResult(run_dir)
    names = stages_to_run(cfg, until)
    stop_on_failed_gate_after = "track" if "track" in names else "evaluate"
    started = time.monotonic()
    configured, sized = cfg, None
    if "train" in names and sizing.sizes(cfg):
        sized = _sized(cfg, names, result, force, resume, stage_runner, on_stage, started)
        cfg = sized.cfg
        if sized.projection.scale < 1:  # synthesize and curate (again) at the new size
            save_config(cfg, run_dir / "config.yaml")
            force = force - frozenset(sized.done)  # each forced stage has run once
    for name in names:
        if sized is not None and name in sized.done and sized.projection.scale == 1:
            continue
        stage_cfg = _with_time_limit(cfg, started, sized) if name == "train" else cfg
        _run_named(name, stage_cfg, result, force, resume, stage_runner, on_stage)
        if name == "curate" and sized is not None and sized.speed is not None \
                and sized.projection.scale < 1:  # what the scaled data will cost
            sizing.reproject(sized.projection, cfg, result.artifacts["curate"], sized.speed)
            sizing.write_sizing(result.run_dir, configured, sized.projection, sized.speed,
                                sized.sampled)
        if name == "evaluate":
            # each seed sizes the configured data to its own budget
            repeats = (_repeat(configured, result, force, on_stage, stage_runner)
                       if cfg.run.repeats > 1 else None)
            if repeats is None:
                (run_dir / REPEATS_FILE).unlink(missing_ok=True)  # from an earlier repeated run
            result.gate = check_and_record_gate(cfg, result.artifacts["evaluate"], run_dir,
                                                repeats)
            result.report = _write_report(run_dir)
        if name == stop_on_failed_gate_after:
            _stop_on_failed_gate(result)
    return result


def _run_named(name: str, cfg: PipelineConfig, result: PipelineResult, force: frozenset[str],
               resume: bool, stage_runner: StageRunner,
               on_stage: Callable[[Artifact], None] | None) -> None:
    result.artifacts[name] = stage_runner(
        name, lambda: _run_stage(name, cfg, result, force, resume))
    if on_stage is not None:
        on_stage(result.artifacts[name])


@dataclass
class _Sizing:
    cfg: PipelineConfig  # scaled when the budget asked for it
    projection: Projection
    done: list[str]  # the stages run at the configured size to measure the work
    speed: sizing.MachineSpeed | None  # None when an earlier sizing was reused
    sampled: dict[str, int] = field(default_factory=dict)


def _sized(cfg: PipelineConfig, names: list[str], result: PipelineResult, force: frozenset[str],
           resume: bool, stage_runner: StageRunner, on_stage: Callable[[Artifact], None] | None,
           started: float) -> _Sizing:
    """cfg with its data scaled to fit run.budget_minutes (tuneline.sizing), the projection
    behind it, and the stages run at the configured size to measure it (none when this run was
    sized on this machine before and no stage before train is forced)."""
    before_train = names[: names.index("train")]
    earlier = None if force & set(before_train) else sizing.earlier_plan(result.run_dir, cfg)
    if earlier is not None:
        sized, projection = sizing.replan(cfg, earlier)
        print(f"{projection.describe()} (as sized before: {sizing.SIZING_FILE})",
              file=sys.stderr, flush=True)
        return _Sizing(sized, projection, [], None)
    for name in before_train:
        _run_named(name, cfg, result, force, resume, stage_runner, on_stage)
    speed = sizing.machine_speed(cfg)
    sampled = sizing.facts_per_template(cfg, result.artifacts["synthesize"])
    sized, projection = sizing.plan(cfg, result.artifacts["synthesize"],
                                    result.artifacts["curate"], time.monotonic() - started,
                                    speed, sampled)
    print(projection.describe(), file=sys.stderr, flush=True)
    sizing.write_sizing(result.run_dir, cfg, projection, speed, sampled)
    return _Sizing(sized, projection, before_train, speed, sampled)


def _with_time_limit(cfg: PipelineConfig, started: float,
                     sized: _Sizing | None) -> PipelineConfig:
    """cfg with train.time_limit_seconds set to what run.budget_minutes leaves for train's
    loop: what is left less the projected evaluate and replay and the unprojected share of the
    budget; without a projection (a GPU, a provider's job), train's share of what is left."""
    if cfg.run.budget_minutes is None:
        return cfg
    left = cfg.run.budget_minutes * 60 - (time.monotonic() - started)
    if sized is None:
        limit = left * TRAIN_SHARE_OF_BUDGET
    else:
        projection = sized.projection
        limit = (left - projection.evaluate_seconds_at_scale - projection.replay_seconds_at_scale
                 - (1 - sizing.PROJECTED_SHARE) * projection.budget_seconds)
    limit = max(1e-3, limit)  # none left: the shortest training
    return cfg.model_copy(update={
        "train": cfg.train.model_copy(update={"time_limit_seconds": limit})})


def stages_to_run(cfg: PipelineConfig, until: str) -> list[str]:
    """The stages up to `until`, less the ones switched off; track follows evaluate."""
    names = list(STAGES[: STAGES.index(until) + 1])
    if until == "evaluate":
        names.append("track")
    off = {"index": not cfg.index.enabled, "track": cfg.register.backend != "mlflow"}
    return [name for name in names if not off.get(name, False)]


def _run_stage(name: str, cfg: PipelineConfig, result: PipelineResult, force: frozenset[str],
               resume: bool) -> Artifact:
    """Call one stage's run() with its upstream artifacts, in the order the protocol gives."""
    a, out, again = result.artifacts, result.run_dir / name, name in force
    if name == "ingest":
        return ingest.run(cfg, out, again)
    if name == "synthesize":
        return synthesize.run(cfg, a["ingest"], out, again)
    if name == "index":
        return index.run(cfg, a["ingest"], out, again)
    if name == "curate":
        return curate.run(cfg, a["synthesize"], a.get("index"), out, again)
    if name == "train":
        return train.run(cfg, a["curate"], out, again, resume=resume)
    if name == "evaluate":
        return evaluate.run(cfg, a.get("index"), a["curate"], a["train"], out, again)
    if name == "track":
        return track.run(cfg, a["curate"], a["train"], a["evaluate"], out,
                         again or "evaluate" in force, gate=gate_of(result))
    if name == "register":
        return register.run(cfg, a["curate"], a["train"], a["evaluate"], a.get("track"), out,
                            again, gate=gate_of(result))
    raise ValueError(f"not a stage: {name!r}")


def gate_of(result: PipelineResult) -> GateResult:
    assert result.gate is not None, "the gate is checked right after evaluate"
    return result.gate


def _write_report(run_dir: Path) -> Path:
    from tuneline.report.html import write_html_report

    return write_html_report(run_dir)


def _stop_on_failed_gate(result: PipelineResult) -> None:
    if not gate_of(result).passed:
        raise_gate_failure(gate_of(result), result.run_dir)


def _repeat(cfg: PipelineConfig, result: PipelineResult, force: frozenset[str],
            on_stage: Callable[[Artifact], None] | None,
            stage_runner: StageRunner) -> Repeats:
    """Run up to evaluate with seeds seed+1 .. seed+repeats-1 under `<run>/repeats/`, then
    write `<run>/repeats.json`: the median and min-max of every metric over all the seeds."""
    seeds = [cfg.run.seed + i for i in range(cfg.run.repeats)]
    runs = [read_results(result.artifacts["evaluate"].path)]
    for seed in seeds[1:]:
        # The gate holds for the medians, not for each seed.
        again = cfg.model_copy(update={"gate": GateConfig(), "run": cfg.run.model_copy(update={
            "seed": seed, "repeats": 1, "name": f"seed-{seed}",
            "runs_dir": result.run_dir / "repeats"})}, deep=True)
        repeated = run_pipeline(again, "evaluate", force, on_stage, stage_runner=stage_runner)
        runs.append(read_results(repeated.artifacts["evaluate"].path))
    spread = spread_of(runs, seeds)
    write_json_atomic(result.run_dir / REPEATS_FILE, spread.model_dump(mode="json"))
    return spread


def check_and_record_gate(cfg: PipelineConfig, evaluated: Artifact, run_dir: Path,
                          repeats: Repeats | None = None) -> GateResult:
    """Check evaluate's metrics (the medians over the seeds, with repeats) against `cfg.gate`
    and write `<run>/gate.json`."""
    results = read_results(evaluated.path)
    gate = check_gate(cfg.gate, results if repeats is None else repeats.medians(),
                      retrieval_only=cfg.serve.retrieval == "always")
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
