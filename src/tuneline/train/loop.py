"""The training loop: plain PyTorch driven through HF accelerate.

One code path serves a single CPU process, data-parallel processes (gloo on CPU, NCCL on GPU),
and FSDP / DeepSpeed when launched with an accelerate config. Each optimizer step takes one
global batch; every process trains on its share, split into gradient-accumulation micro-batches.
The loss is normalised by the global batch's answer-token count, so the gradient (and the loss)
is the same however the batch is split across processes and micro-batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from tuneline._optional import require
from tuneline.errors import ConfigError
from tuneline.train import checkpoint as ckpt
from tuneline.train.budget import (
    BudgetCut,
    calibration_step,
    fit_plan,
    step_tokens,
    token_bounded,
)
from tuneline.train.checkpoint import CheckpointStore, LoopState
from tuneline.train.config import TrainConfig
from tuneline.train.loss import AnswerLossModule
from tuneline.train.methods import attach_lora, load_trainable_state, trainable_state
from tuneline.train.precision import training_precision
from tuneline.train.tokenize import (
    TokenizedExample,
    collate,
    collate_packed,
    length_grouped_batches,
)

torch = require("torch")

__all__ = ["TrainReport", "attach_lora", "train_loop"]

LogFn = Callable[[int, dict[str, float]], None]


@dataclass
class TrainReport:
    """What happened during training, for the manifest and the tests."""

    steps: int = 0
    total_steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    resumed_from_step: int | None = None
    bf16: bool = False
    attention_in_fp32: bool = False  # under the bf16 autocast, on a CPU
    processes: int = 1
    distributed: str = "NO"
    full_state_dict: dict[str, Any] | None = None
    budget: BudgetCut | None = None
    # train.jsonl rows (TokenizedExample.row) in none of the batches the kept weights trained
    rows_not_reached: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def make_accelerator() -> Any:
    """This process's Accelerator: plain, or distributed when `accelerate launch` started it."""
    accelerate = require("accelerate")
    if torch.cuda.is_available():
        # cuDNN attention builds a plan per new sequence length, and length-grouped batches
        # bring a new length nearly every step: LoRA at batch 16 on an H200 ran at 10.8k
        # tok/s with it and 20.2k without (docs/benchmarks.md, "GPU").
        torch.backends.cuda.enable_cudnn_sdp(False)
    return accelerate.Accelerator(cpu=not torch.cuda.is_available())


def epoch_batches(train_set: list[TokenizedExample], batch_size: int, seed: int,
                  epoch: int, min_size: int) -> list[list[TokenizedExample]]:
    """The global batches of one epoch: a pure function of (seed, epoch), so resuming can
    recompute the order and skip what was already trained. Batches too small to give every
    process and micro-batch an example are dropped."""
    rng = random.Random(f"{seed}:{epoch}")
    return [b for b in length_grouped_batches(train_set, batch_size, rng) if len(b) >= min_size]


def train_loop(
    model: Any,
    train_set: list[TokenizedExample],
    val_set: list[TokenizedExample],
    cfg: TrainConfig,
    pad_id: int,
    seed: int,
    bf16: bool,
    *,
    accelerator: Any = None,
    store: CheckpointStore | None = None,
    on_log: LogFn | None = None,
    cpu_attention_in_fp32: bool = True,
) -> TrainReport:
    """Train `model` in place and report losses and throughput.

    With a checkpoint `store`, resumes from its latest checkpoint and writes one every
    `cfg.checkpoint_every` steps. Under bf16 autocast the step runs as `training_precision`
    sets it up: on a CPU, attention in float32 unless `cpu_attention_in_fp32` is False
    (benches comparing the two), and the frozen linear weights stored in bf16.
    """
    accelerator = accelerator or make_accelerator()
    # sharding wrappers own the weights' storage
    single = accelerator.num_processes == 1 and not _is_sharded(accelerator)
    with training_precision(model, accelerator.device.type, bf16, single_process=single,
                            cpu_attention_in_fp32=cpu_attention_in_fp32) as attention_in_fp32:
        report = _train(model, train_set, val_set, cfg, pad_id, seed, bf16, accelerator,
                        store, on_log)
    report.attention_in_fp32 = attention_in_fp32
    return report


