"""Ingested records and document chunks as retrieval passages that keep their provenance."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tuneline.errors import ConfigError
from tuneline.index.config import IndexConfig
from tuneline.rag.matching import FIELD_PREFIX
from tuneline.rag.passages import Passage
from tuneline.synthesize.templates import placeholders

# Ingest fields of a document chunk that are bookkeeping rather than content.
_CHUNK_FIELDS = ("chunk", "file")


def passage_id(source: str, line: int, key: str | None = None) -> str:
    """The id of a record's passage: its source key when it has one, else its line."""
    return f"{source}:{key}" if key else f"{source}:L{line}"


def provenance(passage: Passage) -> tuple[str, str, str]:
    """(source, file, line) of a passage: what an evaluation item's gold source is matched on."""
    return passage.source, passage.metadata.get("file", ""), passage.metadata.get("line", "")


def gold_provenance(item: dict[str, Any]) -> tuple[str, str, str] | None:
    """(source, file, line) of the record an evaluation item asks about; None: it has none."""
    source = item.get("source")
    if not isinstance(source, dict) or source.get("line") is None:
        return None
    return str(source["source"]), str(source.get("file", "")), str(source["line"])


def answering_provenances(item: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(source, file, line) of every record that states the item's answer: its gold record
    and the rows synthesize found stating the same fact (e.g. an athlete's other medals)."""
    gold = gold_provenance(item)
    if gold is None:
        return set()
    source, file, _ = gold
    return {gold} | {(source, file, str(line))
                     for line in item["source"].get("same_fact_lines", [])}


def check_templates(cfg: IndexConfig, columns: dict[str, list[str]]) -> None:
    """Every index.templates and index.match_fields entry names an ingested source and only
    its columns."""
    problems = []
    for source, template in cfg.templates.items():
        problems += _unknown_columns("index.templates", source, placeholders(template), columns)
    for source, fields in cfg.match_fields.items():
        problems += _unknown_columns("index.match_fields", source, fields, columns)
    for source in cfg.sources or []:
        if source not in columns:
            problems.append(f"index.sources: no ingest source is named '{source}'")
    if problems:
        raise ConfigError(problems)


def _unknown_columns(setting: str, source: str, names: Iterable[str],
                     columns: dict[str, list[str]]) -> list[str]:
    if source not in columns:
        return [f"{setting}.{source}: no ingest source is named '{source}' "
                f"(sources: {', '.join(sorted(columns))})"]
    missing = [name for name in names if name not in columns[source]]
    if not missing:
        return []
    return [f"{setting}.{source}: {', '.join(missing)} not among the columns of '{source}' "
            f"({', '.join(columns[source])})"]


def record_passages(records: Iterable[dict[str, Any]], cfg: IndexConfig) -> Iterator[Passage]:
    """One passage per record (a fact sentence) or per document chunk, in input order."""
    wanted = set(cfg.sources) if cfg.sources is not None else None
    for row in records:
        source = row["source"]
        if wanted is not None and source not in wanted:
            continue
        data: dict[str, str] = row["data"]
        fields = {f"{FIELD_PREFIX}{name}": str(data.get(name) or "")
                  for name in cfg.match_fields.get(source, [])}
        yield Passage(
            id=passage_id(source, int(row["line"]), row.get("key")),
            text=render_record(data, cfg.templates.get(source)),
            source=source,
            metadata={"file": str(row["file"]), "line": str(row["line"]), **fields},
        )


def render_record(data: dict[str, str], template: str | None) -> str:
    """A record as text: the source's template filled in, a document chunk's title and text,
    or else its non-empty fields as 'field: value' pairs."""
    if template is not None:
        return template.format_map(data)
    if "text" in data and "title" in data:
        title = data["title"].strip()
        return f"{title}\n{data['text']}" if title else data["text"]
    return "; ".join(f"{field}: {value}" for field, value in data.items()
                     if value and field not in _CHUNK_FIELDS)
