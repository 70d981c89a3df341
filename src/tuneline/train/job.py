"""One local training job: tokenize the curated chats, build the model, train, save.

It runs inside the train stage's process, or in every process that `accelerate launch` starts
(`python -m tuneline.train.job JOB.json`); only the main process writes results.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.artifacts import read_jsonl, write_json_atomic, write_jsonl
from tuneline.config import PipelineConfig, load_config, save_config
from tuneline.errors import DataError, ModelError
from tuneline.train.config import TrainConfig
from tuneline.train.replay import REPLAY_FILE

TRAIN_LOG = "train_log.jsonl"
LOSS_PLOT = "loss_curve.png"
REPORT_FILE = ".train_report.json"
NEVER_TRAINED = "never_trained.json"  # {"file": "train.jsonl", "rows": [1-based row numbers]}


@dataclass
class TrainJob:
    """Where one training job reads and writes; serialised for launched processes."""

    config_path: Path
    curated_dir: Path
    out_dir: Path
    checkpoint_dir: Path

    @classmethod
    def load(cls, path: Path) -> TrainJob:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: Path(v) for k, v in raw.items()})

    def save(self, path: Path) -> None:
        write_json_atomic(path, {k: str(v) for k, v in asdict(self).items()})


# A model's declared context beyond this (or none at all) is not a useful training length.
LONGEST_CONTEXT = 32_768
# More training examples than this dropped for their length stops train: the data and the
# limit disagree, and a model trained on what is left would not be the one asked for.
MAX_DROPPED_SHARE = 0.02


def example_limit(train: TrainConfig, tokenizer: Any) -> int:
    """Tokens an example may take: train.max_seq_len, or the model's context when unset."""
    if train.max_seq_len is not None:
        return train.max_seq_len
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 16 <= declared <= LONGEST_CONTEXT:
        return declared
    return LONGEST_CONTEXT


def tokenized_split(tokenizer: Any, curated_dir: Path, split: str, max_len: int,
                    max_dropped_share: float | None = None) -> tuple[list, dict[str, int]]:
    """Tokenized examples of a curated split, and how many were dropped because truncation to
    `max_len` left no answer token (their loss would be undefined) or cut an answer short."""
    return tokenized_file(tokenizer, curated_dir / f"{split}.jsonl", max_len, max_dropped_share)


