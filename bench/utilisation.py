"""Training-step utilisation: tuneline's LoRA step against this machine's measured matmul peak.

Baseline: the matmul peak, measured here (square float32 and bfloat16 matmuls of the sizes the
135M model's layers use, on all the threads tuneline trains with). Ours: full optimizer steps of
`tuneline.train.loop` pieces (answer-only loss, LoRA on every block, AdamW) on batches shaped as
the demo's training data (batch 8, `--seq-len` tokens, the last `--answer-share` of each row
labelled), in fp32 and under bf16 autocast with attention in fp32 and the frozen linear weights
stored in bf16 (how `train.precision: auto` trains on a CPU with native bf16). FLOPs per
token: 4 x the weights of the blocks' linear layers (forward, plus the backward pass to the
activations; the frozen weights get no gradient) + 4 x the LM head at answer positions only +
causal attention x 3; utilisation = achieved FLOP/s / peak FLOP/s of the same precision.

    .venv/bin/python bench/utilisation.py [--steps 6] [--seq-len 300] [--precisions fp32,bf16]

By default it measures the precisions this machine runs fast: fp32 everywhere, bf16 only where
the CPU has it natively (emulated bf16 is ~30x slower and would take half an hour here).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time

import torch

from tuneline.models.loading import load_base_model, set_cpu_threads
from tuneline.train.config import TrainConfig
from tuneline.train.loss import answer_loss
from tuneline.train.methods import attach_lora
from tuneline.train.precision import training_precision
from tuneline.train.tokenize import IGNORE_INDEX


def matmul_peak(dtype: torch.dtype, size: int = 1536, seconds: float = 3.0) -> float:
    """Sustained GFLOP/s of square matmuls of `size` in `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e9


def flops_per_token(model, seq_len: int, answer_share: float) -> float:
    """Training FLOPs per token of a LoRA step (frozen base; see the module docstring)."""
    lm = model.get_base_model()
    blocks = sum(m.weight.numel() for name, m in lm.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lm_head" not in name
                 and "lora_" not in name)
    head = lm.lm_head.weight.numel()
    config = lm.config
    # QK^T and AV: 4 x seq x hidden per token and layer, halved by the causal mask.
    attention = 2 * config.num_hidden_layers * seq_len * config.hidden_size
    return 4 * blocks + 4 * head * answer_share + 3 * attention


def batches(vocab: int, n: int, batch_size: int, seq_len: int, answer_share: float) -> list:
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(100, vocab, (batch_size, seq_len), generator=generator)
        labels = ids.clone()
        labels[:, : int(seq_len * (1 - answer_share))] = IGNORE_INDEX
        out.append({"input_ids": ids, "labels": labels,
                    "attention_mask": torch.ones_like(ids)})
    return out


def tokens_per_second(model, data: list, bf16: bool) -> float:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step(batch) -> None:
        with autocast:
            loss = answer_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(data[0])  # warm-up
    started = time.perf_counter()
    for batch in data[1:]:
        step(batch)
    return sum(b["input_ids"].numel() for b in data[1:]) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=300)
    parser.add_argument("--answer-share", type=float, default=0.15)
    parser.add_argument("--precisions", default=None,
                        help="comma-separated fp32,bf16 (default: fp32, and bf16 where native)")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    machine = this_machine()
    print(machine.summary())  # figures compare within one machine class only
    set_cpu_threads()
    model = attach_lora(load_base_model(args.model), TrainConfig())
    model.train()
    data = batches(model.config.vocab_size, args.steps + 1, args.batch_size, args.seq_len,
                   args.answer_share)
    per_token = flops_per_token(model, args.seq_len, args.answer_share)
    print(f"model={args.model} threads={torch.get_num_threads()} batch={args.batch_size}x"
          f"{args.seq_len} answer_share={args.answer_share} "
          f"GFLOP/token={per_token / 1e9:.3f}")
    default = "fp32,bf16" if machine.native_bf16 else "fp32"
    wanted = (args.precisions or default).split(",")
    for name, dtype, bf16 in (("fp32", torch.float32, False), ("bf16", torch.bfloat16, True)):
        if name not in wanted:
            continue
        peak = matmul_peak(dtype)
        with training_precision(model, "cpu", bf16):
            speed = tokens_per_second(model, data, bf16)
        achieved = speed * per_token / 1e9
        print(f"{name}: matmul peak {peak:7.1f} GFLOP/s | train step {speed:7.1f} tok/s = "
              f"{achieved:6.1f} GFLOP/s | utilisation {achieved / peak:6.1%}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
