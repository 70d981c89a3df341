"""Stage 2, synthesize: fill Q&A templates from ingested records into grounded facts."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from tuneline.artifacts import (
    Artifact,
    StageResult,
    read_jsonl,
    run_stage,
    write_json_atomic,
    write_jsonl,
)
from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError
from tuneline.ingest.records import Record
from tuneline.ingest.stage import RECORDS, TABLES
from tuneline.leakage import LeakGuard
from tuneline.models.resolve import cache_root
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.conversations import Conversation, build_conversations
from tuneline.synthesize.llm_synth import generate_facts
from tuneline.synthesize.out_of_data import (
    absent_attribute_facts,
    absent_attributes,
    other_qualifier_facts,
    variant_name_facts,
)
from tuneline.synthesize.paraphrase import paraphrase_templates
from tuneline.synthesize.suggest import auto_templates_for
from tuneline.synthesize.templates import (
    Fact,
    answer_values,
    check_columns,
    facts_from_records,
)
from tuneline.synthesize.unanswerable import unanswerable_facts

FACTS = "facts.jsonl"
CONVERSATIONS = "conversations.jsonl"
VALUES = "values.json"  # {template: {answer value: rows of its table}}: claims and rarity


def run(cfg: PipelineConfig, ingested: Artifact, out_dir: Path, force: bool = False) -> Artifact:
    """Write `out_dir/facts.jsonl`: one line per fact with all its question phrasings."""
    syn = cfg.synthesize
    if not (syn.templates or syn.auto_templates or syn.llm.enabled or syn.conversations
            or syn.documents.enabled):
        raise ConfigError(["synthesize.templates: no templates configured (set "
                           "synthesize.auto_templates: true, enable synthesize.llm, or map "
                           "sources to synthesize.conversations)"])
    config_hash = cfg.section_hash("synthesize", "run")

    def work(tmp: Path) -> StageResult:
        tables = json.loads((ingested.path / TABLES).read_text(encoding="utf-8"))
        records = _records_by_source(ingested.path / RECORDS)
        _check_sources(syn.templates, tables)
        templates = list(syn.templates)
        if syn.auto_templates:
            taken = {t.source for t in templates} | {c.source for c in syn.conversations}
            templates += auto_templates_for(tables, records, taken)
        details: dict[str, Any] = {"auto_templates": [t.name for t in
                                                      templates[len(syn.templates):]]}
        llm_cache = cache_root(cfg.model.cache_dir) / "llm-responses"
        if syn.paraphrase.per_template and templates:
            assert syn.llm.endpoint is not None  # enforced by the config
            templates, details["paraphrase"] = paraphrase_templates(
                templates, syn.paraphrase.per_template, syn.llm.endpoint, llm_cache,
                keep_last=cfg.curate.recall_phrasings)
        values = {t.name: answer_values(t, records[t.source]) for t in templates}
        write_json_atomic(tmp / VALUES, values)
        facts, counts, details["skipped"] = _template_facts(cfg, templates, tables, records,
                                                            values)
        if syn.llm.enabled:
            llm_facts, report, usage = generate_facts(
                syn.llm, _known_sources(cfg, tables, records), cfg.curate.recall_phrasings + 1,
                cfg.run.seed, llm_cache)
            facts += llm_facts
            counts["facts:llm"] = len(llm_facts)
            details["llm"] = {**report.to_json(), "usage": usage.to_json()}
        counts["facts"] = write_jsonl(tmp / FACTS, (f.to_json() for f in facts))
        conversations, conversation_counts = build_conversations(syn.conversations, tables,
                                                                 records)
        counts.update(conversation_counts)
        if syn.documents.enabled:
            from tuneline.synthesize.document_qa import document_conversations

            written, report, usage = document_conversations(syn.documents, records, tables,
                                                            cfg.run.seed, llm_cache)
            conversations += written
            counts["conversations:documents_llm"] = len(written)
            details["documents_llm"] = {**report.to_json(), "usage": usage.to_json()}
        counts["conversations"] = write_jsonl(tmp / CONVERSATIONS,
                                              (c.to_json() for c in conversations))
        counts["questions"] = sum(len(f.questions) for f in facts)
        return StageResult(counts=counts, details=details)

    return run_stage("synthesize", out_dir, config_hash, {"ingest": ingested.output_hash}, work,
                     force)


def _template_facts(
    cfg: PipelineConfig, templates: list[TemplateConfig], tables: dict[str, Any],
    records: dict[str, list[Record]], values: dict[str, dict[str, int]],
) -> tuple[list[Fact], dict[str, int], dict[str, dict[str, int]]]:
    """Facts (sampled) and unanswerable questions of every template, with counts and skips."""
    rng = random.Random(cfg.run.seed)
    unanswerable = cfg.synthesize.unanswerable
    facts: list[Fact] = []
    counts: dict[str, int] = {}
    skipped: dict[str, dict[str, int]] = {}
    unsampled: dict[str, list[Fact]] = {}
    for template in templates:
        check_columns(template, tables[template.source]["columns"])
        every, report = facts_from_records(template, records[template.source])
        found = _sample(every, cfg.synthesize.max_facts_per_template, rng)
        chosen = {f.fact_id for f in found}
        rest = [f for f in every if f.fact_id not in chosen]
        dev_only = _reserve_for_dev(
            _sample(rest, cfg.synthesize.dev_facts_per_template, rng) if rest else [])
        chosen |= {f.fact_id for f in dev_only}
        unsampled[template.name] = [f for f in every if f.fact_id not in chosen]
        counts[f"facts:{template.name}"] = len(found)
        if dev_only:
            counts[f"dev_facts:{template.name}"] = len(dev_only)
        n_invented = unanswerable.per_template + (len(dev_only) if unanswerable.per_template
                                                  else 0)
        invented = unanswerable_facts(template, records[template.source], n_invented,
                                      unanswerable.answer, rng,
                                      _rows_of(found, records[template.source]))
        invented = (invented[: unanswerable.per_template]
                    + _reserve_for_dev(invented[unanswerable.per_template:]))
        if invented:
            counts[f"unanswerable:{template.name}"] = len(invented)
        probes = (_out_of_data(cfg, template, found + dev_only, every, tables, rng)
                  if unanswerable.builds_out_of_data else [])
        found += dev_only
        for fact in probes:
            counts[f"{fact.kind}:{template.name}"] = counts.get(
                f"{fact.kind}:{template.name}", 0) + 1
        facts += found + invented + probes
        skipped[template.name] = dict(report.skipped)
    rows = {(r.source, str(r.file), str(r.line)): r for group in records.values() for r in group}
    reading = _reading_facts(unsampled, facts, cfg.synthesize.reading_facts_per_template, rng,
                             LeakGuard.from_facts([f for f in facts if f.kind == "qa"], values),
                             rows)
    for fact in reading:
        counts[f"reading:{fact.template}"] = counts.get(f"reading:{fact.template}", 0) + 1
    return facts + reading, counts, skipped


def _reserve_for_dev(facts: list[Fact]) -> list[Fact]:
    return [dataclasses.replace(f, reserved="dev") for f in facts]


def _reading_facts(unsampled: dict[str, list[Fact]], facts: list[Fact],
                   per_template: int | dict[str, int], rng: random.Random,
                   sampled: LeakGuard, rows: dict[tuple[str, str, str], Record]) -> list[Fact]:
    """Facts for retrieval-reading practice, from rows that no sampled fact comes from and
    whose cells state no sampled fact (`sampled`: an athlete's other medal names the athlete,
    a champion of two events names the champion), so that whichever sampled facts curate
    evaluates, reading practice does not show them (curate checks every message again)."""
    if isinstance(per_template, dict):
        unknown = sorted(set(per_template) - set(unsampled))
        if unknown:
            raise ConfigError([f"synthesize.reading_facts_per_template.{name}: no template is "
                               f"named '{name}' (templates: {', '.join(unsampled)})"
                               for name in unknown])
        counts = {name: per_template.get(name, 0) for name in unsampled}
    else:
        counts = dict.fromkeys(unsampled, per_template)
    if not any(counts.values()):
        return []
    used = {_row(f) for f in facts if f.kind != "unanswerable"}

    def states_sampled(fact: Fact) -> bool:
        record = rows.get(_row(fact))
        cells = " | ".join(record.data.values()) if record else ""
        return sampled.stated(f"{cells} | {fact.answer}") is not None

    reading = []
    for name, pool in unsampled.items():
        if not counts[name]:
            continue
        fresh = [f for f in pool if _row(f) not in used and not states_sampled(f)]
        for fact in _sample(fresh, counts[name], rng):
            used.add(_row(fact))
            reading.append(dataclasses.replace(fact, kind="reading"))
    return reading


def _out_of_data(cfg: PipelineConfig, template: TemplateConfig, found: list[Fact],
                 every: list[Fact], tables: dict[str, Any], rng: random.Random) -> list[Fact]:
    """Absent-attribute, other-qualifier and variant-name questions about the sampled facts."""
    unanswerable = cfg.synthesize.unanswerable
    columns = [c for table in tables.values() for c in table["columns"]]
    attributes = absent_attributes(template, columns, unanswerable.attributes,
                                   tables[template.source]["columns"])
    return (absent_attribute_facts(template, found, attributes, unanswerable.answer, rng)
            + other_qualifier_facts(template, found, unanswerable.answer, rng,
                                    unanswerable.qualifiers)
            + variant_name_facts(template, found, [f.key for f in every], rng))


def _rows_of(facts: list[Fact], records: list[Record]) -> list[Record]:
    """The records the facts were rendered from."""
    lines = {(str(f.source.get("file")), str(f.source.get("line"))) for f in facts}
    return [r for r in records if (str(r.file), str(r.line)) in lines]


def _row(fact: Fact) -> tuple[str, str, str]:
    return (str(fact.source.get("source")), str(fact.source.get("file")),
            str(fact.source.get("line")))


def _check_sources(templates: list[TemplateConfig], tables: dict[str, Any]) -> None:
    problems = [f"synthesize.templates.{i}.source: '{t.source}' is not an ingest source "
                f"(sources: {sorted(tables)})" for i, t in enumerate(templates)
                if t.source not in tables]
    if problems:
        raise ConfigError(problems)


def load_facts(artifact: Artifact) -> list[Fact]:
    """Facts written by a synthesize artifact."""
    return [Fact(**row) for row in read_jsonl(artifact.path / FACTS)]


def load_conversations(artifact: Artifact) -> list[Conversation]:
    """Conversations written by a synthesize artifact (none from one written before them)."""
    path = artifact.path / CONVERSATIONS
    return [Conversation(**row) for row in read_jsonl(path)] if path.is_file() else []


def load_values(artifact: Artifact) -> dict[str, dict[str, int]]:
    """Per template, every value its answer column takes in the table, with its row count."""
    path = artifact.path / VALUES
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _records_by_source(path: Path) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = defaultdict(list)
    for row in read_jsonl(path):
        record = Record.from_json(row)
        grouped[record.source].append(record)
    return grouped


def _known_sources(cfg: PipelineConfig, tables: dict, records: dict[str, list[Record]]
                   ) -> dict[str, list[Record]]:
    unknown = sorted(set(cfg.synthesize.llm.sources) - set(tables))
    if unknown:
        raise ConfigError([f"synthesize.llm.sources: {unknown} are not ingest sources "
                           f"(sources: {sorted(tables)})"])
    return {name: records.get(name, []) for name in tables}


def _sample(facts: list[Fact], limit: int | None, rng: random.Random) -> list[Fact]:
    if limit is None or len(facts) <= limit:
        return facts
    ordered = sorted(facts, key=lambda f: f.fact_id)
    return sorted(rng.sample(ordered, limit), key=lambda f: f.fact_id)