def tokenized_file(tokenizer: Any, path: Path, max_len: int,
                   max_dropped_share: float | None = None) -> tuple[list, dict[str, int]]:
    """`tokenized_split` of any chat JSONL file; a DataError when more than
    `max_dropped_share` of its examples would be dropped for their length."""
    from tuneline.train.tokenize import tokenize_chat

    examples = []
    for line, row in enumerate(read_jsonl(path), start=1):
        try:
            example = tokenize_chat(tokenizer, row["messages"], max_len)
        except (DataError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{line}: {exc}") from None
        examples.append(replace(example, row=line))
    dropped = {"dropped_no_answer_tokens": sum(1 for e in examples if e.n_targets == 0),
               "dropped_answer_cut": sum(1 for e in examples if e.n_targets and e.cut_targets)}
    if dropped["dropped_answer_cut"]:
        longest = max(len(e.input_ids) + e.cut_targets for e in examples)
        what = (f"{path}: {dropped['dropped_answer_cut']} of {len(examples)} examples "
                f"dropped: their answer does not fit in train.max_seq_len={max_len} tokens (the "
                f"longest needs {longest})")
        if (max_dropped_share is not None
                and dropped["dropped_answer_cut"] > max_dropped_share * len(examples)):
            raise DataError(f"{what}: more than {max_dropped_share:.0%}, so train stops; set "
                            f"train.max_seq_len to {longest}, or remove it to train every "
                            "example whole")
        print(f"warning: {what}; raise it to train them", file=sys.stderr)
    return [e for e in examples if e.n_targets and not e.cut_targets], dropped


def rows_never_trained(train_dir: Path) -> set[int]:
    """The rows of curate's train.jsonl (1-based) that the weights in `train_dir` never trained
    on: dropped for their length, or not reached by a run that stopped within its first epoch.
    Empty when every row was trained, and for a provider's job (it reads the whole file)."""
    path = train_dir / NEVER_TRAINED
    if not path.is_file():
        return set()
    return set(json.loads(path.read_text(encoding="utf-8"))["rows"])


def run_job(cfg: PipelineConfig, job: TrainJob) -> dict[str, Any]:
    """Train per `cfg`; the main process saves the result and returns its details."""
    from tuneline.models.loading import load_tokenizer, set_cpu_threads
    from tuneline.train.checkpoint import CheckpointStore
    from tuneline.train.loop import make_accelerator, train_loop
    from tuneline.train.methods import check_method_supported, save_trained
    from tuneline.train.precision import train_in_bf16

    train = cfg.train
    if "WORLD_SIZE" not in os.environ:
        set_cpu_threads()
    accelerator = make_accelerator()
    device = accelerator.device.type
    check_method_supported(train, device)
    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    limit = example_limit(train, tokenizer)
    train_set, dropped = tokenized_split(tokenizer, job.curated_dir, "train", limit,
                                         MAX_DROPPED_SHARE)
    val_set, _ = tokenized_split(tokenizer, job.curated_dir, "val", limit)
    replay_file = job.out_dir / REPLAY_FILE
    if replay_file.is_file():
        train_set += [replace(example, row=None)
                      for example in tokenized_file(tokenizer, replay_file, limit)[0]]
    if not train_set:
        raise DataError(f"{job.curated_dir / 'train.jsonl'}: no training example keeps an "
                        f"answer token within train.max_seq_len={limit}")
    require("transformers").set_seed(cfg.run.seed)
    model = model_for_training(cfg, accelerator)
    bf16 = train_in_bf16(train.precision, device)
    store = CheckpointStore(job.checkpoint_dir, train.keep_checkpoints)
    tracker = _open_tracker(cfg, job, accelerator.is_main_process)
    try:
        report = train_loop(model, train_set, val_set, train, tokenizer.pad_token_id,
                            cfg.run.seed, bf16, accelerator=accelerator, store=store,
                            on_log=tracker.log if tracker else None)
    except BaseException:
        if tracker:
            tracker.close("FAILED")
        raise
    peak_rss = _peak_rss_mib(accelerator)
    if not accelerator.is_main_process:
        return {}
    folder = save_trained(model, tokenizer, train.method, job.out_dir, report.full_state_dict)
    write_jsonl(job.out_dir / TRAIN_LOG, report.log)
    never_trained = _rows_never_trained(train_set, dropped, report.rows_not_reached)
    if never_trained:
        write_json_atomic(job.out_dir / NEVER_TRAINED,
                          {"file": "train.jsonl", "rows": never_trained})
    plot = _plot(report.log, job.out_dir / LOSS_PLOT, cfg.run.name)
    if tracker:
        if plot:
            tracker.log_artifact(plot)
        tracker.close()
    details = _details(cfg, report, device, bf16, folder.name, len(train_set), dropped, peak_rss)
    details["counts"]["rows_never_trained"] = len(never_trained)
    details["details"]["max_seq_len"] = limit
    details["details"]["longest_example_tokens"] = max(len(e.input_ids) for e in train_set)
    write_json_atomic(job.out_dir / REPORT_FILE, details)
    return details


def model_for_training(cfg: PipelineConfig, accelerator: Any) -> Any:
    """The base model loaded for `cfg.train.method`, with exactly the method's weights
    trainable."""
    from tuneline.models.loading import load_base_model
    from tuneline.train.methods import prepare_for_training

    options = base_load_options(cfg.train, accelerator.device.type,
                                accelerator.local_process_index)
    return prepare_for_training(
        load_base_model(cfg.model.base, cfg.model.cache_dir, **options), cfg.train)


def base_load_options(train: TrainConfig, device: str, process_index: int = 0) -> dict[str, Any]:
    """How the base model is loaded for a method on a device: 4-bit on this process's GPU for
    QLoRA; bf16 for LoRA on a GPU under bf16 autocast, float32 otherwise.

    In float32 the rotary embedding turns a bf16 autocast's queries and keys back to float32
    and attention leaves the fast kernels (1.6x slower at batch 64 on an H200,
    docs/benchmarks.md "GPU"); adapters stay float32 either way (PEFT). On a CPU the base stays
    float32, as measured for the demo; full fine-tuning keeps float32 master weights."""
    from tuneline.train.methods import quantization_config
    from tuneline.train.precision import train_in_bf16

    if train.method == "qlora":
        return {"quantization_config": quantization_config(train),
                "device_map": {"": process_index}}
    if train.method == "lora" and device == "cuda" and train_in_bf16(train.precision, device):
        return {"dtype": "bfloat16"}
    return {}


def _rows_never_trained(train_set: list[Any], dropped: dict[str, int],
                        unreached: list[int]) -> list[int]:
    """train.jsonl's rows the saved weights never trained on: those dropped for their length
    and those the steps never reached (`unreached`)."""
    kept = {example.row for example in train_set if example.row is not None}
    rows = range(1, len(kept) + sum(dropped.values()) + 1)
    return sorted({row for row in rows if row not in kept} | set(unreached))


def _details(cfg: PipelineConfig, report: Any, device: str, bf16: bool, folder: str,
             n_examples: int, dropped: dict[str, int], peak_rss_mib: float) -> dict[str, Any]:
    torch = require("torch")
    window = max(1, min(10, len(report.losses) // 5))
    return {
        "counts": {"examples": n_examples, **dropped,
                   "steps": report.steps, "tokens": report.tokens},
        "details": {
            "base_model": cfg.model.base,
            "method": cfg.train.method,
            "weights_dir": folder,
            "device": device,
            "processes": report.processes,
            "distributed": report.distributed,
            "bf16_autocast": bf16,
            "attention_in_fp32": report.attention_in_fp32,
            "packing": cfg.train.packing,
            "total_steps": report.total_steps,
            "budget": report.budget.as_dict() if report.budget else None,
            "loss_first": sum(report.losses[:window]) / window,
            "loss_last": sum(report.losses[-window:]) / window,
            "val_loss_before": report.val_loss_before,
            "val_loss_after": report.val_loss_after,
            "best_step": report.best_step,
            "stopped_early": report.stopped_early,
            "resumed_from_step": report.resumed_from_step,
            "tokens_per_second": report.tokens_per_second,
            "train_seconds": report.seconds,
            "peak_rss_mib": peak_rss_mib,
            "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20
                             if torch.cuda.is_available() else None),
        },
    }


def _peak_rss_mib(accelerator: Any) -> float:
    """Peak resident memory of the training processes (the largest one), in MiB."""
    torch = require("torch")
    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0],
                        device=accelerator.device)
    if accelerator.num_processes > 1:
        peak = accelerator.gather(peak)
    return round(float(peak.max()), 1)


