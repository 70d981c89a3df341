"""Stage 4, train: LoRA fine-tuning of the base model on the curated chat examples."""

from __future__ import annotations

from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, run_stage, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.errors import DataError
from tuneline.stages.curate import load_chat

ADAPTER_DIR = "adapter"
TRAIN_LOG = "train_log.jsonl"


def run(cfg: PipelineConfig, curated: Artifact, out_dir: Path, force: bool = False) -> Artifact:
    """Train a LoRA adapter; write it with the tokenizer and chat template to `out_dir/adapter`."""
    config_hash = cfg.section_hash("train", "model", "run")
    return run_stage("train", out_dir, config_hash, {"curate": curated.output_hash},
                     lambda tmp: _train(cfg, curated, tmp), force)


def _train(cfg: PipelineConfig, curated: Artifact, tmp: Path) -> StageResult:
    if cfg.train.backend != "local":
        from tuneline.training.managed import run_managed_job

        return run_managed_job(cfg, curated, tmp)
    from tuneline.models.loading import (
        load_base_model,
        load_tokenizer,
        pick_device,
        set_cpu_threads,
        use_bf16,
    )
    from tuneline.training.loop import attach_lora, train_loop
    from tuneline.training.tokenize import tokenize_chat

    set_cpu_threads()
    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    max_len = cfg.train.max_seq_len
    train_set = [tokenize_chat(tokenizer, ex["messages"], max_len)
                 for ex in load_chat(curated, "train")]
    val_set = [tokenize_chat(tokenizer, ex["messages"], max_len)
               for ex in load_chat(curated, "val")]
    if not train_set:
        raise DataError(f"{curated.path / 'train.jsonl'}: no training examples")
    device = pick_device()
    bf16 = use_bf16(cfg.train.precision, device)
    model = attach_lora(load_base_model(cfg.model.base, cfg.model.cache_dir).to(device),
                        cfg.train)
    report = train_loop(model, train_set, val_set, cfg.train, tokenizer.pad_token_id,
                        cfg.run.seed, bf16)
    model.save_pretrained(tmp / ADAPTER_DIR)
    tokenizer.save_pretrained(tmp / ADAPTER_DIR)
    write_jsonl(tmp / TRAIN_LOG, ({"step": i + 1, "loss": loss}
                                  for i, loss in enumerate(report.losses)))
    window = max(1, min(10, len(report.losses) // 5))
    return StageResult(
        counts={"examples": len(train_set), "steps": report.steps, "tokens": report.tokens},
        details={
            "base_model": cfg.model.base,
            "device": device,
            "bf16_autocast": bf16,
            "loss_first": sum(report.losses[:window]) / window,
            "loss_last": sum(report.losses[-window:]) / window,
            "val_loss_before": report.val_loss_before,
            "val_loss_after": report.val_loss_after,
            "tokens_per_second": report.tokens_per_second,
            "train_seconds": report.seconds,
        },
    )
