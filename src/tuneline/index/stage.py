"""Stage 3, index: embed the ingested records and document chunks into a vector store.

The store lives outside the stage folder (index.uri) and is updated in place: only new and
changed passages are embedded, and passages whose record is gone are deleted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneline.artifacts import (
    Artifact,
    StageResult,
    hash_strings,
    read_jsonl,
    run_stage,
    write_json_atomic,
)
from tuneline.config import PipelineConfig
from tuneline.errors import DataError
from tuneline.index.config import SEARCH_TIME_ONLY
from tuneline.ingest.stage import RECORDS
from tuneline.rag.retrieve import INDEX_INFO, MATCH_VALUES, is_local_uri, store_location

_UPSERT_BATCH = 512


def run(cfg: PipelineConfig, ingested: Artifact, out_dir: Path, force: bool = False) -> Artifact:
    """Bring the store in line with the ingested records; writes `index.json` (where the store
    is, the embedder, counts). Skipped, like any stage, when nothing changed."""
    uri, collection = store_location(cfg)
    config_hash = cfg.section_hash("index", exclude=SEARCH_TIME_ONLY) + f":{uri}:{collection}"
    # A deleted local store is rebuilt even when the stage's fingerprint still matches.
    missing = is_local_uri(uri) and not Path(uri).exists()

    def work(tmp: Path) -> StageResult:
        return _index(cfg, ingested, uri, collection, tmp)

    return run_stage("index", out_dir, config_hash, {"ingest": ingested.output_hash}, work,
                     force or missing)


def read_index_info(indexed: Artifact) -> dict[str, Any]:
    return json.loads((indexed.path / INDEX_INFO).read_text(encoding="utf-8"))


def _index(cfg: PipelineConfig, ingested: Artifact, uri: str, collection: str,
           tmp: Path) -> StageResult:
    from tuneline.rag.embed import Embedder
    from tuneline.rag.matching import field_values
    from tuneline.rag.record_passages import check_templates, record_passages
    from tuneline.rag.stores import open_store

    tables = json.loads((ingested.path / "tables.json").read_text(encoding="utf-8"))
    check_templates(cfg.index, {name: t["columns"] for name, t in tables.items()})
    passages = list(record_passages(read_jsonl(ingested.path / RECORDS), cfg.index))
    _check_unique(passages)
    embedder = Embedder(cfg.index.embedder, cfg.index.batch_size)
    store = open_store(cfg.index.store, uri, collection, embedder.dim)
    try:
        stored = store.content_hashes()
        changed = [p for p in passages if stored.get(p.id) != p.content_hash()]
        wanted = {p.id for p in passages}
        gone = [pid for pid in stored if pid not in wanted]
        vectors = embedder.embed([p.text for p in changed], progress=True)
        for start in range(0, len(changed), _UPSERT_BATCH):
            store.upsert(changed[start:start + _UPSERT_BATCH],
                         vectors[start:start + _UPSERT_BATCH])
        if gone:
            store.delete(gone)
        total = store.count()
    finally:
        store.close()
    counts = {"passages": total, "embedded": len(changed), "deleted": len(gone),
              "unchanged": len(passages) - len(changed)}
    info = {"store": cfg.index.store, "uri": uri, "collection": collection,
            "embedder": cfg.index.embedder, "dim": embedder.dim, "passages": total,
            # Changes whenever the stored content does, so that downstream stages rerun.
            "content": hash_strings(*sorted(f"{p.id}\0{p.content_hash()}" for p in passages))}
    write_json_atomic(tmp / INDEX_INFO, info)
    if cfg.index.match_fields:
        write_json_atomic(tmp / MATCH_VALUES, field_values(passages))
    return StageResult(counts=counts, details={k: v for k, v in info.items() if k != "content"})


def _check_unique(passages: list[Any]) -> None:
    seen: dict[str, Any] = {}
    for passage in passages:
        if passage.id in seen:
            first = seen[passage.id]
            raise DataError(
                f"index: two records share the passage id {passage.id!r} "
                f"({first.metadata.get('file')}:{first.metadata.get('line')} and "
                f"{passage.metadata.get('file')}:{passage.metadata.get('line')}); give the "
                "source a unique key column")
        seen[passage.id] = passage