def _open_tracker(cfg: PipelineConfig, job: TrainJob, main: bool) -> Any:
    if not main or not cfg.train.tracking.report_to:
        return None
    from tuneline.train.tracking import open_tracker

    params = {"method": cfg.train.method, "base_model": cfg.model.base,
              **{k: v for k, v in cfg.train.model_dump(mode="json").items()
                 if isinstance(v, int | float | str | bool)}}
    return open_tracker(cfg.train.tracking, job.out_dir, cfg.run.runs_dir, cfg.run.name, params)


def _plot(log: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """The loss curve PNG, or None without matplotlib."""
    from tuneline.train.tracking import plot_loss_curve

    return plot_loss_curve(log, path, f"{title}: training loss")


def launch(cfg: PipelineConfig, job: TrainJob) -> dict[str, Any]:
    """Run the job in `cfg.train.num_processes` processes through `accelerate launch`."""
    train = cfg.train
    save_config(cfg, job.config_path)
    job_file = job.out_dir / ".job.json"
    job.save(job_file)
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if train.accelerate_config is not None:
        if not train.accelerate_config.is_file():
            raise ModelError(f"train.accelerate_config: {train.accelerate_config} not found")
        cmd += ["--config_file", str(train.accelerate_config)]
    else:
        # --multi_gpu picks torchrun; without GPUs accelerate then runs MULTI_CPU over gloo.
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    if train.accelerate_config is None or train.num_processes > 1:
        cmd += ["--num_processes", str(train.num_processes)]
    cmd += ["-m", "tuneline.train.job", str(job_file)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // train.num_processes)))
    completed = subprocess.run(cmd, env=env, check=False)
    job_file.unlink(missing_ok=True)
    job.config_path.unlink(missing_ok=True)
    report = job.out_dir / REPORT_FILE
    if completed.returncode != 0 or not report.is_file():
        raise ModelError(f"training processes failed (exit {completed.returncode}); their "
                         "output is above. Checkpoints are kept: rerun to resume.")
    return json.loads(report.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tuneline.train.job JOB.json", file=sys.stderr)
        return 2
    job = TrainJob.load(Path(args[0]))
    run_job(load_config(job.config_path, []), job)
    _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """End a launched process that finished its job without the interpreter's shutdown: there
    a process can abort in the distributed backend's threads ("terminate called without an
    active exception", SIGABRT, after a finished run, even with the process group destroyed;
    pytorch/pytorch#190489). Every process waits for the others, so none leaves while the
    main one still writes; the results are on disk by then."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
