"""A plain PyTorch LoRA training loop: length-grouped batches, bf16 autocast, progress."""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from tuneline._optional import require
from tuneline.config import TrainConfig
from tuneline.training.tokenize import TokenizedExample, collate, length_grouped_batches


@dataclass
class TrainReport:
    """What happened during training, for the manifest and the tests."""

    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    bf16: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def attach_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap a base model with trainable LoRA adapters; base weights stay frozen."""
    peft = require("peft")
    lora = peft.LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft calls transformers' deprecated `is_gradient_checkpointing`; not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        return peft.get_peft_model(model, lora)


def train_loop(
    model: Any,
    train_set: list[TokenizedExample],
    val_set: list[TokenizedExample],
    cfg: TrainConfig,
    pad_id: int,
    seed: int,
    bf16: bool,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainReport:
    """Train `model` in place for `cfg.epochs` passes and report losses and throughput."""
    torch = require("torch")
    transformers = require("transformers")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    batches_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = max(1, math.ceil(batches_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = transformers.get_cosine_schedule_with_warmup(
        optimizer, int(total_steps * cfg.warmup_ratio), total_steps
    )
    report = TrainReport(bf16=bf16)
    report.val_loss_before = evaluate_loss(model, val_set, cfg.batch_size, pad_id, bf16)
    model.train()
    bar = tqdm(total=total_steps, desc="train", unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    step = 0
    while step < total_steps:
        for batch in length_grouped_batches(train_set, cfg.batch_size, rng):
            if step >= total_steps:
                break
            loss, n_tokens = _train_step(model, collate(batch, pad_id), bf16, model.device)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            report.steps, report.tokens = step, report.tokens + n_tokens
            report.losses.append(loss)
            report.seconds = time.perf_counter() - started
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{report.tokens_per_second:,.0f}")
            bar.update(1)
            if on_step is not None:
                on_step(step, loss)
    bar.close()
    report.val_loss_after = evaluate_loss(model, val_set, cfg.batch_size, pad_id, bf16)
    return report


def _autocast(bf16: bool, device: Any) -> Any:
    torch = require("torch")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16)


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean next-token loss over labelled positions, projecting only those onto the vocabulary.

    Computing the LM head over every position costs as much as the rest of a 135M model
    (49k vocabulary) while prompts carry no loss; gathering the labelled hidden states first
    skips that work. Falls back to the model's own loss for models without a split head.
    """
    torch = require("torch")
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(causal_lm, "model", None)
    head = causal_lm.get_output_embeddings()
    if decoder is None or head is None:
        return model(**batch).loss
    hidden = decoder(input_ids=batch["input_ids"],
                     attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _train_step(model: Any, batch: dict[str, Any], bf16: bool, device: Any) -> tuple[float, int]:
    batch = {k: v.to(device) for k, v in batch.items()}
    with _autocast(bf16, device):
        loss = answer_loss(model, batch)
    loss.backward()
    return float(loss.detach()), int(batch["attention_mask"].sum())


def evaluate_loss(
    model: Any, examples: list[TokenizedExample], batch_size: int, pad_id: int, bf16: bool
) -> float | None:
    """Mean token loss over `examples` (None when there are none)."""
    torch = require("torch")
    if not examples:
        return None
    model.eval()
    total, weight = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size], pad_id)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            n_targets = int((batch["labels"][:, 1:] != -100).sum())
            with _autocast(bf16, model.device):
                loss = answer_loss(model, batch)
            total += float(loss) * n_targets
            weight += n_targets
    model.train()
    return total / weight if weight else None
