"""Fill question/answer templates from records to make grounded Q&A facts."""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneline.artifacts import hash_strings
from tuneline.errors import DataError
from tuneline.ingest.records import Record
from tuneline.synthesize.config import TemplateConfig


@dataclass
class Fact:
    """One fact about one entity, with every phrasing of its question and the source row."""

    fact_id: str
    template: str
    key: str
    fact: str
    answer: str
    questions: list[str]
    source: dict[str, Any]
    # "qa"; "unanswerable": about an entity the data lacks, the answer abstains; "reading":
    # only ever trained in RAG format, with its row's passage (retrieval-reading practice)
    kind: str = "qa"
    # The values that name the entity (its key columns: an athlete's name; a discipline and an
    # event): a message holding all of them and this fact's answer states this fact.
    entity: list[str] = field(default_factory=list)
    # "dev": sampled beyond synthesize.max_facts_per_template for the dev sets only, never
    # trained or tested (synthesize.dev_facts_per_template); "": curate's split decides.
    reserved: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TemplateReport:
    """How many rows a template turned into facts, and why it skipped the rest."""

    rows: int = 0
    facts: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def placeholders(text: str) -> list[str]:
    """Column names used as {placeholders} in a template string."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def check_columns(template: TemplateConfig, columns: Iterable[str]) -> None:
    """Raise DataError when a template names a column its source table lacks."""
    available = set(columns)
    texts = [*template.questions, template.answer, template.fact, template.key or ""]
    used = {name for text in texts for name in placeholders(text)} | set(template.where)
    missing = sorted(used - available)
    if missing:
        raise DataError(
            f"template '{template.name}': column(s) {missing} not in source "
            f"'{template.source}' (columns: {sorted(available)})"
        )


def template_key(template: TemplateConfig) -> str:
    """What a template's question is about: its `key`, else all its questions' placeholders."""
    return template.key or " | ".join(
        "{" + name + "}" for name in dict.fromkeys(p for q in template.questions
                                                     for p in placeholders(q))
    )


def answer_values(template: TemplateConfig, records: list[Record]) -> dict[str, int]:
    """Every value the template's answer (`fact`) takes over all rows of its table, `where` or
    not, with how many rows hold it: what counts as a claim when scoring, and how identifying
    a value is (a champion's name holds few rows, a country many)."""
    columns = placeholders(template.fact)
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        values = {c: (record.data.get(c) or "").strip() for c in columns}
        if all(values.values()):
            counts[template.fact.format_map(values)] += 1
    return dict(sorted(counts.items()))


def facts_from_records(
    template: TemplateConfig, records: list[Record]
) -> tuple[list[Fact], TemplateReport]:
    """Render a template over records; drop rows with empty fields and ambiguous keys."""
    report = TemplateReport()
    key_template = template_key(template)
    used = {p for t in [*template.questions, template.answer, template.fact, key_template]
            for p in placeholders(t)}
    by_key: dict[str, list[Fact]] = defaultdict(list)
    for record in records:
        if any(record.data.get(col) != value for col, value in template.where.items()):
            continue
        report.rows += 1
        if any(not record.data[col].strip() for col in used):
            report.skipped["empty_field"] += 1
            continue
        values = {k: v.strip() for k, v in record.data.items()}
        key = key_template.format_map(values)
        by_key[key].append(
            Fact(
                fact_id=hash_strings(template.name, key),
                template=template.name,
                key=key,
                fact=template.fact.format_map(values),
                answer=template.answer.format_map(values),
                questions=[q.format_map(values) for q in template.questions],
                source={"source": record.source, "file": record.file, "line": record.line},
                entity=[values[c] for c in dict.fromkeys(placeholders(key_template))],
            )
        )
    facts = []
    for candidates in by_key.values():
        if len({c.fact for c in candidates}) > 1:
            report.skipped["ambiguous_key"] += len(candidates)
            continue
        report.skipped["duplicate_row"] += len(candidates) - 1
        fact = candidates[0]
        if len(candidates) > 1:
            # Rows that state the same fact: retrieving any of them retrieves the answer.
            fact.source["same_fact_lines"] = [c.source["line"] for c in candidates[1:]]
        facts.append(fact)
    report.facts = len(facts)
    return facts, report