def _train(model: Any, train_set: list[TokenizedExample], val_set: list[TokenizedExample],
           cfg: TrainConfig, pad_id: int, seed: int, bf16: bool, accelerator: Any,
           store: CheckpointStore | None, on_log: LogFn | None) -> TrainReport:
    loop_started = time.perf_counter()
    world = accelerator.num_processes
    micro_batches = cfg.gradient_accumulation_steps
    _check_batch_split(cfg, world, accelerator)
    min_size = world * micro_batches
    steps_per_epoch = len(epoch_batches(train_set, cfg.batch_size, seed, 0, min_size))
    if steps_per_epoch == 0:
        raise ConfigError([f"train.batch_size: {len(train_set)} examples are fewer than the "
                           f"{min_size} needed to give each process and micro-batch one"])
    total_steps = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))

    random.seed(seed)
    torch.manual_seed(seed)
    state = LoopState()
    latest = store.latest() if store else None
    if latest is not None:
        total_steps = ckpt.read_loop_state(latest).total_steps or total_steps  # a cut plan
    sharded = _is_sharded(accelerator)
    if latest is not None and not sharded:
        load_trainable_state(model, ckpt.read_tensors(latest, ckpt.WEIGHTS_FILE))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    # One prepare call for both: DeepSpeed builds its engine from the pair, FSDP re-points the
    # optimizer at the sharded parameters.
    share_prefix = cfg.share_prompt_prefix and not cfg.gradient_checkpointing and not sharded
    wrapped, optimizer = accelerator.prepare(
        AnswerLossModule(model, share_prefix, chunk_head=not sharded), optimizer)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    scheduler = _scheduler(cfg, optimizer, total_steps)
    best_weights: dict[str, Any] | None = None
    report = TrainReport(total_steps=total_steps, bf16=bf16, processes=world,
                         distributed=str(accelerator.distributed_type).rsplit(".", 1)[-1])
    if latest is not None:
        state, best_weights = _resume(latest, accelerator, optimizer, scheduler, sharded)
        report.resumed_from_step = state.step
        report.val_loss_before = next((row["val_loss"] for row in state.log
                                       if row["step"] == 0 and "val_loss" in row), None)
    else:
        report.val_loss_before = validation_loss(wrapped, val_set, cfg, pad_id, bf16,
                                                 accelerator)
        if report.val_loss_before is not None:
            state.log.append({"step": 0, "val_loss": report.val_loss_before})
    if on_log and report.val_loss_before is not None and latest is None:
        on_log(0, {"val_loss": report.val_loss_before})

    wrapped.train()
    bar = tqdm(total=total_steps, initial=state.step, desc="train", unit="step",
               dynamic_ncols=True, disable=not accelerator.is_main_process)
    plan = epoch_batches(train_set, cfg.batch_size, seed, state.epoch, min_size)
    budgeted = cfg.time_limit_seconds is not None and state.total_steps is None
    start_step = state.step
    calibrate_at = start_step + calibration_step(total_steps - start_step) if budgeted else 0
    first_step_seconds = 0.0
    while state.step < total_steps and not state.stopped_early:
        if state.batch_in_epoch >= len(plan):
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            plan = epoch_batches(train_set, cfg.batch_size, seed, state.epoch, min_size)
        batch = plan[state.batch_in_epoch]
        started = time.perf_counter()
        loss, tokens, grad_norm = _optimizer_step(wrapped, optimizer, scheduler, params, batch,
                                                  cfg, pad_id, bf16, accelerator)
        state.seconds += time.perf_counter() - started
        state.step, state.batch_in_epoch = state.step + 1, state.batch_in_epoch + 1
        state.tokens += tokens
        if state.step == start_step + 1:
            first_step_seconds = state.seconds
        if state.step == calibrate_at:
            report.budget = _fit_to_time_limit(
                train_set, cfg, seed, min_size, total_steps, (start_step, calibrate_at),
                state.seconds - first_step_seconds, time.perf_counter() - loop_started,
                accelerator, share_prefix)
            if report.budget.cut:
                total_steps = state.total_steps = report.budget.steps
                scheduler = _scheduler(cfg, optimizer, total_steps, done=state.step)
                bar.total = total_steps
            if accelerator.is_main_process:
                tqdm.write(report.budget.describe(steps_per_epoch))
        row = {"step": state.step, "loss": loss, "lr": scheduler.get_last_lr()[0],
               "grad_norm": grad_norm, "tokens": state.tokens}
        state.log.append(row)
        tok_s = state.tokens / state.seconds if state.seconds else 0.0
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}")
        bar.update(1)
        if on_log:
            on_log(state.step, {"loss": loss, "lr": row["lr"], "grad_norm": grad_norm,
                                "tokens_per_second": tok_s})
        if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < total_steps:
            best_weights = _validate(wrapped, val_set, cfg, pad_id, bf16, accelerator, state,
                                     best_weights, on_log)
        if (store and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0
                and state.step < total_steps and not state.stopped_early):
            save_checkpoint(store, state, wrapped, optimizer, scheduler, accelerator,
                            best_weights, sharded)
    bar.close()

    report.val_loss_after = validation_loss(wrapped, val_set, cfg, pad_id, bf16, accelerator)
    if report.val_loss_after is not None:
        state.log.append({"step": state.step, "val_loss": report.val_loss_after})
        if on_log:
            on_log(state.step, {"val_loss": report.val_loss_after})
    weights_step = state.step
    if cfg.early_stopping_patience:
        # The final weights compete with the best validated ones; the better ones are kept.
        if (best_weights is not None and report.val_loss_after is not None
                and state.best_val_loss < report.val_loss_after):
            load_trainable_state(_lm(wrapped, accelerator), best_weights)
            report.val_loss_after = state.best_val_loss
            weights_step = state.best_step or state.step
        else:
            state.best_step = state.step
    report.rows_not_reached = _rows_not_reached(train_set, cfg.batch_size, seed, min_size,
                                                weights_step)
    if sharded:
        # Shards live on different processes; gather the whole state to save a plain model.
        gathered = accelerator.get_state_dict(wrapped)
        report.full_state_dict = {k.removeprefix("lm."): v for k, v in gathered.items()}
    report.steps, report.tokens, report.seconds = state.step, state.tokens, state.seconds
    report.total_steps = total_steps
    report.log = state.log
    report.losses = [r["loss"] for r in state.log if "loss" in r]
    report.best_step, report.stopped_early = state.best_step, state.stopped_early
    return report


