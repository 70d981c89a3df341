"""The training loss's projection onto the vocabulary: in chunks with the gradients computed in
the same pass (`tuneline.train.loss.head_cross_entropy_sum`, ours) against the whole projection
and `cross_entropy` (the baseline, what the loop did before), on an example's own data.

Each mode runs the real loop (`tuneline.train.loop.train_loop`, in the precision
`train.precision: auto` picks) for `--steps` optimizer steps from a fresh adapter on the curated
train split of `--config` (the Python FAQ's by default: its long answers put ~1,250 labelled
positions in a micro-batch). Every run is a child process of its own, so that its peak RSS is
its own; modes take turns, each round starting with the next one, and the median over rounds
is printed with its range and the ratio to the baseline. Tokens per second count every step,
the first (kernels warming up) included, as in bench/precision.py. Only the head differs
between the modes: both run the rest of the step as the loop does (`training_precision`).

    .venv/bin/python bench/head_loss.py [--steps 8] [--rounds 3] [--config CONFIG]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "python-faq" / "tuneline.yaml"
MODES = ("whole", "chunked")  # the baseline first


def child(mode: str, config: Path, runs_dir: Path, steps: int) -> None:
    """One mode's loop; prints its real tokens and seconds as JSON."""
    from precision import run_mode, train_set  # bench/precision.py

    from tuneline.models.loading import pick_device, set_cpu_threads
    from tuneline.train import loop
    from tuneline.train.loss import AnswerLossModule
    from tuneline.train.precision import train_in_bf16

    set_cpu_threads()
    cfg, tokenizer, examples = train_set(config, runs_dir)  # made by the parent: read back
    if mode == "whole":
        class WholeProjection(AnswerLossModule):
            def __init__(self, lm, share_prefix=False, chunk_head=True):
                super().__init__(lm, share_prefix, chunk_head=False)

        loop.AnswerLossModule = WholeProjection
    bf16 = train_in_bf16(cfg.train.precision, pick_device())  # as the train stage picks
    tokens, seconds = run_mode("bf16-fp32-attention" if bf16 else "fp32", cfg, tokenizer,
                               examples, steps)
    print(json.dumps({"tokens": tokens, "seconds": seconds, "bf16": bf16}))


def run_child(mode: str, config: Path, runs_dir: Path, steps: int) -> tuple[float, float, bool]:
    """(real tok/s, peak RSS in MiB, bf16) of one child running `mode`."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, "--config", str(config),
             "--runs-dir", str(runs_dir), "--steps", str(steps)],
            stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        warnings = [line for line in err.read().splitlines() if "warning" in line.lower()]
        if process.returncode:
            err.seek(0)
            sys.exit(f"{mode}: the child exited with {process.returncode}:\n"
                     + err.read()[-4000:])
        for line in warnings:  # a precision the loop fell back from changes the figures
            print(f"{mode}: {line}", file=sys.stderr)
        out.seek(0)
        result = json.loads(out.read().strip().splitlines()[-1])
    return result["tokens"] / result["seconds"], usage.ru_maxrss / 1024, result["bf16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--config", type=Path, default=EXAMPLE,
                        help="an example's tuneline.yaml (default: the Python FAQ's)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--runs-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.config, args.runs_dir, args.steps)
        return
    from precision import speed_summary, train_set, turns

    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    speeds: dict[str, list[float]] = {mode: [] for mode in MODES}
    peaks: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tuneline-bench-head-loss-") as runs_dir:
        train_set(args.config, Path(runs_dir))  # curate once; the children read it back
        for round_, mode in turns(MODES, args.rounds):
            speed, peak, bf16 = run_child(mode, args.config, Path(runs_dir), args.steps)
            speeds[mode].append(speed)
            peaks[mode].append(peak)
            print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {mode:8s} "
                  f"{speed:6.1f} tok/s, peak RSS {peak:,.0f} MiB (bf16 autocast: {bf16})",
                  flush=True)
    for mode in MODES:
        print(f"{mode:8s} {speed_summary(speeds[mode], speeds['whole'])} the whole projection; "
              f"peak RSS median {statistics.median(peaks[mode]):,.0f} MiB")


if __name__ == "__main__":
    main()
