"""LoRA fine-tuning throughput: tuneline's train stage vs TRL `SFTTrainer` with its defaults.

Same base model (the embedded SmolLM2-135M-Instruct), same curated Paris 2024 train split (made
by the project's pipeline up to `curate` in a temporary runs folder), same LoRA settings (the
example config's `train.lora`, passed to TRL as a peft `LoraConfig`), about the same number of
real (non-pad) tokens, one process. Ours is the real stage (`tuneline.train.stage.run`); its
tokens and seconds come from the stage manifest. TRL runs `SFTConfig` defaults except what is
needed to run here (output_dir, max_steps, report_to, save_strategy, use_cpu); its real tokens
are the attention-mask sum of the batches it trained on, its seconds run from `on_train_begin`
to `on_train_end` (model load and dataset preparation excluded, as on our side). Peak RSS is
sampled per phase by a background thread; "Δ RSS" is over the RSS at the start of the phase.

TRL's defaults include bf16=True, which on a CPU without native bf16 is emulated and ~30x
slower than fp32; the `fp32` variant changes only that (bf16=False). The default baseline is
the fair one for the machine, what a TRL user there would run: `defaults` where the CPU has
native bf16, `fp32` where it does not; the output says which (`--trl defaults,fp32` runs both).

    .venv/bin/python bench/train.py                            # the fair baseline, 1.5k tok
    .venv/bin/python bench/train.py --tokens 20000             # ~6 min on 2 cores
    options: --threads N, --order trl-first, --json result.json
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).parents[1] / "examples" / "paris2024" / "tuneline.yaml"
GIB = 1024**3


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so each phase starts from a clean RSS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """Samples this process's RSS in a background thread; `peak` is the maximum seen."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        release_memory()
        self.baseline = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def load_cfg(runs_dir: Path, overrides: list[str] = ()) -> Any:  # type: ignore[assignment]
    from tuneline.config import load_config

    return load_config(EXAMPLE, [f"run.runs_dir={runs_dir}", *overrides])


def curate(runs_dir: Path) -> Any:
    from tuneline.pipeline import run_pipeline

    log(f"curating {EXAMPLE} into {runs_dir}")
    return run_pipeline(load_cfg(runs_dir), until="curate").artifacts["curate"]


def plan_steps(cfg: Any, curated: Any, budget: int) -> dict[str, Any]:
    """Optimizer steps of our trainer that come closest to `budget` real tokens."""
    from tuneline.curate.stage import load_chat
    from tuneline.models.loading import load_tokenizer
    from tuneline.train.job import example_limit
    from tuneline.train.tokenize import IGNORE_INDEX, tokenize_chat

    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    train = [tokenize_chat(tokenizer, ex["messages"], example_limit(cfg.train, tokenizer))
             for ex in load_chat(curated, "train")]
    tokens = sum(len(e.input_ids) for e in train)
    answer = sum(sum(1 for t in e.labels[1:] if t != IGNORE_INDEX) for e in train)
    batch = cfg.train.batch_size
    per_step = tokens / len(train) * batch
    steps = max(1, round(budget / per_step))
    return {"examples": len(train), "tokens_per_epoch": tokens, "answer_tokens_per_epoch": answer,
            "batches_per_epoch": math.ceil(len(train) / batch), "batch_size": batch,
            "steps": steps}


