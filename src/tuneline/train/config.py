"""Config section for the train stage: method, LoRA/QLoRA, schedule, tracking, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneline.config_base import Section
from tuneline.train.managed.config import BedrockJobConfig, OpenAiJobConfig


class LoraConfig(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
        ],
        description="Module names that get LoRA adapters.",
    )
    top_layers: int | None = Field(
        None, ge=1, description="Adapt only the top N transformer blocks (PEFT "
        "layers_to_transform): backward then stops below them, so a step costs less; null "
        "adapts every block.",
    )


class QloraConfig(Section):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit weight format.")
    double_quant: bool = Field(True, description="Quantize the quantization constants too.")
    compute_dtype: Literal["bf16", "fp16"] = Field("bf16", description="Matmul dtype.")


class TrackingConfig(Section):
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="Metric sinks besides train_log.jsonl: TensorBoard event files in the "
        "stage folder, and/or an MLflow run.",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "<runs_dir>/mlruns).",
    )
    mlflow_experiment: str = Field("tuneline", description="MLflow experiment name.")


class ReplayConfig(Section):
    fraction: float = Field(
        0.0, ge=0, le=1, description="Replay examples per curated training example: the base "
        "model's own answers to general prompts (a set apart from the evaluation's general "
        "probe), mixed into training so that domain tuning does not overwrite everyday "
        "behaviour, e.g. a trained refusal spreading to every question; with replay on, at "
        "least one replay example per trained decline to a question without passages (the "
        "refusal spreads from those). 0 turns it off.",
    )
    prompts_file: Path | None = Field(
        None, description="JSONL of general prompts (field `prompt`) replacing the packaged set."
    )
    max_new_tokens: int = Field(
        96, ge=8, description="Budget per replay answer; answers cut off by it are not used."
    )


class TrainConfig(Section):
    backend: Literal["local", "openai", "bedrock"] = Field(
        "local", description="'local' trains here with transformers/PEFT; 'openai' and "
        "'bedrock' run the provider's fine-tuning job on the curated data.",
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="LoRA adapters; QLoRA (LoRA on a 4-bit base, CUDA only); or "
        "full fine-tuning of every weight.",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings.")
    qlora: QloraConfig = Field(default_factory=QloraConfig, description="QLoRA settings.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training set.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    batch_size: int = Field(
        16, ge=1, description="Examples per optimizer step, across all processes and "
        "accumulation steps.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step (per process).",
    )
    max_micro_batch_tokens: int | None = Field(
        4096, ge=16, description="Padded tokens a micro-batch may hold: a batch of long "
        "examples (documents, long answers) runs as several micro-batches of fewer rows, with "
        "the same loss and gradients. On the Python FAQ's batches (8 rows of up to 1,384 "
        "tokens) peak memory fell from 21.2 to 14.2 GiB and training ran 1.4x faster "
        "(docs/benchmarks.md); the demo's batches fit whole. Lower it where memory is short "
        "(2048: 7.5 GiB there). Single-process training only; null: never split.",
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_seq_len: int | None = Field(
        None, ge=16, description="Tokens per training example; default: the model's context "
        "(at most 32,768), so every curated example trains whole (train's manifest records the "
        "longest). An example whose answer would not fit is dropped, never cut short; train's "
        "manifest counts the drops, and when they would be more than 2% of the training "
        "examples train stops and says how long the longest is.",
    )
    packing: bool = Field(
        False, description="Flatten each micro-batch into one padding-free row; position ids "
        "restart per example and attention never crosses examples.",
    )
    share_prompt_prefix: bool = Field(
        True, description="Run the tokens that every example of a micro-batch starts with "
        "(the system prompt, the RAG instruction) once for the micro-batch instead of once per "
        "example: the same loss and gradients to float rounding, for a third less compute on "
        "the demo's data. Not under gradient checkpointing, FSDP or DeepSpeed, nor with "
        "packing.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% slower."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto': bf16 on a GPU that supports it (autocast in training, "
        "and generating in evaluate, replay and the server); on a CPU with native bf16 the "
        "training loop runs under bf16 autocast with attention in fp32 and everything else "
        "generates in fp32 (bf16-generated replay answers taught worse passage reading; "
        "docs/train.md); fp32 on other CPUs. 'bf16' forces bf16 anywhere (a CPU's "
        "training keeping attention in fp32), 'fp32' fp32."
    )
    eval_every: int = Field(
        0, ge=0, description="Validation loss every N optimizer steps (0: only before and after)."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many validations without improvement "
        "(needs eval_every); the best weights are kept.",
    )
    early_stopping_min_delta: float = Field(
        0.0, ge=0, description="A validation loss must improve by more than this."
    )
    checkpoint_every: int = Field(
        50, ge=0, description="Write a resumable checkpoint every N optimizer steps (0: never)."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    time_limit_seconds: float | None = Field(
        None, gt=0, description="Seconds the training loop may take; a plan that would not "
        "fit is cut (see run.budget_minutes, which sets this).",
    )
    num_processes: int = Field(
        1, ge=1, description="Data-parallel processes, launched through HF accelerate "
        "(CPU: gloo; GPU: one per device).",
    )
    accelerate_config: Path | None = Field(
        None, description="An `accelerate config` YAML (FSDP, DeepSpeed, multi-node); see "
        "examples/accelerate/.",
    )
    replay: ReplayConfig = Field(default_factory=ReplayConfig,
                                 description="Replay of the base model's general answers.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="Metric sinks.")
    openai: OpenAiJobConfig = Field(default_factory=OpenAiJobConfig,
                                    description="backend: openai settings.")
    bedrock: BedrockJobConfig = Field(default_factory=BedrockJobConfig,
                                      description="backend: bedrock settings.")


