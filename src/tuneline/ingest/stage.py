"""Stage 1, ingest: read every configured source into provenance-keeping records."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tuneline.artifacts import Artifact, StageResult, run_stage, write_json_atomic
from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError
from tuneline.ingest.config import JoinConfig, SourceConfig
from tuneline.ingest.documents import SUFFIXES, repeated_document_files
from tuneline.ingest.joins import Lookup, apply_join, build_lookup
from tuneline.ingest.records import Record
from tuneline.ingest.sources import read_source, source_fingerprint

RECORDS = "records.jsonl"
TABLES = "tables.json"


def run(cfg: PipelineConfig, out_dir: Path, force: bool = False) -> Artifact:
    """Read `cfg.ingest.sources` into `out_dir/records.jsonl` (+ `tables.json` with columns).

    Joins apply after reading; the manifest counts rows per source, a document source's
    files left out as repeating another ('repeated_files:<source>') and, for a source with
    joins, its rows that found no match ('unmatched:<source>', per join under details).
    """
    if not cfg.ingest.sources:
        raise ConfigError(["ingest.sources: no sources configured; add at least one"])
    inputs = {f"source:{s.name}": source_fingerprint(s) for s in cfg.ingest.sources}

    def work(tmp: Path) -> StageResult:
        sources = {s.name: s for s in cfg.ingest.sources}
        lookups: dict[tuple[Any, ...], Lookup] = {}
        tables: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        joins: dict[str, list[dict[str, object]]] = {}
        with (tmp / RECORDS).open("w", encoding="utf-8") as handle:
            for source in cfg.ingest.sources:
                tallies: list[Counter[str]] = [Counter() for _ in source.join]
                records = read_joined(source, sources, lookups, tallies)
                tables[source.name] = _write_table(handle, source, records)
                counts[f"rows:{source.name}"] = tables[source.name]["rows"]
                if repeated := _repeated_files(source):
                    counts[f"repeated_files:{source.name}"] = repeated
                if source.join:
                    counts[f"unmatched:{source.name}"] = sum(t["unmatched"] for t in tallies)
                    joins[source.name] = [{"source": j.source, "how": j.how, **t}
                                          for j, t in zip(source.join, tallies, strict=True)]
        write_json_atomic(tmp / TABLES, tables)
        counts["records"] = sum(v for k, v in counts.items() if k.startswith("rows:"))
        return StageResult(counts=counts, details={"joins": joins} if joins else {})

    return run_stage("ingest", out_dir, cfg.section_hash("ingest"), inputs, work, force)


def _repeated_files(source: SourceConfig) -> int:
    """How many of a document source's files were left out as repeating another's bytes."""
    if source.path is None or source.format not in SUFFIXES:
        return 0
    return len(repeated_document_files(source.path, source.format))


def read_joined(
    source: SourceConfig,
    sources: dict[str, SourceConfig],
    lookups: dict[tuple[Any, ...], Lookup],
    tallies: list[Counter[str]] | None = None,
) -> Iterator[Record]:
    """Records of `source` with its joins applied in order, the left side streamed.

    Each looked-up source is read whole once (its own joins applied first) and kept in
    `lookups`; config validation has ruled out cycles. `tallies[i]` counts join i's matches.
    """
    records: Iterator[Record] = read_source(source)
    for number, join in enumerate(source.join):
        lookup = _lookup(join, sources, lookups)
        tally = tallies[number] if tallies is not None else Counter()
        records = apply_join(records, join, lookup, tally)
    return records


def _lookup(
    join: JoinConfig, sources: dict[str, SourceConfig], lookups: dict[tuple[Any, ...], Lookup]
) -> Lookup:
    marker = (join.source, tuple(right for _, right in join.pairs()), tuple(join.columns or ()))
    if marker not in lookups:
        lookups[marker] = build_lookup(join, read_joined(sources[join.source], sources, lookups))
    return lookups[marker]


def _write_table(
    handle: IO[str], source: SourceConfig, records: Iterator[Record]
) -> dict[str, Any]:
    rows = 0
    columns: list[str] = []
    for record in records:
        handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        columns = columns or list(record.data)
        rows += 1
    return {"format": source.format, "columns": columns, "rows": rows,
            "file": str(source.path) if source.path else None}