def run_ours(runs_dir: Path, curated: Any, plan: dict[str, Any]) -> dict[str, Any]:
    from tuneline.train import stage as train

    steps = plan["steps"]
    # max_steps is authoritative; epochs is set so a loop that only reads epochs stops there too.
    epochs = (steps - 0.5) / plan["batches_per_epoch"]
    overrides = [f"train.max_steps={steps}", f"train.epochs={epochs}"]
    cfg = load_cfg(runs_dir, overrides)
    log(f"ours: tuneline.train.stage.run with {' '.join(overrides)}")
    with PeakRss() as rss:
        started = time.perf_counter()
        artifact = train.run(cfg, curated, runs_dir / "bench-train", force=True)
        wall = time.perf_counter() - started
    details, counts = artifact.manifest["details"], artifact.manifest["counts"]
    return {
        "path": "tuneline",
        "tokens": int(counts["tokens"]),
        "seconds": float(details["train_seconds"]),
        "tokens_per_second": float(details["tokens_per_second"]),
        "steps": int(counts["steps"]),
        "stage_wall_seconds": wall,
        "peak_rss": rss.peak,
        "rss_baseline": rss.baseline,
        "settings": {"config_overrides": overrides, "bf16_autocast": details.get("bf16_autocast"),
                     **{k: getattr(cfg.train, k) for k in (
                         "learning_rate", "batch_size", "lr_scheduler", "warmup_ratio",
                         "max_seq_len", "packing", "gradient_checkpointing", "precision")},
                     "loss_on": "assistant answer + end-of-turn token",
                     **{k: details.get(k) for k in ("loss_first", "loss_last", "peak_rss_mib",
                                                     "device", "method")}},
    }


def _trl_trainer_class() -> Any:
    from trl import SFTTrainer

    class CountingSFTTrainer(SFTTrainer):
        """SFTTrainer that also counts the real and the labelled tokens it trains on."""

        real_tokens = 0
        label_tokens = 0
        pad_tokens = 0

        def training_step(self, model: Any, inputs: dict[str, Any], *args: Any,
                          **kwargs: Any) -> Any:
            mask = inputs.get("attention_mask")
            if mask is not None:
                self.real_tokens += int(mask.sum())
                self.pad_tokens += int(mask.numel() - mask.sum())
            else:  # padding-free batches: one flattened row of real tokens
                self.real_tokens += int(inputs["input_ids"].numel())
            labels = inputs.get("labels")
            if labels is not None:
                self.label_tokens += int((labels[:, 1:] != -100).sum())
            return super().training_step(model, inputs, *args, **kwargs)

    return CountingSFTTrainer


def _train_timer() -> Any:
    from transformers import TrainerCallback

    class TrainTimer(TrainerCallback):
        started = finished = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.finished = time.perf_counter()

    return TrainTimer()


def trl_settings(trainer: Any) -> dict[str, Any]:
    """What TRL's defaults resolved to on this machine."""
    args, model = trainer.args, trainer.model
    collator = trainer.data_collator
    names = ("bf16", "fp16", "gradient_checkpointing", "gradient_checkpointing_kwargs",
             "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay",
             "optim", "max_grad_norm", "per_device_train_batch_size",
             "gradient_accumulation_steps", "max_length", "packing", "padding_free",
             "pad_to_multiple_of", "assistant_only_loss", "completion_only_loss", "loss_type",
             "shuffle_dataset", "torch_compile", "use_liger_kernel", "dataloader_num_workers",
             "group_by_length", "logging_steps", "seed")
    settings = {n: getattr(args, n, None) for n in names}
    settings["warmup_steps"] = getattr(args, "warmup_steps", None)
    settings.update({
        "completion_only_loss_resolved": getattr(trainer, "completion_only_loss", None),
        "padding_free_resolved": getattr(trainer, "padding_free", None),
        "model_param_dtype": str(next(model.parameters()).dtype),
        "trainable_param_dtype": str(next(p for p in model.parameters()
                                          if p.requires_grad).dtype),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "data_collator": type(collator).__name__,
        "padding_side": trainer.processing_class.padding_side,
        "pad_token": trainer.processing_class.pad_token,
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "torch_threads": __import__("torch").get_num_threads(),
    })
    return {k: (v if isinstance(v, bool | int | float | str | type(None) | dict | list)
                else str(v)) for k, v in settings.items()}


TRL_VARIANTS = {
    "defaults": {},
    # bf16 is TRL's default, but this CPU has no native bf16 (emulated matmuls are ~30x slower
    # than fp32 here); this variant changes only that, like `precision: auto` does on our side.
    "fp32": {"bf16": False},
}


