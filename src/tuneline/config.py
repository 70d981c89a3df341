"""The pipeline config, composed of every stage's section: defaults < YAML < CLI overrides."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from tuneline.config_base import Section
from tuneline.curate.config import CurateConfig
from tuneline.errors import ConfigError
from tuneline.evaluate.config import EvaluateConfig, GateConfig
from tuneline.index.config import IndexConfig
from tuneline.index.defaults import match_fields_from, passages_from
from tuneline.ingest.config import IngestConfig
from tuneline.models.config import ModelConfig
from tuneline.register.config import RegisterConfig
from tuneline.serve.config import ServeConfig
from tuneline.synthesize.config import READING_FACTS_PER_TEMPLATE, SynthesizeConfig
from tuneline.train.config import TrainConfig
from tuneline.watch.config import WatchConfig

__all__ = ["PipelineConfig", "RunConfig", "apply_override", "load_config", "save_config"]


class RunConfig(Section):
    name: str = Field("default", description="Run id: outputs go to <runs_dir>/<name>/<stage>/.")
    runs_dir: Path = Field(Path("runs"), description="Folder holding all runs (relative to cwd).")
    seed: int = Field(0, description="Seed for every random choice (split, shuffling, init).")
    repeats: int = Field(
        1, ge=1, description="Run up to evaluate with this many seeds (seed, seed+1, ...): the "
        "extra ones under <name>/repeats/seed-<n>/ (each its own split, sampling and training); "
        "<name>/repeats.json and the report give the median and min-max of every metric, and "
        "the gate checks the medians. The first seed's model is the one tracked and registered.",
    )
    budget_minutes: float | None = Field(
        None, gt=0, description="Wall-clock minutes for `tuneline run` on this machine (none: "
        "no limit). After curate the run measures the machine (a few LoRA steps and a short "
        "generation) and projects train and evaluate; when they would not fit, the counts "
        "that make the data (facts, reading facts and invented entities per template, "
        "curate.rag.min_gold) are scaled down by one factor (never below 0.25) and synthesize "
        "and curate run again, epochs unchanged (<run>/sizing.json). Train then gets what is "
        "left less evaluate's projected time, and cuts its steps if it still would not fit. "
        "Each seed of run.repeats has its own budget. `tuneline init` writes 10.",
    )


# `register` is a stage name; as a field it shadows ABCMeta.register, which nothing here uses.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class PipelineConfig(Section):
    run: RunConfig = Field(default_factory=RunConfig, description="Run identity and folders.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Data sources.")
    synthesize: SynthesizeConfig = Field(
        default_factory=SynthesizeConfig, description="Q&A synthesis."
    )
    index: IndexConfig = Field(
        default_factory=IndexConfig, description="Vector index for retrieval (RAG)."
    )
    curate: CurateConfig = Field(default_factory=CurateConfig, description="Split and export.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Evaluation.")
    gate: GateConfig = Field(
        default_factory=GateConfig,
        description="Quality gate checked after evaluate; a failing model is not registered.",
    )
    register: RegisterConfig = Field(default_factory=RegisterConfig, description="Registry.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Serving.")
    watch: WatchConfig = Field(
        default_factory=WatchConfig, description="`tuneline watch`: polling and S3 prefixes."
    )

    @model_validator(mode="after")
    def _derive_index(self) -> PipelineConfig:
        """index.templates and index.match_fields the config leaves out, from the templates
        on the indexed sources; matching without any field is an error."""
        index = self.index
        indexed = [t for t in self.synthesize.templates
                   if index.sources is None or t.source in index.sources]
        if index.enabled:
            scope = next(iter(self.synthesize.unanswerable.qualifiers), None)
            index.templates = {**passages_from(indexed, scope), **index.templates}
        if not index.retrieval.match_question or any(index.match_fields.values()):
            return self
        index.match_fields = match_fields_from(indexed)
        if not any(index.match_fields.values()):
            raise ValueError("index.retrieval.match_question needs index.match_fields (per "
                             "source, the fields a question names, e.g. {medallists: [name]}), "
                             "or synthesize.templates on the indexed sources to derive them")
        return self

    @model_validator(mode="after")
    def _retrieval_always_needs_an_index(self) -> PipelineConfig:
        if self.serve.retrieval == "always" and not self.index.enabled:
            raise ValueError("serve.retrieval: always needs index.enabled: true (the passages "
                             "every answer is retrieved from)")
        return self

    @model_validator(mode="after")
    def _derive_reading_practice(self) -> PipelineConfig:
        """synthesize.reading_facts_per_template left unset: some when RAG is trained."""
        if self.synthesize.reading_facts_per_template is None:
            self.synthesize.reading_facts_per_template = (
                READING_FACTS_PER_TEMPLATE if self.curate.rag.fraction > 0 else 0)
        return self

    def section_hash(self, *sections: str, exclude: dict[str, Any] | None = None) -> str:
        """Stable hash of the named sections, used in stage fingerprints. Of `run` only the
        seed shapes a stage's output (name and runs_dir say where it goes; repeats how many
        seeds run), so a repeated run reuses the first seed's stages. `exclude` names, per
        section, fields the stage never reads (pydantic's nested exclude)."""
        exclude = exclude or {}
        payload = {s: {"seed": self.run.seed} if s == "run" else
                   getattr(self, s).model_dump(mode="json", exclude=exclude.get(s))
                   for s in sections}
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