def _scheduler(cfg: TrainConfig, optimizer: Any, total_steps: int, done: int = 0) -> Any:
    """The learning-rate schedule over `total_steps`, advanced past `done` steps."""
    scheduler = require("transformers").get_scheduler(
        _scheduler_name(cfg.lr_scheduler), optimizer,
        num_warmup_steps=int(total_steps * cfg.warmup_ratio), num_training_steps=total_steps)
    for _ in range(done):
        scheduler.step()
    return scheduler


def _fit_to_time_limit(train_set: list[TokenizedExample], cfg: TrainConfig, seed: int,
                       min_size: int, total_steps: int, measured: tuple[int, int],
                       measured_seconds: float, elapsed_seconds: float,
                       accelerator: Any, share_prefix: bool) -> BudgetCut:
    """Project the plan from the speed of steps measured[0] + 2 .. measured[1] (the first
    one warms kernels up) and cut it to what fits cfg.time_limit_seconds. Every process gets
    the same cut."""
    start_step, done = measured
    planned = _planned_batches(train_set, cfg.batch_size, seed, min_size, total_steps)
    cap = _micro_batch_cap(cfg, accelerator)
    costs = [step_tokens(batch, share_prefix, cap) for batch in planned]
    seconds_per_token = measured_seconds / max(1, sum(costs[start_step + 1:done]))
    if accelerator.num_processes > 1:
        both = torch.tensor([seconds_per_token, elapsed_seconds], device=accelerator.device)
        seconds_per_token, elapsed_seconds = accelerator.reduce(both, reduction="mean").tolist()
    assert cfg.time_limit_seconds is not None
    cut = fit_plan(costs, done, elapsed_seconds, seconds_per_token, cfg.time_limit_seconds)
    return dataclasses.replace(cut, examples=len(train_set),
                               examples_trained=len(_reached(planned[:cut.steps])))


def _micro_batch_cap(cfg: TrainConfig, accelerator: Any) -> int | None:
    """train.max_micro_batch_tokens where it applies: one process, not DeepSpeed or FSDP (with
    several processes each would split its share differently and sharded training must run
    its parts in step; DeepSpeed steps its optimizer at every backward)."""
    if accelerator.num_processes > 1 or _is_sharded(accelerator):
        return None
    return cfg.max_micro_batch_tokens


