"""Load base models, tokenizers and adapters with transformers/PEFT, offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import ModelError
from tuneline.models.resolve import resolve_model


def pick_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    torch = require("torch")
    return "cuda" if torch.cuda.is_available() else "cpu"


def use_bf16(precision: str, device: str) -> bool:
    """Resolve a 'auto' | 'bf16' | 'fp32' precision setting for generating (evaluate, replay's
    answers, the server) on a device: 'auto' is bf16 on a GPU that supports it, fp32 on a CPU.
    The training loop's precision is `tuneline.train.precision.train_in_bf16`.

    On a CPU with native bf16, runs whose replay answers (training data) were generated in bf16
    declined answerable questions with the gold passage ranked first, whether the loop trained
    in bf16 or fp32; a bf16 loop on fp32 replay answers read passages as fp32 does
    (docs/benchmarks.md, 2026-12-06 and 2026-12-07)."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return device == "cuda" and bool(require("torch").cuda.is_bf16_supported())


def set_cpu_threads() -> None:
    """Use every core for intra-op parallelism unless the user set OMP_NUM_THREADS."""
    torch = require("torch")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def load_tokenizer(base: str, cache_dir: Path | None = None) -> Any:
    """Load the tokenizer of a base model (or of an adapter folder that saved one)."""
    transformers = require("transformers")
    source = base if Path(base).is_dir() else resolve_model(base, cache_dir)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ModelError(f"cannot load a tokenizer from '{base}': {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ModelError(f"tokenizer of '{base}' has no chat template; use an instruct model")
    return tokenizer


def load_base_model(base: str, cache_dir: Path | None = None, dtype: str = "float32",
                    **from_pretrained: Any) -> Any:
    """Load a causal LM from a resolved base reference, offline.

    Extra keyword arguments (e.g. a quantization_config) go to `from_pretrained`."""
    torch = require("torch")
    transformers = require("transformers")
    source = resolve_model(base, cache_dir)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), **from_pretrained
        )
    except OSError as exc:
        raise ModelError(
            f"cannot load model '{base}' ({exc}). Without network only local folders, "
            "models already in the HF cache and 'embedded:' models work."
        ) from None
    return model


def load_tuned_model(
    base: str, adapter_dir: Path, cache_dir: Path | None = None, dtype: str = "float32"
) -> Any:
    """Load a base model with a LoRA adapter merged in (fastest for inference)."""
    peft = require("peft")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir} holds no adapter (adapter_config.json missing)")
    model = load_base_model(base, cache_dir, dtype)
    return peft.PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def is_full_model(folder: Path) -> bool:
    """True for a fully fine-tuned model folder, False for a LoRA adapter folder."""
    return (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file()


def load_for_inference(
    base: str, adapter_dir: Path | None, cache_dir: Path | None = None, precision: str = "auto"
) -> tuple[Any, Any]:
    """(model, tokenizer) ready to generate on the best device, the adapter merged when given.

    `adapter_dir` may also be a fully fine-tuned model folder. A tuned model uses the tokenizer
    and chat template saved with it.
    """
    torch = require("torch")
    set_cpu_threads()
    device = pick_device()
    dtype = torch.bfloat16 if use_bf16(precision, device) else torch.float32
    if adapter_dir is not None and is_full_model(adapter_dir):
        tokenizer = load_tokenizer(str(adapter_dir), cache_dir)
        model = load_base_model(str(adapter_dir), cache_dir)
    elif adapter_dir is not None:
        tokenizer = load_tokenizer(str(adapter_dir), cache_dir)
        model = load_tuned_model(base, adapter_dir, cache_dir)
    else:
        tokenizer = load_tokenizer(base, cache_dir)
        model = load_base_model(base, cache_dir)
    return model.to(device=device, dtype=dtype).eval(), tokenizer
