"""Fine-tuning methods: which weights train (LoRA adapters, every weight, or LoRA on a 4-bit base).

Also how the trained weights are saved, checkpointed and restored, per method.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import ConfigError
from tuneline.train.config import TrainConfig

ADAPTER_DIR = "adapter"
MODEL_DIR = "model"


def output_dir_name(method: str) -> str:
    """Folder a method's result is saved to inside the train stage: an adapter or a full model."""
    return MODEL_DIR if method == "full" else ADAPTER_DIR


def check_method_supported(cfg: TrainConfig, device: str) -> None:
    """Fail before loading anything when the method cannot run on this machine."""
    if cfg.method != "qlora":
        return
    if device != "cuda":
        raise ConfigError([
            "train.method: qlora needs a CUDA GPU (bitsandbytes 4-bit kernels) and none is "
            "visible here. Use train.method: lora on CPU; it trains the same adapters on "
            "unquantized base weights."
        ])
    require("bitsandbytes")


def quantization_config(cfg: TrainConfig) -> Any:
    """The bitsandbytes 4-bit config QLoRA loads the base model with."""
    torch = require("torch")
    transformers = require("transformers")
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.qlora.quant_type,
        bnb_4bit_use_double_quant=cfg.qlora.double_quant,
        bnb_4bit_compute_dtype=torch.bfloat16 if cfg.qlora.compute_dtype == "bf16"
        else torch.float16,
    )


def prepare_for_training(model: Any, cfg: TrainConfig) -> Any:
    """Make exactly the method's weights trainable; returns the model to train."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if cfg.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if cfg.method == "qlora":
        peft = require("peft")
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return attach_lora(model, cfg)


def attach_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap a base model with trainable LoRA adapters; base weights stay frozen."""
    peft = require("peft")
    lora = peft.LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        layers_to_transform=_top_layers(model, cfg.lora.top_layers),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft calls transformers' deprecated `is_gradient_checkpointing`; not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        return peft.get_peft_model(model, lora)


def _top_layers(model: Any, top: int | None) -> list[int] | None:
    """Indices of the top `top` blocks (all of them when `top` is None or covers them)."""
    if top is None:
        return None
    blocks = int(model.config.num_hidden_layers)
    if top > blocks:
        raise ConfigError([f"train.lora.top_layers: {top} is more than the model's {blocks} "
                           "transformer blocks"])
    return list(range(blocks - top, blocks))


def trainable_state(model: Any) -> dict[str, Any]:
    """Detached CPU copies of the trainable tensors, keyed by parameter name."""
    return {name: param.detach().to("cpu", copy=True)
            for name, param in model.named_parameters() if param.requires_grad}


def load_trainable_state(model: Any, state: dict[str, Any]) -> None:
    """Copy tensors saved by `trainable_state` back into the model's parameters."""
    torch = require("torch")
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise ConfigError([f"checkpoint does not fit this model: no parameter {missing[0]}"])
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device))


def save_trained(model: Any, tokenizer: Any, method: str, out_dir: Path,
                 state_dict: dict[str, Any] | None = None) -> Path:
    """Save the adapter (LoRA/QLoRA) or the full model, with the tokenizer and chat template.

    `state_dict` is the gathered full state of a sharded (FSDP/DeepSpeed) model.
    """
    folder = out_dir / output_dir_name(method)
    if state_dict is not None:
        model.save_pretrained(folder, state_dict=state_dict)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
