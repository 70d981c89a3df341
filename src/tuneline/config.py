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
from pydantic_core import InitErrorDetails, PydanticCustomError

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


SourceFormat = Literal[
    "auto", "csv", "tsv", "json", "jsonl", "parquet", "sql", "text", "markdown"
]
_FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json",
                     ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                     ".pq": "parquet", ".txt": "text", ".md": "markdown",
                     ".markdown": "markdown"}
DOCUMENT_FORMATS = ("text", "markdown")


class JoinConfig(_Section):
    source: str = Field(
        description="Name of another ingest source to look each row up in (read whole into "
        "memory; its own joins apply first)."
    )
    on: str | list[str] | dict[str, str] = Field(
        description="Column to match: a name both tables have (`on: country_code`), a list of "
        "such names, or `{left_column: right_column}` when the names differ; every listed "
        "column must match. Values are compared exactly as read; an empty key never matches. "
        "The other source must have at most one row per key (a lookup never multiplies rows)."
    )
    columns: list[str] | None = Field(
        None, min_length=1,
        description="Columns of the other source to bring (default: all but its join columns).",
    )
    prefix: str | None = Field(
        None,
        description="Put in front of every brought column name, e.g. 'medals_'. Default: "
        "brought columns keep their names, and only one that the row already has is renamed "
        "'<source>_<column>'. A column is never overwritten: a clash left after prefixing is an "
        "error.",
    )
    how: Literal["left", "inner"] = Field(
        "left",
        description="'left' keeps rows without a match (brought columns empty); 'inner' drops "
        "them. Either way the ingest manifest counts them as 'unmatched:<source>'.",
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true; take it back.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("on")
    @classmethod
    def _check_on(cls, on: str | list[str] | dict[str, str]) -> str | list[str] | dict[str, str]:
        names = [on] if isinstance(on, str) else list(on)
        if isinstance(on, dict):
            names += on.values()
        if not names or not all(names):
            raise ValueError("name a column, list columns, or map left columns to right columns")
        return on

    def pairs(self) -> list[tuple[str, str]]:
        """(left column, right column) pairs that must all match."""
        if isinstance(self.on, str):
            return [(self.on, self.on)]
        if isinstance(self.on, list):
            return [(column, column) for column in self.on]
        return list(self.on.items())


class SourceConfig(_Section):
    name: str = Field(description="Table name that templates refer to.")
    path: Path | None = Field(
        None, description="Data file, or for text/markdown a file or a folder whose matching "
        "files (.txt; .md/.markdown) are all read, recursively, in sorted order, hidden ones "
        "skipped. Relative paths resolve from the config file."
    )
    format: SourceFormat = Field(
        "auto", description="File format; 'auto' picks it from the file extension. 'text' and "
        "'markdown' read documents as chunks: one record per chunk with columns text, title "
        "(the markdown heading trail, or the file name), chunk (its index) and file."
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
        None, description="Column that identifies a row in provenance (default: row number; "
        "for documents '<file>#<chunk>')."
    )
    chunk_size: int = Field(
        1000, ge=50, le=1_000_000,
        description="Text/markdown: most characters per chunk. Markdown is split at headings "
        "first, then paragraphs are packed; a longer paragraph is split at sentence ends, then "
        "cut.",
    )
    chunk_overlap: int = Field(
        100, ge=0,
        description="Text/markdown: characters a chunk repeats from the end of the previous "
        "chunk of the same section (starting at a word); at most half of chunk_size.",
    )
    join: list[JoinConfig] = Field(
        default_factory=list,
        description="Lookups applied in order to every row after reading (any format): bring "
        "columns of the one row of another source whose key matches. Provenance stays this "
        "row's.",
    )

    @field_validator("path")
    @classmethod
    def _resolve_and_check(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if (info.context or {}).get("check_paths", True) and not path.exists():
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
            self._check_chunking()
            return self
        if self.path is None:
            raise ValueError("needs `path` (a data file) or `url` (a database)")
        if self.path.is_dir():
            self._check_folder()
        elif self.format == "auto":
            suffix = self.path.suffix.lower()
            if suffix not in _FORMAT_BY_SUFFIX:
                raise ValueError(f"cannot tell the format of '{self.path.name}' from its "
                                 f"extension; set format to one of csv, tsv, json, jsonl, parquet, "
                                 "text, markdown")
            self.format = _FORMAT_BY_SUFFIX[suffix]  # type: ignore[assignment]
        self._check_chunking()
        return self

    def _check_folder(self) -> None:
        if self.format not in DOCUMENT_FORMATS:
            raise ValueError(f"'{self.path}' is a folder; only text and markdown sources read "
                             "folders: set format to text or markdown, or point path at a file")

    def _check_chunking(self) -> None:
        chunking = {"chunk_size", "chunk_overlap"} & self.model_fields_set
        if chunking and self.format not in DOCUMENT_FORMATS:
            raise ValueError(f"{' and '.join(sorted(chunking))} apply to text and markdown "
                             f"sources only, not '{self.format}'; remove it")
        if self.chunk_overlap * 2 > self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be at most half of "
                             f"chunk_size ({self.chunk_size}); lower it")


class IngestConfig(_Section):
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Tables to read (CSV, TSV, JSON, JSONL, Parquet files, SQL, or text and "
        "markdown documents in chunks); each row becomes a record that keeps its provenance."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _check_names_and_joins(cls, data: Any, handler: Any) -> IngestConfig:
        # A wrap validator, so that join problems are reported with the sources' own errors.
        try:
            result = handler(data)
        except ValidationError as exc:
            errors: list[Any] = exc.errors()
            graph = _join_graph(data.get("sources") if isinstance(data, dict) else None)
        else:
            errors = []
            graph = [(s.name, [j.source for j in s.join]) for s in result.sources]
        problems = _join_problems(graph)
        if errors or problems:
            raise _validation_error(errors, problems)
        return result  # type: ignore[no-any-return]


_Graph = list[tuple[Any, list[Any]]]


def _join_graph(raw: Any) -> _Graph:
    """(name, joined source names) per source, from unvalidated input; odd shapes give None."""
    graph: _Graph = []
    for item in raw if isinstance(raw, list) else []:
        item = item if isinstance(item, dict) else {}
        joins = item.get("join") if isinstance(item.get("join"), list) else []
        graph.append((item.get("name"), [j.get("source") if isinstance(j, dict) else None
                                         for j in joins]))
    return graph


def _join_problems(graph: _Graph) -> list[tuple[tuple[Any, ...], str, Any]]:
    """(location, message, value) for duplicate names, unknown join sources and join cycles."""
    problems: list[tuple[tuple[Any, ...], str, Any]] = []
    first: dict[str, int] = {}
    for index, (name, _) in enumerate(graph):
        if isinstance(name, str) and first.setdefault(name, index) != index:
            problems.append(((index, "name"), f"ingest.sources.{first[name]} already has this "
                             "name; source names must be unique", name))
    edges: dict[str, list[Any]] = {}
    for name, targets in graph:
        if isinstance(name, str):
            edges.setdefault(name, targets)  # a duplicated name is reported above
    for index, (name, targets) in enumerate(graph):
        for number, target in enumerate(targets):
            where = (index, "join", number, "source")
            if not isinstance(target, str) or not isinstance(name, str) or first[name] != index:
                continue  # a duplicated source is reported once, by name
            if target not in edges:
                problems.append((where, "not an ingest source; declared: "
                                 f"{', '.join(sorted(edges))}", target))
            elif loop := _path_between(target, name, edges):
                problems.append((where, "joins go round in a circle ("
                                 f"{' -> '.join([name, *loop])}); remove one of them", target))
    return problems


def _path_between(start: str, goal: str, edges: dict[str, list[Any]]) -> list[str]:
    """Source names from `start` to `goal` following joins, or [] when there is no such path."""
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for nxt in edges.get(path[-1], []):
            if nxt in edges and (nxt == goal or nxt not in seen):
                seen.add(nxt)
                stack.append([*path, nxt])
    return []


def _validation_error(
    errors: list[Any], problems: list[tuple[tuple[Any, ...], str, Any]]
) -> ValidationError:
    """One ValidationError holding pydantic's own errors and ours, each at its YAML path."""
    details = errors + [
        InitErrorDetails(type=PydanticCustomError("ingest_sources", "{message}",
                                                  {"message": message}),
                         loc=("sources", *where), input=value)
        for where, message, value in problems
    ]
    return ValidationError.from_exception_data("IngestConfig", details)


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


class LlmEndpointConfig(_Section):
    base_url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible API root, e.g. https://api.openai.com/v1 or a local "
        "`tuneline serve` / vLLM / Ollama server.",
    )
    model: str = Field(description="Model name sent in each request.")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (never put keys in YAML); "
        "when unset or empty, requests carry no key (fine for local servers).",
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(
        5, ge=0, description="Retries on 429, 5xx, timeouts and dropped connections "
        "(exponential backoff with jitter, honouring Retry-After)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=1, description="Completion budget per request.")
    input_price_per_mtok: float = Field(
        0.0, ge=0, description="Price per million prompt tokens, for the cost report."
    )
    output_price_per_mtok: float = Field(
        0.0, ge=0, description="Price per million completion tokens, for the cost report."
    )
    cache: bool = Field(
        True, description="Reuse responses cached by prompt hash (under the tuneline cache "
        "folder), so a rerun or a resumed run pays only for new prompts."
    )


class LlmSynthesisConfig(_Section):
    enabled: bool = Field(False, description="Generate extra Q&A pairs with an LLM.")
    endpoint: LlmEndpointConfig | None = Field(
        None, description="The OpenAI-compatible endpoint that writes the pairs."
    )
    sources: list[str] = Field(
        default_factory=list, description="Ingest sources to draw rows from (default: all)."
    )
    rows_per_prompt: int = Field(8, ge=1, le=100, description="Table rows shown per prompt.")
    pairs_per_prompt: int = Field(6, ge=1, le=100, description="Q&A pairs asked per prompt.")
    questions_per_pair: int = Field(
        3, ge=2, le=10,
        description="Phrasings asked per pair; pairs with fewer than curate.recall_phrasings + 1 "
        "are rejected (some phrasings train, the rest probe recall).",
    )
    max_prompts: int | None = Field(
        None, ge=1, description="Stop after this many prompts (default: every row once)."
    )
    min_fuzzy_ratio: float = Field(
        0.9, gt=0, le=1,
        description="Grounding: how closely (difflib ratio, after normalisation) a claimed "
        "fact must match a cell of its source row.",
    )
    system_prompt: str | None = Field(
        None, description="Replace the built-in instructions (must ask for the same JSON lines)."
    )

    @model_validator(mode="after")
    def _needs_endpoint(self) -> LlmSynthesisConfig:
        if self.enabled and self.endpoint is None:
            raise ValueError("llm.enabled needs llm.endpoint (base_url and model)")
        return self


class UnanswerableConfig(_Section):
    per_template: int = Field(
        0, ge=0, description="Questions per template about invented entities that the table "
        "does not contain (keys recombined from real values); 0 turns them off.",
    )
    answer: str = Field(
        "I don't have information about that in my data.",
        description="The abstention answer trained and expected for them.",
    )


class ParaphraseConfig(_Section):
    per_template: int = Field(
        0, ge=0, le=20,
        description="Extra question phrasings per template written by the synthesize.llm "
        "endpoint (one request per template; {placeholders} must survive intact); 0: off.",
    )


class SynthesizeConfig(_Section):
    templates: list[TemplateConfig] = Field(
        default_factory=list, description="Question/answer templates over ingested tables."
    )
    max_facts_per_template: int | None = Field(
        None, ge=1, description="Sample at most this many facts per template (seeded)."
    )
    auto_templates: bool = Field(
        False, description="When true, tables that no template names get suggested templates "
        "(the ones `tuneline synthesize --suggest` prints)."
    )
    paraphrase: ParaphraseConfig = Field(
        default_factory=ParaphraseConfig,
        description="LLM-written question phrasings added to each template.",
    )
    unanswerable: UnanswerableConfig = Field(
        default_factory=UnanswerableConfig,
        description="Abstention examples: template questions about entities not in the data.",
    )
    llm: LlmSynthesisConfig = Field(
        default_factory=LlmSynthesisConfig,
        description="LLM-written Q&A pairs from batches of rows, grounding-checked.",
    )

    @model_validator(mode="after")
    def _paraphrase_needs_endpoint(self) -> SynthesizeConfig:
        if self.paraphrase.per_template and self.llm.endpoint is None:
            raise ValueError("paraphrase.per_template needs synthesize.llm.endpoint to write "
                             "the phrasings")
        return self


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


class SelectConfig(_Section):
    enabled: bool = Field(
        False, description="Train on an informative subset of the training facts (TF-IDF); "
        "validation and evaluation sets are never touched."
    )
    max_facts: int | None = Field(
        None, ge=1, description="Keep at most this many training facts."
    )
    fraction: float | None = Field(
        None, gt=0, le=1, description="Keep this share of the training facts (with "
        "max_facts too, the smaller size wins)."
    )
    rare_term_share: float = Field(
        0.3, ge=0, le=1, description="Share of the kept facts picked to cover rare terms; the "
        "rest are the facts with the highest mean TF-IDF."
    )
    rare_max_df: int = Field(
        2, ge=1, description="A term is rare when at most this many training facts contain it."
    )

    @model_validator(mode="after")
    def _check_size(self) -> SelectConfig:
        if self.enabled and self.max_facts is None and self.fraction is None:
            raise ValueError("select is enabled but has no size: set max_facts or fraction")
        return self


class BalanceConfig(_Section):
    enabled: bool = Field(
        False, description="Cap the training facts per category so no category dominates."
    )
    by: Literal["template", "source", "kind"] = Field(
        "template", description="Category of a fact: its template, its ingest source, or its "
        "kind (answerable 'qa' or 'unanswerable')."
    )
    max_per_category: int | None = Field(
        None, ge=1, description="Keep at most this many training facts per category (seeded "
        "sample)."
    )
    strategy: Literal["cap", "equal"] = Field(
        "cap", description="'cap': cut categories above max_per_category; 'equal': cut every "
        "category to the smallest one's size (and to max_per_category when set)."
    )

    @model_validator(mode="after")
    def _check_cap(self) -> BalanceConfig:
        if self.enabled and self.strategy == "cap" and self.max_per_category is None:
            raise ValueError("strategy 'cap' needs max_per_category (or use strategy 'equal')")
        return self


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
    unanswerable_train_fraction: float = Field(
        0.5, ge=0, lt=1,
        description="Share of the unanswerable questions (synthesize.unanswerable) trained on, "
        "teaching abstention; the rest form the 'unanswerable' eval set.",
    )
    recall_phrasings: int = Field(
        1, ge=1, description="Phrasings per fact reserved for the 'recall' eval set."
    )
    select: SelectConfig = Field(
        default_factory=SelectConfig, description="Informative subset of the training facts."
    )
    balance: BalanceConfig = Field(
        default_factory=BalanceConfig, description="Per-category cap on the training facts "
        "(applied after select)."
    )
    exports: list[Literal["openai", "bedrock", "hf"]] = Field(
        default_factory=lambda: ["openai"],
        description="Formats to write: 'openai' (train/val/test.jsonl, always written: the "
        "trainer reads it), 'bedrock' (bedrock/train.jsonl, bedrock/validation.jsonl), "
        "'hf' (hf/: Parquet splits + README, for datasets.load_dataset).",
    )
    bedrock_format: Literal["conversation", "prompt_completion"] = Field(
        "conversation", description="Bedrock records: 'conversation' (bedrock-conversation-2024, "
        "Amazon Nova) or 'prompt_completion' (Titan, Llama, Cohere text models)."
    )
    bedrock_strict: bool = Field(
        False, description="Fail when the Bedrock export breaks a documented Bedrock limit; "
        "otherwise count the problems as `bedrock_warning:<rule>`."
    )
    card: bool = Field(
        True, description="Write dataset_card.md (and card/*.png plots when matplotlib is "
        "installed)."
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
