"""Config sections for the run and the model: run, model, train, evaluate, register."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneline.config_sections.base import _Section
from tuneline.config_sections.judge import JudgeConfig
from tuneline.config_sections.managed import BedrockJobConfig, OpenAiJobConfig

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"


class RunConfig(_Section):
    name: str = Field("default", description="Run id: outputs go to <runs_dir>/<name>/<stage>/.")
    runs_dir: Path = Field(Path("runs"), description="Folder holding all runs (relative to cwd).")
    seed: int = Field(0, description="Seed for every random choice (split, shuffling, init).")


class ModelConfig(_Section):
    base: str = Field(
        EMBEDDED_MODEL,
        description="Base model: 'embedded:<name>', a local HF model folder, or a hub id "
        "already in the local HF cache.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where converted embedded models are cached "
        "(default: $TUNELINE_CACHE or ~/.cache/tuneline).",
    )


class LoraConfig(_Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
        ],
        description="Module names that get LoRA adapters.",
    )


class QloraConfig(_Section):
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit weight format.")
    double_quant: bool = Field(True, description="Quantize the quantization constants too.")
    compute_dtype: Literal["bf16", "fp16"] = Field("bf16", description="Matmul dtype.")


class TrackingConfig(_Section):
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


class ReplayConfig(_Section):
    fraction: float = Field(
        0.0, ge=0, le=1, description="Replay examples per curated training example: the base "
        "model's own answers to general prompts (a set apart from the evaluation's general "
        "probe), mixed into training so that domain tuning does not overwrite everyday "
        "behaviour, e.g. a trained refusal spreading to every question. 0 turns it off.",
    )
    prompts_file: Path | None = Field(
        None, description="JSONL of general prompts (field `prompt`) replacing the packaged set."
    )
    max_new_tokens: int = Field(
        96, ge=8, description="Budget per replay answer; answers cut off by it are not used."
    )


class TrainConfig(_Section):
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
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_seq_len: int = Field(256, ge=16, description="Longer examples are truncated.")
    packing: bool = Field(
        False, description="Flatten each micro-batch into one padding-free row; position ids "
        "restart per example and attention never crosses examples.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% slower."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto' uses bf16 autocast where the CPU/GPU supports it."
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


class EvaluateConfig(_Section):
    max_new_tokens: int = Field(48, ge=1, description="Generation budget per answer.")
    batch_size: int = Field(16, ge=1, description="Prompts generated together.")
    max_examples: int | None = Field(
        None, ge=1, description="Evaluate at most this many questions per set."
    )
    general_probe: bool = Field(
        True, description="Also ask the packaged `general` set (everyday knowledge and "
        "instructions) to detect forgetting; gate it with gate.max_regression.general.",
    )
    general_probe_file: Path | None = Field(
        None, description="A JSONL probe set replacing the packaged one (fields: question, "
        "reference, fact, optional aliases and template).",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="Pairwise LLM-as-judge of tuned vs base (or "
        "vs the champion) through any OpenAI-compatible endpoint; off until endpoint is set.",
    )
    rag: bool = Field(
        True, description="With index.enabled, also answer the curated sets with retrieved "
        "passages in the prompt (variants base+rag and tuned+rag) and score the retrieval "
        "(recall@k and MRR of the gold record).",
    )
    compare_champion: bool = Field(
        True, description="When the registry has a champion of register.name with local "
        "weights, answer with it too (variant 'champion'): the gate's max_regression then "
        "also holds against it, and the judge compares tuned with it.",
    )


class RegisterConfig(_Section):
    name: str = Field("tuneline-model", description="Registered model name.")
    backend: Literal["mlflow", "local"] = Field(
        "mlflow", description="'mlflow': an MLflow tracking server and model registry (runs, "
        "lineage tags, aliases; see tracking_uri); 'local': plain folders under registry_dir.",
    )
    registry_dir: Path = Field(
        Path("registry"), description="Registry folder: the 'local' backend's versions, and "
        "the default MLflow store (mlflow.db, mlartifacts/).",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI, e.g. http://mlflow:5000. Default: "
        "$MLFLOW_TRACKING_URI, else sqlite:///<registry_dir>/mlflow.db.",
    )
    experiment: str = Field("tuneline", description="MLflow experiment the runs are logged to.")