def _planned_batches(train_set: list[TokenizedExample], batch_size: int, seed: int,
                     min_size: int, total_steps: int) -> list[list[TokenizedExample]]:
    """The batches of the first `total_steps` planned steps, in training order."""
    batches: list[list[TokenizedExample]] = []
    epoch = 0
    while len(batches) < total_steps:
        epoch_plan = epoch_batches(train_set, batch_size, seed, epoch, min_size)
        if not epoch_plan:
            break
        batches += epoch_plan
        epoch += 1
    return batches[:total_steps]


def _reached(batches: list[list[TokenizedExample]]) -> set[int]:
    """The examples (by id) that `batches` hold."""
    return {id(example) for batch in batches for example in batch}


def _rows_not_reached(train_set: list[TokenizedExample], batch_size: int, seed: int,
                      min_size: int, steps: int) -> list[int]:
    """The train.jsonl rows in none of the first `steps` planned batches: what a plan that
    stops within its first epoch (a time limit, train.max_steps, early stopping) never shows."""
    reached = _reached(_planned_batches(train_set, batch_size, seed, min_size, steps))
    return sorted(e.row for e in train_set if e.row is not None and id(e) not in reached)


def _check_batch_split(cfg: TrainConfig, world: int, accelerator: Any) -> None:
    if "DEEPSPEED" in str(accelerator.distributed_type) and cfg.gradient_accumulation_steps > 1:
        raise ConfigError([
            "train.gradient_accumulation_steps: under DeepSpeed set it in the DeepSpeed config "
            "(deepspeed_config.gradient_accumulation_steps) and keep this at 1"
        ])
    per_step = world * cfg.gradient_accumulation_steps
    if cfg.batch_size % per_step:
        raise ConfigError([
            f"train.batch_size: {cfg.batch_size} examples per step do not split evenly over "
            f"{world} process(es) x {cfg.gradient_accumulation_steps} accumulation step(s); "
            f"use a multiple of {per_step}"
        ])


def _scheduler_name(name: str) -> str:
    return {"constant": "constant_with_warmup"}.get(name, name)


def _is_sharded(accelerator: Any) -> bool:
    kind = str(accelerator.distributed_type)
    return "FSDP" in kind or "DEEPSPEED" in kind


def _lm(wrapped: Any, accelerator: Any) -> Any:
    return accelerator.unwrap_model(wrapped).lm


def _autocast(bf16: bool, device: Any) -> Any:
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16)


