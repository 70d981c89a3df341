"""The training loop's precisions on an example's own data: fp32 (the baseline) against bf16
autocast with attention in fp32 (what `train.precision: auto` trains in on a CPU with native
bf16) and bf16 autocast with bf16 attention, alternated in one process.

Each mode runs the real loop (`tuneline.train.loop.train_loop`: token-bounded micro-batches,
answer-only loss, LoRA, AdamW) for `--steps` optimizer steps from a fresh adapter on the same
batches: the curated train split of `--config` (the demo's by default; the Python FAQ's rows
run to 1,400 tokens), made by the pipeline up to `curate` in a temporary runs folder (replay's
base answers are left out: they need generation). Modes take turns, each round starting with
the next one, so a machine that speeds up or slows down between rounds moves every mode alike;
the median over rounds is printed with its range, and the ratio of medians to fp32. bf16 modes
only where the CPU has bf16 natively (emulated it is ~30x slower).

    .venv/bin/python bench/precision.py [--steps 16] [--rounds 3] [--config CONFIG]
    options: --modes fp32,bf16-fp32-attention,bf16 (fp32 first: the baseline)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "paris2024" / "tuneline.yaml"
MODES = ("fp32", "bf16-fp32-attention", "bf16")


def train_set(config: Path, runs_dir: Path) -> tuple:
    """The example's config and its curated train split, tokenized as the train stage does."""
    from tuneline.config import load_config
    from tuneline.models.loading import load_tokenizer
    from tuneline.pipeline import run_pipeline
    from tuneline.train.job import example_limit, tokenized_split

    cfg = load_config(config, [f"run.runs_dir={runs_dir}"])
    curated = run_pipeline(cfg, until="curate").artifacts["curate"]
    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    examples, _ = tokenized_split(tokenizer, curated.path, "train",
                                  example_limit(cfg.train, tokenizer), 1.0)
    return cfg, tokenizer, examples


def run_mode(mode: str, cfg, tokenizer, examples, steps: int) -> tuple[int, float]:
    """(real tokens, seconds) of `steps` optimizer steps of the loop in `mode`, from a fresh
    adapter and accelerator."""
    import transformers

    from tuneline.train.job import model_for_training
    from tuneline.train.loop import make_accelerator, train_loop

    transformers.set_seed(cfg.run.seed)
    accelerator = make_accelerator()
    model = model_for_training(cfg, accelerator)
    loop_cfg = cfg.train.model_copy(update={"max_steps": steps, "checkpoint_every": 0})
    report = train_loop(model, examples, [], loop_cfg, tokenizer.pad_token_id, cfg.run.seed,
                        mode != "fp32", accelerator=accelerator,
                        cpu_attention_in_fp32=mode == "bf16-fp32-attention")
    return report.tokens, report.seconds


def turns(modes: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, mode) in the order they run: each round starts with the next mode, so that a
    machine that speeds up or slows down between rounds moves every mode alike."""
    for round_ in range(rounds):
        turn = round_ % len(modes)
        for mode in [*modes[turn:], *modes[:turn]]:
            yield round_, mode


def speed_summary(speeds: Sequence[float], baseline: Sequence[float]) -> str:
    """'median M tok/s [min-max] over N rounds: R x' against the baseline's median."""
    median = statistics.median(speeds)
    return (f"median {median:6.1f} tok/s [{min(speeds):.1f}-{max(speeds):.1f}] over "
            f"{len(speeds)} rounds: {median / statistics.median(baseline):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=None, help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--config", type=Path, default=EXAMPLE,
                        help="an example's tuneline.yaml (default: the demo's)")
    args = parser.parse_args()
    from tuneline.machine import this_machine
    from tuneline.models.loading import set_cpu_threads

    machine = this_machine()
    print(machine.summary())  # figures compare within one machine class only
    modes = (args.modes or (",".join(MODES) if machine.native_bf16 else "fp32")).split(",")
    unknown = set(modes) - set(MODES)
    if unknown or modes[0] != "fp32":
        sys.exit(f"--modes: fp32 first (the baseline), then any of {MODES[1:]}; got {modes}")
    set_cpu_threads()
    speeds: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="tuneline-bench-precision-") as runs_dir:
        cfg, tokenizer, examples = train_set(args.config, Path(runs_dir))
        for round_, mode in turns(modes, args.rounds):
            tokens, seconds = run_mode(mode, cfg, tokenizer, examples, args.steps)
            speeds[mode].append(tokens / seconds)
            print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {mode:20s} "
                  f"{tokens} tokens in {seconds:6.1f} s: {tokens / seconds:6.1f} tok/s",
                  flush=True)
    for mode in modes:
        print(f"{mode:20s} {speed_summary(speeds[mode], speeds['fp32'])} fp32")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
