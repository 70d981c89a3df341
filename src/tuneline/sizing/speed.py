"""This machine's speed for the base model, measured before training: a LoRA step, and batched
generation at a short and at a long context.

A generated token costs more the more context it attends to, and a batch's step costs less
the fewer rows it has. On the Python FAQ's retrieval prompts (~550 tokens, two passages) a
decode step of 16 rows took 160-230 ms against ~100 ms at a 40-token context, and a
three-row batch ended each of its sets (Intel Xeon, fp32; docs/log.md, 2026-12-06 (evening)).
Prefill and decode are measured at two contexts and taken as linear in the context between and
beyond them; decode also at one row, and taken as linear in the rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tuneline.config import PipelineConfig
from tuneline.train.tokenize import IGNORE_INDEX

PROBE_BATCH_TOKENS = 128  # per row of the training probe; the demo's rows average ~130
PROBE_ANSWER_SHARE = 0.15  # the loss (and the LM head) is taken at answer positions only
PROBE_PROMPT_TOKENS = 32  # the short context
PROBE_LONG_TOKENS = 512  # the long context: one row run once, its cache repeated over the batch
PROBE_NEW_TOKENS = 8
# The probe's batch: evaluate.batch_size, but at most this many rows (at 64, repeating the
# long row's cache alone doubled its measured prefill cost). A batch of more rows is projected
# along the line through the one-row step and this one's: on the Zen 5 EPYC class a step of
# 16 short rows took 110 ms, one row 62 ms, and 54 rows 230-260 ms.
PROBE_MAX_ROWS = 16


@dataclass
class MachineSpeed:
    """This machine's measured speeds for the base model, in the precision the run uses."""

    train_seconds_per_token: float  # padded tokens of a LoRA step: forward, backward, AdamW
    prefill_seconds_per_token: float  # prompt tokens of a batched generation, short prompts
    decode_seconds_per_step: float  # one new token for every row of an evaluate batch
    probe_seconds: float
    # the same at PROBE_LONG_TOKENS of context (None: not measured; short speeds throughout)
    prefill_seconds_per_token_long: float | None = None
    decode_seconds_per_step_long: float | None = None
    # a decode step of one row (short context), and the rows of the batches measured: a
    # batch's last, partial one costs less a step (None: every batch counted as full)
    decode_seconds_per_step_one_row: float | None = None
    batch_rows: int | None = None

    def prefill_seconds(self, tokens: float, context: float) -> float:
        """Seconds to run `tokens` prompt tokens in rows of about `context` tokens."""
        return tokens * _at_context(context, self.prefill_seconds_per_token,
                                    self.prefill_seconds_per_token_long)

    def decode_seconds(self, steps: float, context: float, rows: int | None = None) -> float:
        """Seconds for `steps` new tokens of `rows` rows (the measured batch when None)
        attending to about `context` tokens: a one-row step, plus each further row's share of
        the measured batch's, fewer rows or more."""
        full = _at_context(context, self.decode_seconds_per_step,
                           self.decode_seconds_per_step_long)
        one, measured = self.decode_seconds_per_step_one_row, self.batch_rows
        if rows is None or one is None or measured is None or measured < 2:
            return steps * full
        one = min(one, full)
        return steps * (one + (full - one) * (max(rows, 1) - 1) / (measured - 1))


def _at_context(context: float, short: float, long: float | None) -> float:
    """A cost measured at PROBE_PROMPT_TOKENS (`short`) and PROBE_LONG_TOKENS (`long`), at
    `context`: linear between and beyond them, never below the short cost."""
    if long is None:
        return short
    slope = (long - short) / (PROBE_LONG_TOKENS - PROBE_PROMPT_TOKENS)
    return max(short, short + slope * (context - PROBE_PROMPT_TOKENS))


_MEASURED: dict[tuple[Any, ...], MachineSpeed] = {}


def machine_speed(cfg: PipelineConfig) -> MachineSpeed:
    """measure_speed, once per process for a model, precision and batch sizes (the seeds of
    run.repeats share it)."""
    key = (cfg.model.base, cfg.train.precision, cfg.train.batch_size, cfg.evaluate.batch_size,
           cfg.train.lora.model_dump_json())
    if key not in _MEASURED:
        _MEASURED[key] = measure_speed(cfg)
    return _MEASURED[key]


