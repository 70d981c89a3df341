"""Config sections for the ingest stage: sources, their joins, and checks across sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tuneline.config_base import Section

SourceFormat = Literal[
    "auto", "csv", "tsv", "json", "jsonl", "parquet", "sql", "text", "markdown", "rst", "html",
    "pdf", "chat", "feedback"
]
_FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json",
                     ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                     ".pq": "parquet", ".txt": "text", ".md": "markdown",
                     ".markdown": "markdown", ".rst": "rst", ".rest": "rst", ".html": "html",
                     ".htm": "html", ".xhtml": "html", ".pdf": "pdf"}
DOCUMENT_FORMATS = ("text", "markdown", "rst", "html", "pdf")


class JoinConfig(Section):
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


class SourceConfig(Section):
    name: str = Field(description="Table name that templates refer to.")
    path: Path | None = Field(
        None, description="Data file, or for documents a file or a folder whose matching "
        "files (.txt; .md/.markdown; .rst/.rst.txt; .html/.htm; .pdf) are all read, "
        "recursively, in sorted order, hidden ones skipped. Relative paths resolve from the "
        "config file."
    )
    format: SourceFormat = Field(
        "auto", description="File format; 'auto' picks it from the file extension. 'text', "
        "'markdown', 'rst' (reStructuredText, Sphinx roles read as their text), 'html' and "
        "'pdf' (its text layer) read documents as chunks: one record per chunk with columns "
        "text, title (the heading trail, or the file name), chunk (its index) and file; the "
        "record's line is the chunk's first source line (a PDF's: its page). 'chat' "
        "reads conversations (OpenAI chat JSONL, ShareGPT, Alpaca or prompt/completion, "
        "detected by shape; or a folder saved by Hugging Face datasets' save_to_disk): one "
        "record per conversation, its OpenAI messages as JSON in column `messages`. "
        "'feedback' reads the server's feedback store (serve.feedback_path, by default "
        "runs/<run>/feedback.db) the same way: each rated response once, with the user's "
        "correction as the answer where one was given, else the model's answer when rated 4 "
        "or 5."
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
        description="Documents: most characters per chunk. Markdown, rst and html are split "
        "at headings "
        "first, then paragraphs are packed; a longer paragraph is split at sentence ends, then "
        "cut.",
    )
    chunk_overlap: int = Field(
        100, ge=0,
        description="Documents: characters a chunk repeats from the end of the previous "
        "chunk of the same section (starting at a word); at most half of chunk_size.",
    )
    faq: bool = Field(
        False, description="Documents: read question-answer pairs instead of chunks (a "
        "heading that asks a question and the text under it; `Q:` / `A:` blocks; a "
        "definition-list term that asks one), no LLM involved: one record per pair with "
        "columns question, answer, title (the heading trail), file and shape; its line is the "
        "question's. Map it with synthesize.conversations (prompt: question, response: "
        "answer); read the same files again as another source for the index.",
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
            suffix = (".rst" if self.path.name.lower().endswith(".rst.txt")
                      else self.path.suffix.lower())
            if suffix not in _FORMAT_BY_SUFFIX:
                raise ValueError(f"cannot tell the format of '{self.path.name}' from its "
                                 f"extension; set format to one of csv, tsv, json, jsonl, parquet, "
                                 "text, markdown")
            self.format = _FORMAT_BY_SUFFIX[suffix]  # type: ignore[assignment]
        self._check_chunking()
        return self

    def _check_folder(self) -> None:
        if self.format not in (*DOCUMENT_FORMATS, "chat"):
            raise ValueError(f"'{self.path}' is a folder; only document sources (text, "
                             "markdown, rst, html, pdf; and chat, for a saved Hugging Face "
                             "dataset) read folders: set format, or point path at a file")

    def _check_chunking(self) -> None:
        # Only values that differ from the defaults: a saved resolved config must load again.
        chunking = {name for name in ("chunk_size", "chunk_overlap")
                    if name in self.model_fields_set
                    and getattr(self, name) != type(self).model_fields[name].default}
        if chunking and self.format not in DOCUMENT_FORMATS:
            raise ValueError(f"{' and '.join(sorted(chunking))} apply to document sources "
                             f"only, not '{self.format}'; remove it")
        if self.faq and self.format not in DOCUMENT_FORMATS:
            raise ValueError(f"faq reads documents (text, markdown, rst, html, pdf), not "
                             f"'{self.format}'; remove it")
        if self.chunk_overlap * 2 > self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be at most half of "
                             f"chunk_size ({self.chunk_size}); lower it")


class IngestConfig(Section):
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
