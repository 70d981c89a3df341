"""Stage 2, synthesize: fill Q&A templates from ingested records into grounded facts."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, read_jsonl, run_stage, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.data.llm_synth import generate_facts
from tuneline.data.sources import Record
from tuneline.data.templates import Fact, check_columns, facts_from_records
from tuneline.data.unanswerable import unanswerable_facts
from tuneline.errors import ConfigError
from tuneline.models.resolve import cache_root
from tuneline.stages.ingest import RECORDS, TABLES

FACTS = "facts.jsonl"


def run(cfg: PipelineConfig, ingested: Artifact, out_dir: Path, force: bool = False) -> Artifact:
    """Write `out_dir/facts.jsonl`: one line per fact with all its question phrasings."""
    if not cfg.synthesize.templates and not cfg.synthesize.llm.enabled:
        raise ConfigError(["synthesize.templates: no templates configured (and synthesize.llm "
                           "is not enabled)"])
    config_hash = cfg.section_hash("synthesize", "run")

    def work(tmp: Path) -> StageResult:
        tables = json.loads((ingested.path / TABLES).read_text(encoding="utf-8"))
        records = _records_by_source(ingested.path / RECORDS)
        all_facts: list[Fact] = []
        counts: dict[str, int] = {}
        skipped: dict[str, dict[str, int]] = {}
        rng = random.Random(cfg.run.seed)
        for index, template in enumerate(cfg.synthesize.templates):
            if template.source not in tables:
                raise ConfigError([
                    f"synthesize.templates.{index}.source: '{template.source}' is not an "
                    f"ingest source (sources: {sorted(tables)})"
                ])
            check_columns(template, tables[template.source]["columns"])
            facts, report = facts_from_records(template, records[template.source])
            facts = _sample(facts, cfg.synthesize.max_facts_per_template, rng)
            all_facts += facts
            counts[f"facts:{template.name}"] = len(facts)
            invented = unanswerable_facts(template, records[template.source],
                                          cfg.synthesize.unanswerable.per_template,
                                          cfg.synthesize.unanswerable.answer, rng)
            all_facts += invented
            if invented:
                counts[f"unanswerable:{template.name}"] = len(invented)
            skipped[template.name] = dict(report.skipped)
        details: dict[str, object] = {"skipped": skipped}
        if cfg.synthesize.llm.enabled:
            llm_facts, report, usage = generate_facts(
                cfg.synthesize.llm, _known_sources(cfg, tables, records),
                cfg.curate.recall_phrasings + 1, cfg.run.seed, cache_root(cfg.model.cache_dir)
                / "llm-responses")
            all_facts += llm_facts
            counts["facts:llm"] = len(llm_facts)
            details["llm"] = {**report.to_json(), "usage": usage.to_json()}
        counts["facts"] = write_jsonl(tmp / FACTS, (f.to_json() for f in all_facts))
        counts["questions"] = sum(len(f.questions) for f in all_facts)
        return StageResult(counts=counts, details=details)

    return run_stage("synthesize", out_dir, config_hash, {"ingest": ingested.output_hash}, work,
                     force)


def load_facts(artifact: Artifact) -> list[Fact]:
    """Facts written by a synthesize artifact."""
    return [Fact(**row) for row in read_jsonl(artifact.path / FACTS)]


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
