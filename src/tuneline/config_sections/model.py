"""Config sections for the run and the model: run, model, train, evaluate, register, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneline.config_sections.base import _Section

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


class TrainConfig(_Section):
    method: Literal["lora"] = Field("lora", description="Fine-tuning method.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training set.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    batch_size: int = Field(16, ge=1, description="Examples per optimizer step.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_seq_len: int = Field(256, ge=16, description="Longer examples are truncated.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto' uses bf16 autocast where the CPU/GPU supports it."
    )


class EvaluateConfig(_Section):
    max_new_tokens: int = Field(48, ge=1, description="Generation budget per answer.")
    batch_size: int = Field(16, ge=1, description="Prompts generated together.")
    max_examples: int | None = Field(
        None, ge=1, description="Evaluate at most this many questions per set."
    )


class RegisterConfig(_Section):
    name: str = Field("tuneline-model", description="Registered model name.")
    registry_dir: Path = Field(Path("registry"), description="Local registry folder.")


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Interface to bind.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    model: str | None = Field(
        None, description="'name' (latest version) or 'name/version'; default: register.name."
    )
    max_tokens_default: int = Field(256, ge=1, description="max_tokens when a request omits it.")
