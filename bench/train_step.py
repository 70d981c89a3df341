"""LoRA training-step throughput: tuneline's answer-only loss vs the model's full-vocabulary loss.

Baseline: `model(**batch).loss` (what HF Trainer computes): the LM head projects every position
onto the vocabulary. Ours: `tuneline.train.loop.answer_loss` projects only labelled positions.

    .venv/bin/python bench/train_step.py [--model embedded:smollm2-135m-instruct] [--steps 4]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
from pathlib import Path

import torch

from tuneline.models.loading import load_base_model, load_tokenizer, set_cpu_threads
from tuneline.train.config import TrainConfig
from tuneline.train.loss import answer_loss
from tuneline.train.methods import attach_lora
from tuneline.train.precision import fp32_attention, train_in_bf16
from tuneline.train.tokenize import collate, tokenize_chat

EXAMPLE_CSV = Path(__file__).parents[1] / "examples" / "paris2024" / "data" / "medallists.csv"


def _examples(tokenizer, n: int) -> list:
    import csv

    with EXAMPLE_CSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:n]
    return [tokenize_chat(tokenizer, [
        {"role": "user", "content": f"Which country did {r['name']} represent at Paris 2024?"},
        {"role": "assistant", "content": f"{r['name']} represented {r['country']} at the "
                                         "Paris 2024 Olympics."}], 256) for r in rows]


def _measure(model, batches, loss_fn, bf16: bool) -> float:
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    loss_fn(model, batches[0]).backward()  # warm-up
    model.zero_grad(set_to_none=True)
    started, tokens = time.perf_counter(), 0
    for batch in batches:
        with autocast:
            loss = loss_fn(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    set_cpu_threads()
    bf16 = train_in_bf16("auto", "cpu")
    tokenizer = load_tokenizer(args.model)
    examples = _examples(tokenizer, args.steps * args.batch_size)
    batches = [collate(examples[i : i + args.batch_size], tokenizer.pad_token_id)
               for i in range(0, len(examples), args.batch_size)]
    model = attach_lora(load_base_model(args.model), TrainConfig())
    model.train()
    with fp32_attention(model, "cpu", bf16):  # as the train stage runs it
        baseline = _measure(model, batches, lambda m, b: m(**b).loss, bf16)
        ours = _measure(model, batches, answer_loss, bf16)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model={args.model} bf16_autocast={bf16} threads={torch.get_num_threads()} "
          f"batches={len(batches)}x{args.batch_size}")
    print(f"baseline (full-vocab loss): {baseline:8.1f} tok/s")
    print(f"tuneline (answer-only loss): {ours:8.1f} tok/s")
    print(f"ratio: {ours / baseline:.2f}x   peak RSS: {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