def run_trl(cfg: Any, curated: Any, steps: int, out_dir: Path, variant: str) -> dict[str, Any]:
    import peft
    from datasets import Dataset
    from trl import SFTConfig

    from tuneline.curate.stage import load_chat
    from tuneline.models.resolve import resolve_model

    lora = cfg.train.lora
    peft_config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                  target_modules=list(lora.target_modules),
                                  task_type="CAUSAL_LM")
    needed = {"output_dir": str(out_dir), "max_steps": steps, "report_to": "none",
              "save_strategy": "no", "use_cpu": True}
    changed = TRL_VARIANTS[variant]
    log(f"trl {variant}: SFTConfig defaults + {needed}"
        + (f", changed from the defaults: {changed}" if changed else ""))
    with PeakRss() as rss:
        started = time.perf_counter()
        sft_config = SFTConfig(**needed, **changed)
        dataset = Dataset.from_list([{"messages": ex["messages"]}
                                     for ex in load_chat(curated, "train")])
        timer = _train_timer()
        trainer = _trl_trainer_class()(
            model=resolve_model(cfg.model.base, cfg.model.cache_dir), args=sft_config,
            train_dataset=dataset, peft_config=peft_config, callbacks=[timer])
        settings = trl_settings(trainer)
        log(f"trl {variant} resolved: {json.dumps(settings)}")
        result = trainer.train()
        wall = time.perf_counter() - started
        seconds = timer.finished - timer.started
        tokens, labels, pads = trainer.real_tokens, trainer.label_tokens, trainer.pad_tokens
        trl_own = getattr(trainer, "_total_train_tokens", None)
        step_count = trainer.state.global_step
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        del trainer, dataset
        release_memory()
    settings.update({"needed_overrides": needed, "changed_from_defaults": changed,
                     "trl_num_tokens_metric": trl_own, "label_tokens": labels,
                     "pad_tokens": pads, "train_loss": getattr(result, "training_loss", None),
                     "logged_losses": losses})
    return {"path": f"trl {variant}", "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds if seconds else 0.0, "steps": step_count,
            "stage_wall_seconds": wall, "peak_rss": rss.peak, "rss_baseline": rss.baseline,
            "settings": settings}


def show(rows: list[dict[str, Any]]) -> str:
    head = (f"{'path':<16}{'real tokens':>12}{'steps':>7}{'seconds':>10}{'real tok/s':>12}"
            f"{'peak RSS GiB':>14}{'Δ RSS GiB':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['path']:<16}{r['tokens']:>12,}{r['steps']:>7}{r['seconds']:>10.1f}"
                     f"{r['tokens_per_second']:>12.1f}{r['peak_rss'] / GIB:>14.2f}"
                     f"{(r['peak_rss'] - r['rss_baseline']) / GIB:>11.2f}")
    return "\n".join(lines)


def ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    delta = (ours["peak_rss"] - ours["rss_baseline"]) / max(
        1, other["peak_rss"] - other["rss_baseline"])
    return {"tokens_per_second": ours["tokens_per_second"] / other["tokens_per_second"],
            "peak_rss": ours["peak_rss"] / other["peak_rss"], "delta_rss": delta,
            "tokens": ours["tokens"] / other["tokens"]}


