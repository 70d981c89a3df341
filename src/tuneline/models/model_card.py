"""The model card (README.md) a merged export carries: the base model and its licence, where the
training data and adapter came from, the evaluation table and the quality gate's verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneline.models.resolve import EMBEDDED_MODELS, EMBEDDED_PREFIX
from tuneline.report.markdown import accuracy_table

CARD_FILE = "README.md"
_LINEAGE_KEYS = ("run", "data_hash", "adapter_hash", "config_hash", "code_version")


@dataclass(frozen=True)
class BaseModel:
    """The model the adapter was trained on, as far as tuneline can tell."""

    reference: str  # as configured: 'embedded:<name>', a folder, a hub id
    origin: str | None = None  # the published model it is (or was quantized from)
    licence: str | None = None
    licence_source: str = ""


@dataclass(frozen=True)
class Lineage:
    """What produced the adapter, and how it was judged; empty when nothing records it."""

    source: str  # where these facts were read: a registry version, a run folder
    facts: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None


def base_model_facts(base: str) -> BaseModel:
    """The base's published origin and licence: from tuneline's table for an embedded model,
    else from the `license:` of the model folder's own README.md front matter."""
    if base.startswith(EMBEDDED_PREFIX):
        spec = EMBEDDED_MODELS.get(base.removeprefix(EMBEDDED_PREFIX))
        if spec is not None:
            return BaseModel(base, spec.origin, spec.licence,
                             f"general.license of {spec.gguf_file} in the PyPI package "
                             f"{spec.package}=={spec.version}")
    readme = Path(base).expanduser() / CARD_FILE
    licence = _front_matter(readme).get("license") if readme.is_file() else None
    if licence:
        return BaseModel(base, None, str(licence), f"front matter of {readme}")
    return BaseModel(base)


def lineage_of_version(version: Any) -> Lineage:
    """A registered version's lineage, metrics and gate, as the register stage recorded them."""
    meta = version.meta
    facts = {key: str(meta[key]) for key in _LINEAGE_KEYS if meta.get(key) is not None}
    return Lineage(f"registry version {version.reference}", facts, meta.get("metrics"),
                   meta.get("gate"))


def lineage_of_adapter(adapter_dir: Path) -> Lineage:
    """The lineage around an adapter inside a run folder (`runs/<run>/train/adapter`): the
    curate and train stages' hashes, evaluate's metrics and the run's gate.json."""
    adapter_dir = Path(adapter_dir).resolve()
    run_dir = adapter_dir.parent.parent
    if adapter_dir.parent.name != "train" or not (run_dir / "config.yaml").is_file():
        return Lineage(f"adapter folder {adapter_dir} (not inside a tuneline run folder: no "
                       "lineage recorded)")
    facts = {"run": run_dir.name}
    for stage, key in (("curate", "data_hash"), ("train", "adapter_hash")):
        manifest = _read_json(run_dir / stage / "manifest.json")
        if manifest and manifest.get("output_hash"):
            facts[key] = str(manifest["output_hash"])
    return Lineage(f"run folder {run_dir}", facts,
                   _read_json(run_dir / "evaluate" / "metrics.json"),
                   _read_json(run_dir / "gate.json"))


def render_model_card(name: str, base: BaseModel, lineage: Lineage, dtype: str) -> str:
    """README.md for a merged export, with Hugging Face front matter (licence, base model)."""
    front = {"license": base.licence or "other", "library_name": "transformers",
             "tags": ["tuneline", "lora", "merged"]}
    if base.origin:
        front["base_model"] = base.origin
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", "",
             f"A fine-tuned model written by tuneline: a LoRA adapter merged into its base, "
             f"weights in {dtype}. It loads with transformers alone "
             f"(`AutoModelForCausalLM.from_pretrained`); the chat template is the one it was "
             "trained with.", ""]
    lines += _base_section(base) + _lineage_section(lineage) + _evaluation_section(lineage)
    lines += _gate_section(lineage)
    return "\n".join(lines).rstrip() + "\n"


def _base_section(base: BaseModel) -> list[str]:
    lines = ["## Base model", "", f"- base: `{base.reference}`"]
    if base.origin:
        lines.append(f"- published as: {base.origin}")
    if base.licence:
        lines.append(f"- licence: {base.licence} (from the {base.licence_source}); this model "
                     "is a derivative of the base and carries its terms")
    else:
        lines.append("- licence: not stated by the base model folder (no `license:` in its "
                     "README.md); check the base's terms before sharing this model")
    return lines + [""]


def _lineage_section(lineage: Lineage) -> list[str]:
    lines = ["## Data lineage", "", f"Read from the {lineage.source}.", ""]
    if lineage.facts:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {key} | `{value}` |" for key, value in lineage.facts.items()]
        lines.append("")
    return lines


def _evaluation_section(lineage: Lineage) -> list[str]:
    if not lineage.metrics:
        return ["## Evaluation", "", "Not evaluated by tuneline (no metrics recorded).", ""]
    metrics = {variant: per_set for variant, per_set in lineage.metrics.items()
               if isinstance(per_set, dict) and per_set  # not 'retrieval' nor 'judge'
               and all(isinstance(m, dict) and "accuracy" in m for m in per_set.values())}
    return ["## Evaluation", "",
            "Strict accuracy per variant and evaluation set (an answer is right only if the "
            "first value it claims is the reference; for sets the data cannot answer, a "
            "decline that claims nothing is right). `+rag` answers with retrieved passages.",
            "", *accuracy_table(metrics), ""]


def _gate_section(lineage: Lineage) -> list[str]:
    if not lineage.gate:
        return ["## Quality gate", "", "No gate result recorded.", ""]
    verdict = "passed" if lineage.gate.get("passed") else "FAILED"
    checks = lineage.gate.get("checks", [])
    return (["## Quality gate", "", f"**{verdict}** ({len(checks)} check(s))", ""]
            + [f"- {check.get('message', check.get('name', ''))}" for check in checks] + [""])


def _front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    block = text[3:].split("\n---", 1)[0]
    try:
        parsed = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None