def _inputs(examples: list[TokenizedExample], cfg: TrainConfig, pad_id: int,
            device: Any) -> dict[str, Any]:
    batch = collate_packed(examples) if cfg.packing else collate(examples, pad_id)
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _optimizer_step(wrapped: Any, optimizer: Any, scheduler: Any, params: list[Any],
                    batch: list[TokenizedExample], cfg: TrainConfig, pad_id: int, bf16: bool,
                    accelerator: Any) -> tuple[float, int, float]:
    """One optimizer step on a global batch; returns (mean answer loss, real tokens, grad norm)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    n_targets = sum(e.n_targets for e in batch)
    shard = batch[rank::world]
    cap = _micro_batch_cap(cfg, accelerator)
    parts = [bounded for p in _split(shard, cfg.gradient_accumulation_steps) if p
             for bounded in token_bounded(p, cap)]
    loss_sum, tokens = 0.0, 0
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        sync = contextlib.nullcontext() if last else accelerator.no_sync(wrapped)
        with sync:
            with _autocast(bf16, accelerator.device):
                summed, _ = wrapped(**_inputs(part, cfg, pad_id, accelerator.device))
            # DDP averages gradients over processes; scaling by `world` makes it a sum.
            accelerator.backward(summed * (world / n_targets))
        loss_sum += float(summed.detach())
        tokens += sum(len(e.input_ids) for e in part)
    grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    totals = torch.tensor([loss_sum, float(tokens)], device=accelerator.device)
    if world > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    norm = float(grad_norm) if grad_norm is not None else math.nan  # DeepSpeed clips inside
    return float(totals[0]) / n_targets, int(totals[1]), norm


def _split(items: list[Any], n: int) -> list[list[Any]]:
    """`items` in n contiguous parts whose sizes differ by at most one."""
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def validation_loss(wrapped: Any, examples: list[TokenizedExample], cfg: TrainConfig,
                    pad_id: int, bf16: bool, accelerator: Any) -> float | None:
    """Mean answer-token loss over `examples`, shared out over the processes (None if empty).

    Every process runs the same number of forwards (sharded models need all of them), padding
    its share with a zero-weighted example where the shares are uneven.
    """
    if not examples:
        return None
    world, rank = accelerator.num_processes, accelerator.process_index
    micro = max(1, cfg.batch_size // (world * cfg.gradient_accumulation_steps))
    shard = examples[rank::world]
    n_batches = math.ceil(math.ceil(len(examples) / world) / micro)
    totals = torch.zeros(2, device=accelerator.device)
    wrapped.eval()
    with torch.no_grad():
        for i in range(n_batches):
            part = shard[i * micro : (i + 1) * micro]
            weight = 1.0 if part else 0.0
            for bounded in token_bounded(part or examples[:1], _micro_batch_cap(cfg, accelerator)):
                with _autocast(bf16, accelerator.device):
                    summed, count = wrapped(**_inputs(bounded, cfg, pad_id, accelerator.device))
                totals += torch.stack([summed.float(), count.float()]) * weight
    wrapped.train()
    if world > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[1]) if totals[1] else None


def _validate(wrapped: Any, val_set: list[TokenizedExample], cfg: TrainConfig, pad_id: int,
              bf16: bool, accelerator: Any, state: LoopState,
              best_weights: dict[str, Any] | None, on_log: LogFn | None) -> dict[str, Any] | None:
    """Validation every `eval_every` steps, with early-stopping bookkeeping."""
    val = validation_loss(wrapped, val_set, cfg, pad_id, bf16, accelerator)
    if val is None:
        return best_weights
    state.log.append({"step": state.step, "val_loss": val})
    if on_log:
        on_log(state.step, {"val_loss": val})
    if state.best_val_loss is None or val < state.best_val_loss - cfg.early_stopping_min_delta:
        state.best_val_loss, state.best_step, state.evals_without_improvement = val, state.step, 0
        if cfg.early_stopping_patience:
            best_weights = trainable_state(_lm(wrapped, accelerator))
    else:
        state.evals_without_improvement += 1
        patience = cfg.early_stopping_patience
        state.stopped_early = bool(patience and state.evals_without_improvement >= patience)
    return best_weights


def save_checkpoint(store: CheckpointStore, state: LoopState, wrapped: Any, optimizer: Any,
                    scheduler: Any, accelerator: Any, best_weights: dict[str, Any] | None,
                    sharded: bool) -> None:
    """Write a checkpoint atomically; every process writes its RNG state, the main one the rest."""
    if accelerator.is_main_process:
        staging = store.begin(state.step)
    accelerator.wait_for_everyone()
    staging = store.staging_dir(state.step)
    if sharded:
        accelerator.save_state(str(staging / "accelerate"))
    ckpt.write_tensors(staging, ckpt.rng_file(accelerator.process_index), ckpt.rng_states())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not sharded:
            ckpt.write_tensors(staging, ckpt.WEIGHTS_FILE, trainable_state(_lm(wrapped,
                                                                              accelerator)))
            ckpt.write_tensors(staging, ckpt.OPTIMIZER_FILE, optimizer.state_dict())
        ckpt.write_tensors(staging, ckpt.SCHEDULER_FILE, scheduler.state_dict())
        if best_weights is not None:
            ckpt.write_tensors(staging, ckpt.BEST_WEIGHTS_FILE, best_weights)
        ckpt.write_loop_state(staging, state)
        store.commit(state.step)
    accelerator.wait_for_everyone()


def _resume(latest: Any, accelerator: Any, optimizer: Any, scheduler: Any,
            sharded: bool) -> tuple[LoopState, dict[str, Any] | None]:
    if sharded:
        accelerator.load_state(str(latest / "accelerate"))
    else:
        optimizer.load_state_dict(ckpt.read_tensors(latest, ckpt.OPTIMIZER_FILE))
    scheduler.load_state_dict(ckpt.read_tensors(latest, ckpt.SCHEDULER_FILE))
    rng = latest / ckpt.rng_file(accelerator.process_index)
    if rng.is_file():
        ckpt.restore_rng_states(ckpt.read_tensors(latest, rng.name))
    best = latest / ckpt.BEST_WEIGHTS_FILE
    best_weights = ckpt.read_tensors(latest, best.name) if best.is_file() else None
    return ckpt.read_loop_state(latest), best_weights

