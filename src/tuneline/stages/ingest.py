"""Stage 1, ingest: read every configured source into provenance-keeping records."""

from __future__ import annotations

import json
from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, run_stage, write_json_atomic
from tuneline.config import PipelineConfig
from tuneline.data.sources import read_source, source_fingerprint
from tuneline.errors import ConfigError

RECORDS = "records.jsonl"
TABLES = "tables.json"


def run(cfg: PipelineConfig, out_dir: Path, force: bool = False) -> Artifact:
    """Read `cfg.ingest.sources` into `out_dir/records.jsonl` (+ `tables.json` with columns)."""
    if not cfg.ingest.sources:
        raise ConfigError(["ingest.sources: no sources configured; add at least one"])
    inputs = {f"source:{s.name}": source_fingerprint(s) for s in cfg.ingest.sources}

    def work(tmp: Path) -> StageResult:
        tables: dict[str, dict[str, object]] = {}
        counts: dict[str, int] = {}
        with (tmp / RECORDS).open("w", encoding="utf-8") as handle:
            for source in cfg.ingest.sources:
                rows = 0
                columns: list[str] = []
                for record in read_source(source):
                    handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                    columns = columns or list(record.data)
                    rows += 1
                tables[source.name] = {"format": source.format, "columns": columns, "rows": rows,
                                       "file": str(source.path) if source.path else None}
                counts[f"rows:{source.name}"] = rows
        write_json_atomic(tmp / TABLES, tables)
        counts["records"] = sum(counts.values())
        return StageResult(counts=counts)

    return run_stage("ingest", out_dir, cfg.section_hash("ingest"), inputs, work, force)