def measure_speed(cfg: PipelineConfig) -> MachineSpeed:
    """Time a few LoRA steps and a short generation of the base model, as train and evaluate
    will run them (the same precisions, threads and batch sizes)."""
    import torch

    from tuneline.models.loading import load_base_model, pick_device, set_cpu_threads, use_bf16
    from tuneline.train.loss import answer_loss
    from tuneline.train.methods import attach_lora
    from tuneline.train.precision import train_in_bf16, training_precision

    started = time.perf_counter()
    set_cpu_threads()
    device = pick_device()
    train_bf16 = train_in_bf16(cfg.train.precision, device)
    model = attach_lora(load_base_model(cfg.model.base, cfg.model.cache_dir), cfg.train)
    model.to(device)
    vocab = model.config.vocab_size
    batch = _random_ids(vocab, cfg.train.batch_size, PROBE_BATCH_TOKENS, device)
    labels = batch.clone()
    labels[:, : int(PROBE_BATCH_TOKENS * (1 - PROBE_ANSWER_SHARE))] = IGNORE_INDEX
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    seconds = []
    with training_precision(model, device, train_bf16):
        for _ in range(2):  # the first warms the kernels up and is not counted
            step_started = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=train_bf16):
                loss = answer_loss(model, {"input_ids": batch, "labels": labels})
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds.append(time.perf_counter() - step_started)
    train = seconds[-1] / batch.numel()
    model = model.get_base_model().eval()
    if use_bf16(cfg.train.precision, device):  # how evaluate and replay generate
        model = model.to(torch.bfloat16)
    rows = min(cfg.evaluate.batch_size, PROBE_MAX_ROWS)
    prompts = _random_ids(vocab, rows, PROBE_PROMPT_TOKENS, device)
    prefill = _generation_seconds(model, prompts, 1)
    decode = (_generation_seconds(model, prompts, 1 + PROBE_NEW_TOKENS) - prefill)
    one_row = (_generation_seconds(model, prompts[:1], 1 + PROBE_NEW_TOKENS)
               - _generation_seconds(model, prompts[:1], 1))
    long_prefill, long_decode = _long_context_seconds(model, vocab, rows, device)
    return MachineSpeed(train_seconds_per_token=train,
                        prefill_seconds_per_token=prefill / prompts.numel(),
                        decode_seconds_per_step=max(decode, 0.0) / PROBE_NEW_TOKENS,
                        probe_seconds=time.perf_counter() - started,
                        prefill_seconds_per_token_long=long_prefill / PROBE_LONG_TOKENS,
                        decode_seconds_per_step_long=long_decode / PROBE_NEW_TOKENS,
                        decode_seconds_per_step_one_row=max(one_row, 0.0) / PROBE_NEW_TOKENS,
                        batch_rows=rows)


def _long_context_seconds(model: Any, vocab: int, rows: int, device: str) -> tuple[float, float]:
    """(prefill of one PROBE_LONG_TOKENS row, PROBE_NEW_TOKENS decode steps of `rows` rows
    attending to it): the row is run once and its keys and values repeated over the rows, as
    a shared prompt prefix is (models.prefix), so the probe never prefills the whole batch."""
    import torch

    from tuneline.models.prefix import cache_kwarg, repeated_prefix_cache

    prompt = _random_ids(vocab, 1, PROBE_LONG_TOKENS, device)
    with torch.inference_mode():
        timings, prefill = [], 0.0
        for new_tokens in (1, 1 + PROBE_NEW_TOKENS):
            started = time.perf_counter()
            cache = repeated_prefix_cache(model, prompt, rows)
            prefill = time.perf_counter() - started  # the second build, kernels warm
            # one more token than the cache holds: generate runs only it, then decodes
            asked = torch.cat([prompt, prompt[:, -1:]], dim=1).repeat(rows, 1)
            started = time.perf_counter()
            model.generate(asked, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=0, **{cache_kwarg(type(model)): cache})
            timings.append(time.perf_counter() - started)
    return prefill, max(timings[1] - timings[0], 0.0)


def _random_ids(vocab: int, rows: int, length: int, device: str) -> Any:
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randint(100, vocab, (rows, length), generator=generator).to(device)


def _generation_seconds(model: Any, prompts: Any, new_tokens: int) -> float:
    import torch

    with torch.inference_mode():
        model.generate(prompts, max_new_tokens=1, min_new_tokens=1, do_sample=False,
                       pad_token_id=0)  # warms the kernels up
        started = time.perf_counter()
        model.generate(prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, pad_token_id=0)
    return time.perf_counter() - started
