"""LoRA and QLoRA on a CUDA GPU: tokens/s, peak GPU memory and MFU of tuneline's trainer on a
model of a real 1B shape.

Ours: `tuneline.train.job.model_for_training` (the train stage's loading: 4-bit NF4 with double
quantisation for QLoRA) and `tuneline.train.loop.train_loop` (answer-only loss, AdamW, bf16
autocast, length-grouped batches or packing) on the demo's curated chats. Baseline: the GPU's
own bf16 matmul rate, measured in the same run (8192^3 products); MFU = achieved model FLOP/s
over it, and over the datasheet's dense bf16 peak (989 TFLOP/s for H100/H200 SXM).

The GPU machine cannot download weights, so the model is randomly initialised with the
Llama-3.2-1B configuration (16 blocks, hidden 2048, MLP 8192, 32 heads / 8 KV heads, 128,256
vocabulary, tied embeddings): throughput and memory do not depend on the weight values. The
tokenizer is the embedded SmolLM2's (its ids are a subset of the vocabulary).

FLOPs per real token (frozen base; as in bench/utilisation.py): 4 x the blocks' linear weights
(forward, and backward to the activations) + 6 x the LoRA weights + causal attention x 3. The
LM head is left out (only answer positions are projected), so MFU is slightly understated.
Tokens/s is the steady rate after the first `--warmup` steps, counting real (non-pad) tokens.

    tuneline curate examples/paris2024/tuneline.yaml      # the curated chats
    python bench/gpu_train.py --curated runs/paris2024/curate --tokenizer TOKENIZER_DIR
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import torch

from tuneline.config import PipelineConfig
from tuneline.models.loading import load_tokenizer
from tuneline.train.job import model_for_training, tokenized_split
from tuneline.train.loop import make_accelerator, train_loop
from tuneline.train.methods import check_method_supported, save_trained
from tuneline.train.precision import train_in_bf16

SHAPES = {
    "llama-3.2-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                     "vocab_size": 128256, "tie_word_embeddings": True, "rope_theta": 500000.0,
                     "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
    # For a dry run of this script on a CPU.
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
             "vocab_size": 49152, "tie_word_embeddings": True, "max_position_embeddings": 1024},
}
DATASHEET_BF16_TFLOPS = 989.0
# (method, batch size, packing): the demo's batch, and a batch that fills a GPU better.
CASES = [("lora", 16, False), ("lora", 64, False), ("lora", 64, True), ("qlora", 16, False),
         ("qlora", 64, True)]


def measured_matmul_tflops(device: str, size: int = 8192, runs: int = 10) -> float:
    """bf16 matmul TFLOP/s of this device (mean of `runs` products after 3 warm-ups)."""
    if device != "cuda":
        return float("nan")
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(runs):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e12


def write_random_model(shape: str, tokenizer_dir: Path, folder: Path, device: str) -> None:
    """A randomly initialised Llama of `shape`, saved in bf16 with the tokenizer beside it."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    config = transformers.LlamaConfig(**SHAPES[shape], bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model


def flops_per_token(config, lora_params: int, mean_len: float) -> float:
    """Training FLOPs per token of a step on a frozen base (see the module docstring)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    attn = hidden * head_dim * (2 * config.num_attention_heads + 2 * config.num_key_value_heads)
    mlp = 3 * hidden * config.intermediate_size
    attention = 2 * layers * mean_len * hidden
    return 4 * layers * (attn + mlp) + 6 * lora_params + 3 * attention


def run_case(model_dir: Path, curated: Path, out: Path, method: str, batch_size: int,
             packing: bool, steps: int, warmup: int, peak_tflops: float) -> dict:
    cfg = PipelineConfig.model_validate({
        "model": {"base": str(model_dir)},
        "train": {"method": method, "batch_size": batch_size, "packing": packing,
                  "max_steps": steps, "max_seq_len": 352, "learning_rate": 2e-4,
                  "checkpoint_every": 0, "lora": {"r": 16, "alpha": 32}}})
    accelerator = make_accelerator()
    device = accelerator.device.type
    check_method_supported(cfg.train, device)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    tokenizer = load_tokenizer(str(model_dir))
    train_set, _ = tokenized_split(tokenizer, curated, "train", cfg.train.max_seq_len)
    val_set, _ = tokenized_split(tokenizer, curated, "val", cfg.train.max_seq_len)
    loaded = time.perf_counter()
    model = model_for_training(cfg, accelerator)
    load_seconds = time.perf_counter() - loaded
    stamps: list[tuple[float, int]] = []

    def on_log(step: int, row: dict) -> None:
        if "loss" in row:
            stamps.append((time.perf_counter(), step))

    report = train_loop(model, train_set, val_set, cfg.train, tokenizer.pad_token_id, 0,
                        train_in_bf16(cfg.train.precision, device), accelerator=accelerator,
                        on_log=on_log)
    step_tokens = [row["tokens"] for row in report.log if "loss" in row]
    (t0, _), (t1, _) = stamps[warmup - 1], stamps[-1]
    steady = (step_tokens[-1] - step_tokens[warmup - 1]) / (t1 - t0)
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mean_len = statistics.mean(len(e.input_ids) for e in train_set)
    flops = flops_per_token(model.get_base_model().config, lora_params, mean_len)
    saved = save_trained(model, tokenizer, method,
                         out / f"{method}-{batch_size}{'-packed' if packing else ''}")
    result = {
        "method": method, "batch_size": batch_size, "packing": packing, "steps": report.steps,
        "real_tokens": report.tokens, "load_seconds": round(load_seconds, 1),
        "train_seconds": round(report.seconds, 2),
        "tokens_per_second_all_steps": round(report.tokens_per_second, 1),
        "tokens_per_second_steady": round(steady, 1),
        "peak_gpu_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                         if device == "cuda" else None),
        "trainable_params": lora_params,
        "tflops_achieved": round(steady * flops / 1e12, 1),
        "mfu_vs_measured": round(steady * flops / 1e12 / peak_tflops, 3),
        "mfu_vs_datasheet": round(steady * flops / 1e12 / DATASHEET_BF16_TFLOPS, 3),
        "loss_first": report.losses[0], "loss_last": report.losses[-1],
        "val_loss_before": report.val_loss_before, "val_loss_after": report.val_loss_after,
        "adapter_mib": round(sum(f.stat().st_size for f in saved.iterdir()) / 2**20, 1),
    }
    del model, report
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--curated", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.2-1b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["lora", "qlora"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/tuneline-gpu-bench"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shutil.rmtree(args.work, ignore_errors=True)
    model_dir = args.work / "model"
    started = time.perf_counter()
    write_random_model(args.shape, args.tokenizer, model_dir, device)
    print(f"random {args.shape} written in {time.perf_counter() - started:.1f}s", flush=True)
    peak = measured_matmul_tflops(device)
    header = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "torch": torch.__version__, "shape": args.shape,
              "measured_bf16_matmul_tflops": round(peak, 1)}
    print(json.dumps(header), flush=True)
    results = []
    for method, batch_size, packing in CASES:
        if method not in args.methods:
            continue
        try:
            row = run_case(model_dir, args.curated, args.work, method, batch_size, packing,
                           args.steps, args.warmup, peak)
        except Exception as exc:  # one failing case must not lose the others' figures
            row = {"method": method, "batch_size": batch_size, "packing": packing,
                   "error": f"{type(exc).__name__}: {exc}"}
        results.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_train.json").write_text(
        json.dumps({**header, "cases": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
