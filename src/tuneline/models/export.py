"""Export a tuned model: its LoRA adapter alone, or merged into the base as a plain HF folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import ModelError

ADAPTER_CONFIG = "adapter_config.json"
DTYPES = ("float32", "bfloat16", "float16")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """The adapter's adapter_config.json; a ModelError says why `adapter_dir` is no adapter."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise ModelError(f"adapter folder {adapter_dir} does not exist; point --adapter at a train "
                         "stage's adapter/ folder, or use --model name[/version]")
    path = adapter_dir / ADAPTER_CONFIG
    if not path.is_file():
        raise ModelError(f"{adapter_dir} holds no PEFT adapter ({ADAPTER_CONFIG} missing); point "
                         "--adapter at a train stage's adapter/ folder, or use --model "
                         "name[/version]")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc})") from None
    if not any(adapter_dir.glob("adapter_model.*")):
        raise ModelError(f"{adapter_dir} has {ADAPTER_CONFIG} but no adapter_model.safetensors "
                         "(or .bin); the adapter was not saved completely")
    return config


def adapter_base(adapter_dir: Path) -> str:
    """The base model the adapter was trained on, as PEFT recorded it in adapter_config.json."""
    base = read_adapter_config(adapter_dir).get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{adapter_dir / ADAPTER_CONFIG} names no base_model_name_or_path; "
                         "say which base the adapter belongs to with --base")
    if base.startswith(("/", "./", "../", "~")) and not Path(base).expanduser().exists():
        raise ModelError(f"the adapter's base model folder {base} (from {ADAPTER_CONFIG}) no "
                         "longer exists; pass the base with --base (e.g. "
                         "embedded:smollm2-135m-instruct)")
    return str(base)


def export_adapter(adapter_dir: Path, output: Path, overwrite: bool = False) -> Path:
    """Copy the adapter folder (weights, config, tokenizer, chat template) to `output`.

    The copy loads in plain PEFT: `PeftModel.from_pretrained(base_model, output)`.
    """
    read_adapter_config(adapter_dir)
    _check_output(Path(adapter_dir), output, overwrite)
    return _write_atomically(output, lambda tmp: _copy_tree(Path(adapter_dir), tmp))


def export_merged(
    adapter_dir: Path,
    base: str,
    output: Path,
    dtype: str = "float32",
    cache_dir: Path | None = None,
    overwrite: bool = False,
    card: str | None = None,
) -> Path:
    """Merge a LoRA adapter into its base and write a plain HF model folder to `output`.

    The folder holds safetensors weights, config.json, generation_config.json and the tokenizer
    with the chat template saved next to the adapter (the one training used), so
    `AutoModelForCausalLM.from_pretrained(output)` needs neither PEFT nor tuneline; and `card`,
    when given, as its README.md (tuneline.models.model_card).

    Args:
        adapter_dir: a PEFT LoRA adapter folder.
        base: tuneline base reference ('embedded:<name>', a model folder, a cached hub id).
        output: the folder to create; it appears complete or not at all.
        dtype: weight dtype of the export; the merge itself runs in float32.
        cache_dir: where converted embedded models are cached.
        overwrite: replace an existing `output`.
        card: the model card's markdown.
    """
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")

    def write(model: Any, tokenizer: Any, tmp: Path) -> None:
        _save(model, tokenizer, tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")

    return _export_merged_as(adapter_dir, base, output, dtype, cache_dir, overwrite, write)


def export_gguf(
    adapter_dir: Path,
    base: str,
    output: Path,
    name: str,
    quant: str = "f16",
    cache_dir: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Merge a LoRA adapter into its base and write `output/<name>.gguf` (llama.cpp, Ollama)
    with an Ollama `Modelfile` beside it (tuneline.models.gguf_export)."""
    from tuneline.models.gguf_export import write_gguf

    def write(model: Any, tokenizer: Any, tmp: Path) -> None:
        _save(model, tokenizer, tmp / ".merged")
        write_gguf(tmp / ".merged", tmp, name, quant)
        shutil.rmtree(tmp / ".merged")

    return _export_merged_as(adapter_dir, base, output, "float32", cache_dir, overwrite, write)


def _export_merged_as(adapter_dir: Path, base: str, output: Path, dtype: str,
                      cache_dir: Path | None, overwrite: bool,
                      write: Callable[[Any, Any, Path], None]) -> Path:
    """Merge the adapter, then let `write` fill a temporary folder that becomes `output`."""
    read_adapter_config(adapter_dir)
    _check_output(Path(adapter_dir), output, overwrite)
    model, tokenizer = merge_adapter(Path(adapter_dir), base, cache_dir, dtype)
    return _write_atomically(output, lambda tmp: write(model, tokenizer, tmp))


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def merge_adapter(
    adapter_dir: Path, base: str, cache_dir: Path | None = None, dtype: str = "float32"
) -> tuple[Any, Any]:
    """(merged model in `dtype`, the adapter's tokenizer), ready to `save_pretrained`."""
    from tuneline.models.loading import load_tokenizer, load_tuned_model

    torch = require("torch")
    tokenizer_source = str(adapter_dir) if _has_tokenizer(adapter_dir) else base
    tokenizer = load_tokenizer(tokenizer_source, cache_dir)
    model = load_tuned_model(base, adapter_dir, cache_dir, dtype="float32")
    # A model loaded from a GGUF (or quantized) keeps its quantizer marks after the merge and
    # transformers then refuses to save it; the merged weights are plain tensors, so drop them
    # (as models.resolve does after converting the embedded GGUF).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.to(getattr(torch, dtype)).eval(), tokenizer


def _has_tokenizer(adapter_dir: Path) -> bool:
    return any((adapter_dir / name).is_file() for name in _TOKENIZER_FILES)


def _check_output(adapter_dir: Path, output: Path, overwrite: bool) -> None:
    source, target = adapter_dir.resolve(), Path(output).resolve()
    if target == source or target in source.parents or source in target.parents:
        raise ModelError(f"--output {output} overlaps the adapter folder {adapter_dir}; "
                         "export to a separate folder")
    if target.exists() and not overwrite and (target.is_file() or any(target.iterdir())):
        raise ModelError(f"{output} already exists and is not empty; choose another --output "
                         "or pass --force to replace it")


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, dirs_exist_ok=True)


def _write_atomically(output: Path, write: Callable[[Path], None]) -> Path:
    """Run `write` into a temporary sibling of `output`, then rename it into place."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; exports are for sharing
        if output.exists():
            trash = output.with_name(f".{output.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(output, trash)
            os.replace(tmp, output)
            if trash.is_dir():
                shutil.rmtree(trash, ignore_errors=True)
            else:
                trash.unlink()
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