def describe_trl(row: dict[str, Any]) -> str:
    s = row["settings"]
    return (f"{row['path']}: bf16={s['bf16']} (accelerate mixed_precision={s['mixed_precision']},"
            f" weights {s['model_param_dtype']}), gradient_checkpointing="
            f"{s['gradient_checkpointing']}, {s['data_collator']} padding {s['padding_side']} "
            f"to the longest (padding_free={s['padding_free_resolved']}, packing={s['packing']}),"
            f" assistant_only_loss={s['assistant_only_loss']}, completion_only_loss="
            f"{s['completion_only_loss_resolved']}: loss on {s['label_tokens']:,} of "
            f"{row['tokens']:,} real tokens; lr={s['learning_rate']} {s['lr_scheduler_type']}, "
            f"optim={s['optim']}, batch={s['per_device_train_batch_size']}, "
            f"max_length={s['max_length']}, attn={s['attn_implementation']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_500,
                        help="real-token budget per trainer, rounded to whole steps (TRL's "
                             "bf16 default runs at ~3-5 tok/s on a CPU without native bf16)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for all runs (default: the project's choice, "
                             "all cores)")
    parser.add_argument("--trl", default=None,
                        help=f"comma-separated TRL variants to run: {', '.join(TRL_VARIANTS)} "
                             "(default: the fair one for this machine)")
    parser.add_argument("--order", choices=("ours-first", "trl-first"), default="ours-first",
                        help="whether ours runs before or after TRL (all in this process)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where curate and the trainers write (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    machine = this_machine()
    print(machine.summary())  # figures compare within one machine class only
    fair = "defaults" if machine.native_bf16 else "fp32"
    variants = [v.strip() for v in (args.trl or fair).split(",") if v.strip()]
    print(f"fair TRL baseline here: {fair} ({'native' if machine.native_bf16 else 'no native'} "
          f"bf16); running: {', '.join(variants)}")
    if unknown := [v for v in variants if v not in TRL_VARIANTS]:
        parser.error(f"--trl: unknown variant(s) {unknown}; choose from {list(TRL_VARIANTS)}")
    if variants and (missing := [m for m in ("trl", "datasets")
                                 if importlib.util.find_spec(m) is None]):
        sys.exit(f"bench/train.py: {', '.join(missing)} not installed; `make bench` installs "
                 "what the benches need")  # before ours has trained for minutes
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # set_cpu_threads() then leaves it be
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="tuneline-bench-train-") as tmp:
        runs_dir = (args.runs_dir or Path(tmp)).resolve()
        curated = curate(runs_dir)
        cfg = load_cfg(runs_dir)
        plan = plan_steps(cfg, curated, args.tokens)
        trl_steps = math.ceil(plan["steps"] * plan["batch_size"] / 8)  # SFTConfig batch: 8
        log(f"plan: {plan}; TRL max_steps={trl_steps}")
        phases = {"ours": lambda: run_ours(runs_dir, curated, plan)}
        for v in variants:
            phases[v] = (lambda v=v: run_trl(cfg, curated, trl_steps, runs_dir / f"bench-trl-{v}",
                                             v))
        order = list(phases) if args.order == "ours-first" else [*variants, "ours"]
        results: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(order, 1):
            log(f"phase {i}/{len(order)}: {name}")
            r = results[name] = phases[name]()
            log(f"{r['path']}: {r['tokens']:,} real tokens in {r['seconds']:.1f} s = "
                f"{r['tokens_per_second']:.1f} tok/s, peak RSS {r['peak_rss'] / GIB:.2f} GiB")
    ours = results["ours"]
    rows = [ours, *(results[v] for v in variants)]
    ratio = {v: ratios(ours, results[v]) for v in variants}
    print(f"\nmodel={cfg.model.base} threads={torch.get_num_threads()} order={args.order} "
          f"budget={args.tokens:,} tokens; train split: {plan['examples']} examples, "
          f"{plan['tokens_per_epoch']:,} real tokens/epoch")
    s = ours["settings"]
    print(f"tuneline: bf16_autocast={s['bf16_autocast']}, loss on {s['loss_on']}, lr="
          f"{s['learning_rate']} {s['lr_scheduler']}, batch={s['batch_size']}, "
          f"gradient_checkpointing={s['gradient_checkpointing']}, packing={s['packing']}")
    for v in variants:
        print(describe_trl(results[v]))
    print()
    print(show(rows))
    for v, r in ratio.items():
        print(f"ratio ours / trl {v}: real tok/s {r['tokens_per_second']:.2f}x, peak RSS "
              f"{r['peak_rss']:.2f}x, Δ RSS {r['delta_rss']:.2f}x "
              f"(real tokens {r['tokens']:.3f}x)")
    if args.json:
        args.json.write_text(json.dumps(
            {"model": cfg.model.base, "threads": torch.get_num_threads(), "order": args.order,
             "budget_tokens": args.tokens, "plan": plan, "results": rows,
             "ratio_ours_over_trl": ratio, "versions": _versions()}, indent=2, default=str)
            + "\n", encoding="utf-8")
        log(f"wrote {args.json}")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "peft", "trl", "tuneline"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


if __name__ == "__main__":
    main()
