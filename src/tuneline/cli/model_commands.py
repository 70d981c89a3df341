"""`tuneline export` and `tuneline models pull`: tuned models out, base models in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tuneline.cli.shared import console, errors, load_cli_config
from tuneline.errors import ModelError


@click.command()
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--model", "model_ref", default=None, metavar="NAME[/VERSION|@ALIAS]",
              help="Export this registered version (from the configured registry).")
@click.option("--adapter", "adapter_dir", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Export this adapter folder (e.g. runs/<run>/train/adapter).")
@click.option("--output", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="Folder to create; it appears complete or not at all.")
@click.option("--format", "export_format", type=click.Choice(["adapter", "hf", "gguf"]),
              default=None, help="adapter: the LoRA adapter alone (loads in plain PEFT); hf: "
              "merged into its base, a plain HF model folder; gguf: merged and written as "
              "GGUF for llama.cpp with an Ollama Modelfile. Default: adapter (hf with --merge).")
@click.option("--quant", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16",
              show_default=True, help="With --format gguf: how the weights are stored.")
@click.option("--merge", is_flag=True, help="The same as --format hf.")
@click.option("--base", "base_model", default=None,
              help="With --merge: the base to merge into (default: the registered version's "
              "base, else base_model_name_or_path in adapter_config.json).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
              default="float32", show_default=True, help="With --merge: weight dtype written.")
@click.option("--force", is_flag=True, help="Replace --output when it exists.")
def export(args: tuple[str, ...], model_ref: str | None, adapter_dir: Path | None,
           output: Path, export_format: str | None, quant: str, merge: bool,
           base_model: str | None, dtype: str, force: bool) -> None:
    """Export a tuned model: its LoRA adapter, the base with the adapter merged in (hf), or
    that merged model as GGUF with an Ollama Modelfile (gguf).

    The adapter loads in plain PEFT; the merged folder in plain transformers
    (AutoModelForCausalLM.from_pretrained); the GGUF in llama.cpp and Ollama (`ollama create
    NAME -f Modelfile` in the output folder); none needs tuneline.
    """
    from tuneline.models.export import adapter_base, export_adapter, export_gguf, export_merged

    if (model_ref is None) == (adapter_dir is None):
        raise click.UsageError("give exactly one of --model NAME[/VERSION] and --adapter DIR")
    if merge and export_format not in (None, "hf"):
        raise click.UsageError("--merge is --format hf; give one of them")
    export_format = export_format or ("hf" if merge else "adapter")
    if export_format == "adapter" and (base_model is not None or dtype != "float32"):
        raise click.UsageError("--base and --dtype only apply to a merged export (--merge, "
                               "--format hf or gguf)")
    if export_format != "gguf" and quant != "f16":
        raise click.UsageError("--quant only applies with --format gguf")
    cfg = load_cli_config(args)
    base = base_model
    version = None
    if model_ref is not None:
        from tuneline.registry import open_registry

        registry = open_registry(cfg.register)
        version = registry.materialize(registry.get(model_ref))
        adapter_dir = version.adapter_dir
        if not adapter_dir.is_dir():
            raise ModelError(f"{version.reference} has no local adapter to export (a model "
                             "trained by a managed backend lives with its provider)")
        base = base or version.meta.get("base_model")
        errors.print(f"exporting {version.reference} ({adapter_dir})")
    assert adapter_dir is not None
    if export_format == "adapter":
        written = export_adapter(adapter_dir, output, overwrite=force)
        console.print(f"adapter → {written}")
        return
    base = base or adapter_base(adapter_dir)
    if export_format == "gguf":
        name = (model_ref or output.name).split("@")[0].split("/")[0]
        errors.print(f"merging {adapter_dir} into {base}, writing GGUF ({quant}) ...")
        written = export_gguf(adapter_dir, base, output, name, quant, cfg.model.cache_dir,
                              overwrite=force)
        console.print(f"GGUF ({quant}) and Modelfile → {written}; run `ollama create {name} "
                      f"-f {written / 'Modelfile'}` or llama.cpp on {written / (name + '.gguf')}")
        return
    errors.print(f"merging {adapter_dir} into {base} ...")
    card = _model_card(model_ref or output.name, base, version, adapter_dir, dtype)
    written = export_merged(adapter_dir, base, output, dtype, cfg.model.cache_dir,
                            overwrite=force, card=card)
    console.print(f"merged model ({dtype}) with its model card → {written}")


def _model_card(reference: str, base: str, version: Any, adapter_dir: Path, dtype: str) -> str:
    """README.md of a merged export: lineage from the registry version, else the run folder."""
    from tuneline.models.model_card import (
        base_model_facts,
        lineage_of_adapter,
        lineage_of_version,
        render_model_card,
    )

    lineage = lineage_of_version(version) if version is not None else lineage_of_adapter(
        adapter_dir)
    name = reference.split("@")[0].split("/")[0]
    return render_model_card(name, base_model_facts(base), lineage, dtype)


@click.group()
def models() -> None:
    """Manage base models."""


@models.command("pull")
@click.argument("name", default="embedded:smollm2-135m-instruct")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def models_pull(name: str, cache_dir: Path | None) -> None:
    """Prepare a base model offline (converts an embedded GGUF to safetensors once)."""
    from tuneline.models.resolve import resolve_model

    console.print(f"{name} → {resolve_model(name, cache_dir)}")
