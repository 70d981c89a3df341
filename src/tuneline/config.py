"""Typed pipeline configuration: defaults < YAML file < dotted CLI overrides."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuneline.errors import ConfigError

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


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


SourceFormat = Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "sql"]
_FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json",
                     ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                     ".pq": "parquet"}


class SourceConfig(_Section):
    name: str = Field(description="Table name that templates refer to.")
    path: Path | None = Field(
        None, description="Data file (relative paths resolve from the config file)."
    )
    format: SourceFormat = Field(
        "auto", description="File format; 'auto' picks it from the file extension."
    )
    delimiter: str | None = Field(
        None, description="CSV field delimiter; default: sniffed from the file (',' ';' tab '|')."
    )
    encoding: str = Field(
        "auto", description="Text encoding; 'auto' reads UTF-8 (with or without BOM) and "
        "otherwise detects it."
    )
    url: str | None = Field(
        None, description="SQLAlchemy database URL for format 'sql', e.g. sqlite:///data.db or "
        "postgresql+psycopg://user@host/db. Use ${ENV_VAR} for secrets."
    )
    query: str | None = Field(None, description="SQL query to run (format 'sql').")
    table: str | None = Field(None, description="Table to read whole (format 'sql').")
    key: str | None = Field(
        None, description="Column that identifies a row in provenance (default: row number)."
    )

    @field_validator("path")
    @classmethod
    def _resolve_and_check(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if (info.context or {}).get("check_paths", True) and not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @model_validator(mode="after")
    def _check_kind(self) -> SourceConfig:
        if self.url is not None or self.format == "sql":
            if self.url is None:
                raise ValueError("format 'sql' needs a `url`")
            if (self.query is None) == (self.table is None):
                raise ValueError("a SQL source needs exactly one of `query` or `table`")
            if self.path is not None:
                raise ValueError("give either `path` (a file) or `url` (a database), not both")
            self.format = "sql"
            return self
        if self.path is None:
            raise ValueError("needs `path` (a data file) or `url` (a database)")
        if self.format == "auto":
            suffix = self.path.suffix.lower()
            if suffix not in _FORMAT_BY_SUFFIX:
                raise ValueError(f"cannot tell the format of '{self.path.name}' from its "
                                 f"extension; set format to one of csv, tsv, json, jsonl, parquet")
            self.format = _FORMAT_BY_SUFFIX[suffix]  # type: ignore[assignment]
        return self


class IngestConfig(_Section):
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Tables to read (CSV, TSV, JSON, JSONL, Parquet files or SQL); each row "
        "becomes a record that keeps its provenance."
    )


class TemplateConfig(_Section):
    name: str = Field(description="Template id, kept on every pair it makes.")
    source: str = Field(description="Name of the ingest source whose rows fill the template.")
    where: dict[str, str] = Field(
        default_factory=dict, description="Keep only rows whose column equals this value."
    )
    questions: list[str] = Field(
        min_length=2,
        description="Question phrasings with {column} placeholders. The last "
        "`curate.recall_phrasings` are never trained on: they probe recall.",
    )
    answer: str = Field(description="Full-sentence answer template containing the fact.")
    fact: str = Field(description="The fact the answer must contain, e.g. '{name}'.")
    key: str | None = Field(
        None,
        description="What the question is about, e.g. '{event}'. Rows sharing a key with "
        "different facts are ambiguous and dropped. Default: the question's placeholders.",
    )


class SynthesizeConfig(_Section):
    templates: list[TemplateConfig] = Field(
        default_factory=list, description="Question/answer templates over ingested tables."
    )
    max_facts_per_template: int | None = Field(
        None, ge=1, description="Sample at most this many facts per template (seeded)."
    )


class PiiConfig(_Section):
    enabled: bool = Field(True, description="Mask PII in questions and answers.")
    entities: list[Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS"]] = Field(
        default_factory=lambda: ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS"],
        description="Entity types to mask (each becomes <TYPE> in the text).",
    )
    default_region: str = Field(
        "US", description="Region for phone numbers written without a +country code."
    )


class DedupConfig(_Section):
    exact: bool = Field(True, description="Drop facts whose question + answer repeat another's.")
    near: bool = Field(True, description="Drop near-duplicate facts (MinHash LSH).")
    threshold: float = Field(
        0.85, gt=0, le=1, description="Estimated Jaccard similarity (word 3-grams) above which "
        "two facts count as near-duplicates."
    )


class CurateConfig(_Section):
    normalize: bool = Field(
        True, description="Unicode NFKC, strip control characters, collapse whitespace."
    )
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII redaction.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Duplicate removal.")
    heldout_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of facts never trained on (the 'heldout' eval set)."
    )
    val_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of facts kept for validation loss."
    )
    recall_phrasings: int = Field(
        1, ge=1, description="Phrasings per fact reserved for the 'recall' eval set."
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


# `register` is a stage name; as a field it shadows ABCMeta.register, which nothing here uses.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class PipelineConfig(_Section):
    run: RunConfig = Field(default_factory=RunConfig, description="Run identity and folders.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Data sources.")
    synthesize: SynthesizeConfig = Field(
        default_factory=SynthesizeConfig, description="Q&A synthesis."
    )
    curate: CurateConfig = Field(default_factory=CurateConfig, description="Split and export.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Evaluation.")
    register: RegisterConfig = Field(default_factory=RegisterConfig, description="Registry.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Serving.")

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections, used in stage fingerprints."""
        payload = {s: getattr(self, s).model_dump(mode="json") for s in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def apply_override(data: dict[str, Any], dotted: str) -> None:
    """Apply one 'a.b.c=value' override in place; the value is parsed as YAML."""
    if "=" not in dotted:
        raise ConfigError([f"override '{dotted}': expected KEY=VALUE, e.g. train.epochs=2"])
    key, raw = dotted.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError([f"override '{dotted}': '{part}' is not a section"])
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError([f"override '{key}': the value is not valid YAML "
                           f"({getattr(exc, 'problem', exc)}); quote it"]) from None


def _format_error(err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key (check the spelling; `tuneline config schema` lists keys)"
    seen = err.get("input")
    shown = "" if isinstance(seen, dict | list) else f" (got {seen!r})"
    return f"{where}: {err['msg']}{shown}"


def load_config(
    path: Path | None, overrides: list[str] = (), check_paths: bool = True  # type: ignore[assignment]
) -> PipelineConfig:
    """Load a pipeline config from YAML plus dotted overrides, reporting every problem at once."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        data = _read_yaml(path)
        base_dir = path.resolve().parent
    for dotted in overrides:
        apply_override(data, dotted)
    try:
        return PipelineConfig.model_validate(
            data, context={"base_dir": base_dir, "check_paths": check_paths}
        )
    except ValidationError as exc:
        problems = [_format_error(e) for e in exc.errors()]
        raise ConfigError(problems, source=str(path) if path else None) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping, got {type(data).__name__}"])
    return data


def save_config(cfg: PipelineConfig, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from tuneline.artifacts import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
