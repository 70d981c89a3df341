"""The pipeline as a Prefect flow (extra `prefect`): each stage is a task whose cache key is
the stage's fingerprint, so Prefect shows an unchanged stage as Cached and skips it, exactly
when tuneline's own fingerprint check would.

Runs locally with no Prefect server: without PREFECT_API_URL, Prefect starts a temporary one
for the run. To schedule it, serve the flow against a Prefect server (docs/pipeline.md):

    from tuneline.orchestrate.prefect_flow import tuneline_pipeline
    tuneline_pipeline.serve(name="nightly", cron="0 3 * * *",
                            parameters={"config": "/abs/path/tuneline.yaml"})
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.artifacts import Artifact, load_artifact, plan_stage
from tuneline.config import load_config
from tuneline.errors import ConfigError
from tuneline.pipeline import STAGES, PipelineResult, run_pipeline

prefect = require("prefect")

CACHED = "Cached"


def cache_key(stage: str, fingerprint: str) -> str:
    """The Prefect cache key of a stage's task: its tuneline fingerprint."""
    return f"tuneline-{stage}-{fingerprint}"


class PrefectStages:
    """Runs each stage as a Prefect task; remembers each task's final state name."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def __call__(self, name: str, call: Callable[[], Artifact]) -> Artifact:
        plan = plan_stage(call)
        key = cache_key(name, plan.fingerprint)

        def run_stage() -> dict[str, Any]:
            artifact = call()
            return {"stage": name, "path": str(artifact.path),
                    "fingerprint": artifact.manifest["fingerprint"]}

        # A cached record is only trusted while the stage folder still holds that output (a
        # deleted folder, or a stage that forces itself, must run).
        stage_task = prefect.task(
            run_stage, name=name, cache_key_fn=lambda *_: key, persist_result=True,
            result_serializer="json", refresh_cache=not plan.reusable)
        state = stage_task(return_state=True)
        record = state.result()  # raises the stage's error when it failed
        artifact = load_artifact(name, Path(record["path"]))
        if artifact is None or artifact.manifest.get("fingerprint") != plan.fingerprint:
            raise RuntimeError(f"{name}: Prefect returned {record['path']}, which does not "
                               f"hold fingerprint {plan.fingerprint}")
        artifact.skipped = state.name == CACHED or plan.reusable
        self.states[name] = state.name
        return artifact


def _summary(result: PipelineResult, states: dict[str, str]) -> dict[str, Any]:
    registered = result.artifacts.get("register")
    return {
        "run_dir": str(result.run_dir),
        "stages": states,
        "gate_passed": None if result.gate is None else result.gate.passed,
        "registered": None if registered is None else registered.manifest["details"]["model"],
    }


@prefect.flow(name="tuneline", log_prints=True)
def tuneline_pipeline(config: str, overrides: list[str] | None = None,
                      until: str = STAGES[-1], force: list[str] | None = None) -> dict[str, Any]:
    """Run the pipeline of `config` (a YAML path, with KEY=VALUE `overrides`) up to `until`;
    stages named in `force` rerun. Returns the run folder, each stage task's state, whether
    the gate passed and the registered version. A failed gate fails the flow."""
    unknown = sorted(set(force or ()) - set(STAGES))
    if until not in STAGES or unknown:
        raise ConfigError([f"not a stage: {', '.join(unknown or [until])} "
                           f"(stages: {', '.join(STAGES)})"])
    cfg = load_config(Path(config), list(overrides or ()))
    logger = prefect.get_run_logger()
    stages = PrefectStages()

    def log_stage(artifact: Artifact) -> None:
        logger.info("%s: %s %s", artifact.stage, "reused" if artifact.skipped else "ran",
                    artifact.path)

    result = run_pipeline(cfg, until, frozenset(force or ()), on_stage=log_stage,
                          stage_runner=stages)
    return _summary(result, stages.states)
