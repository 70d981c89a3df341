"""Stage 5, train: fine-tune the base model on the curated chats (LoRA, QLoRA or full), locally
in one or several processes, or through a provider's managed fine-tuning job."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, fingerprint, run_stage
from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError
from tuneline.train.methods import ADAPTER_DIR, MODEL_DIR

__all__ = ["ADAPTER_DIR", "MODEL_DIR", "checkpoint_dir", "run", "weights_dir"]

# Settings that change how training runs, not what it produces: a checkpoint written under
# one of them resumes under another.
# time_limit_seconds is the share of run.budget_minutes left when train starts: the budget
# itself enters the hash, the seconds left (which vary run to run) do not.
_OPERATIONAL = ("num_processes", "accelerate_config", "tracking", "checkpoint_every",
                "keep_checkpoints", "time_limit_seconds", "max_micro_batch_tokens")


def run(cfg: PipelineConfig, curated: Artifact, out_dir: Path, force: bool = False, *,
        resume: bool = False) -> Artifact:
    """Train and write the adapter (or full model) with its tokenizer and chat template.

    A crashed run leaves checkpoints; the next run with the same inputs resumes from the latest
    one. `resume=True` insists on one; `force=True` discards them and starts over.
    """
    inputs = {"curate": curated.output_hash}
    config_hash = _train_hash(cfg)
    checkpoints = checkpoint_dir(cfg, fingerprint("train", config_hash, inputs))
    if force and resume:
        raise ConfigError(["train: --force starts over and --resume continues; pick one"])
    if force:
        _remove(checkpoints)
    elif resume and not _has_checkpoint(checkpoints):
        raise ConfigError([f"train --resume: no checkpoint of this run under {checkpoints} "
                           "(was the config or the data changed since?)"])

    def work(tmp: Path) -> StageResult:
        return _train(cfg, curated, tmp, checkpoints)

    artifact = run_stage("train", out_dir, config_hash, inputs, work, force or resume)
    if not artifact.skipped:
        _remove(checkpoints)
    return artifact


def weights_dir(trained: Artifact) -> Path:
    """The trained adapter folder (LoRA/QLoRA) or full model folder of a train artifact."""
    name = trained.manifest.get("details", {}).get("weights_dir", ADAPTER_DIR)
    return trained.path / name


def model_files(trained: Artifact) -> dict[str, Path]:
    """What a version must hold of a train artifact: its weights folder, or the provider's
    `remote_model.json` when a managed backend trained it."""
    from tuneline.train.managed.common import REMOTE_MODEL, read_remote_model

    if read_remote_model(trained.path) is not None:
        return {REMOTE_MODEL: trained.path / REMOTE_MODEL}
    weights = weights_dir(trained)
    return {weights.name: weights}


def checkpoint_dir(cfg: PipelineConfig, train_fingerprint: str) -> Path:
    """Checkpoints live outside the stage folder so that they survive a crash."""
    return cfg.run.runs_dir / cfg.run.name / "checkpoints" / f"train-{train_fingerprint}"


def _train_hash(cfg: PipelineConfig) -> str:
    if cfg.train.backend != "local":
        # A managed job is paid for: only what the provider's job sees may trigger a new one.
        backend = cfg.train.backend
        train = cfg.train.model_dump(mode="json", include={
            "backend", "epochs", "batch_size", "learning_rate", backend})
        payload = {"train": train, "seed": cfg.run.seed}
    else:
        from tuneline.models.loading import pick_device
        from tuneline.train.precision import train_in_bf16

        # What 'auto' resolves to here: it decides the weights as much as any setting.
        device = pick_device()
        bf16 = train_in_bf16(cfg.train.precision, device)
        train = cfg.train.model_dump(mode="json", exclude=set(_OPERATIONAL))
        payload = {"train": train, "model": cfg.model.model_dump(mode="json"),
                   "run": {"seed": cfg.run.seed, "budget_minutes": cfg.run.budget_minutes},
                   "bf16_autocast": bf16}
        if bf16 and device == "cpu":
            payload["attention"] = "fp32"  # a CPU's bf16 runs trained it in bf16 before
        if cfg.train.replay.fraction > 0:
            from tuneline.train.replay import prompts_hash

            payload["replay_prompts"] = prompts_hash(cfg)  # the packaged ones change too
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _has_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.startswith("step-") for p in folder.iterdir())


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _train(cfg: PipelineConfig, curated: Artifact, tmp: Path, checkpoints: Path) -> StageResult:
    if cfg.train.backend != "local":
        from tuneline.train.managed.backends import run_managed_job

        return run_managed_job(cfg, curated, tmp)
    from tuneline.curate.stage import evaluated_guard
    from tuneline.train.job import REPORT_FILE, TrainJob, launch, run_job
    from tuneline.train.replay import REPLAY_FILE, build_replay, plain_declines

    train_file = curated.path / "train.jsonl"
    replay_counts = build_replay(
        cfg, _count_lines(train_file), tmp / REPLAY_FILE, evaluated_guard(curated),
        plain_declines(train_file, cfg.synthesize.unanswerable.answer))
    job = TrainJob(config_path=tmp / ".job-config.yaml", curated_dir=curated.path, out_dir=tmp,
                   checkpoint_dir=checkpoints)
    if cfg.train.num_processes > 1 or cfg.train.accelerate_config is not None:
        result = launch(cfg, job)
    else:
        result = run_job(cfg, job)
    (tmp / REPORT_FILE).unlink(missing_ok=True)
    return StageResult(counts={**result["counts"], **replay_counts}, details=result["details"])


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())
