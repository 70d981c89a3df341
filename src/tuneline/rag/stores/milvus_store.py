"""Milvus vector store via pymilvus' MilvusClient: a Milvus Lite file or a Milvus server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneline._optional import require
from tuneline.errors import ConfigError, DataError
from tuneline.rag.passages import Hit, Passage
from tuneline.rag.stores.vector_store import (
    SearchMode,
    best_first,
    check_query,
    check_upsert,
    fetch_size,
)

if TYPE_CHECKING:
    import numpy

_ID_MAX = 512
_SOURCE_MAX = 512
_TEXT_MAX = 65535  # Milvus' VARCHAR limit, in bytes
_BATCH = 1000  # rows per upsert call: keeps gRPC messages well under their 64 MiB cap
_RRF_K = 60


class MilvusStore:
    """A `VectorStore` on a Milvus collection (Milvus Lite file ``*.db`` or server URL).

    Fields: id (VARCHAR primary key), text (VARCHAR with an analyzer), source, metadata (JSON),
    content_hash, vector (FLOAT_VECTOR, cosine), sparse (BM25 function output of text, for
    text and hybrid search; hybrid fuses the two searches with Milvus' RRF ranker).
    """

    def __init__(self, uri: str, collection: str, dim: int):
        pymilvus = require("pymilvus")
        if "://" not in uri and not uri.endswith(".db"):
            raise ConfigError(
                [f"Milvus uri {uri!r}: give a Milvus Lite file ending in .db or a server URL"]
            )
        self.collection, self.dim = collection, dim
        self._client = pymilvus.MilvusClient(uri)
        if not self._client.has_collection(collection):
            self._create(pymilvus)
        self._has_bm25 = self._check_existing(uri)
        self._client.load_collection(collection)

    def _create(self, pymilvus: Any) -> None:
        dt = pymilvus.DataType
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", dt.VARCHAR, is_primary=True, max_length=_ID_MAX)
        schema.add_field("text", dt.VARCHAR, max_length=_TEXT_MAX, enable_analyzer=True)
        schema.add_field("source", dt.VARCHAR, max_length=_SOURCE_MAX)
        schema.add_field("metadata", dt.JSON)
        schema.add_field("content_hash", dt.VARCHAR, max_length=64)
        schema.add_field("vector", dt.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sparse", dt.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            pymilvus.Function(
                name="text_bm25",
                function_type=pymilvus.FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self._client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        # Strong consistency: a search right after an upsert sees it (a server defaults to Bounded)
        self._client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level="Strong"
        )

    def _check_existing(self, uri: str) -> bool:
        fields = {f["name"]: f for f in self._client.describe_collection(self.collection)["fields"]}
        found = int(fields.get("vector", {}).get("params", {}).get("dim", -1))
        if found != self.dim:
            raise ConfigError(
                [
                    f"Milvus collection {self.collection!r} at {uri} holds vectors of dim "
                    f"{found} but dim {self.dim} was asked for; use the embedder it was built "
                    "with, or another collection name."
                ]
            )
        return "sparse" in fields

    def upsert(self, passages: Sequence[Passage], vectors: numpy.ndarray) -> int:
        """Insert or replace passages by id."""
        arr = check_upsert(self.collection, self.dim, passages, vectors)
        rows = [_row(p, v) for p, v in zip(passages, arr.tolist(), strict=True)]
        for start in range(0, len(rows), _BATCH):
            self._client.upsert(self.collection, rows[start : start + _BATCH])
        return len(rows)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete passages by id; returns how many existed."""
        if not ids:
            return 0
        deleted = 0
        for start in range(0, len(ids), _BATCH):
            chunk = list(ids[start : start + _BATCH])
            found = [
                r["id"] for r in self._client.get(self.collection, ids=chunk, output_fields=["id"])
            ]
            if found:
                self._client.delete(self.collection, ids=found)
            deleted += len(found)
        return deleted

    def content_hashes(self) -> dict[str, str]:
        """id -> content hash of every stored passage."""
        hashes: dict[str, str] = {}
        it = self._client.query_iterator(
            self.collection, batch_size=1000, filter="", output_fields=["id", "content_hash"]
        )
        try:
            while batch := it.next():
                hashes.update((row["id"], row["content_hash"]) for row in batch)
        finally:
            it.close()
        return hashes

    def search(
        self,
        vector: numpy.ndarray,
        k: int,
        *,
        text: str | None = None,
        mode: SearchMode = "vector",
        where: dict[str, str] | None = None,
    ) -> list[Hit]:
        """The k best passages, best first; see `VectorStore.search`."""
        query_vector = check_query(self.collection, self.dim, vector, text, mode)
        if mode != "vector" and not self._has_bm25:
            raise ConfigError(
                [
                    f"search mode {mode!r}: Milvus collection {self.collection!r} has no BM25 "
                    "field (it was created elsewhere); use mode 'vector', the lancedb store, "
                    "or re-create the collection with tuneline."
                ]
            )
        if k <= 0:
            return []
        expr = _filter(where or {})
        fields = ["id", "text", "source", "metadata"]
        if mode == "hybrid":
            pymilvus = require("pymilvus")
            reqs = [
                pymilvus.AnnSearchRequest(
                    data=[query_vector], anns_field="vector", param={"metric_type": "COSINE"},
                    limit=fetch_size(k), expr=expr or None,
                ),
                pymilvus.AnnSearchRequest(
                    data=[text], anns_field="sparse", param={"metric_type": "BM25"},
                    limit=fetch_size(k), expr=expr or None,
                ),
            ]  # fmt: skip
            result = self._client.hybrid_search(
                self.collection, reqs, ranker=pymilvus.RRFRanker(_RRF_K), limit=fetch_size(k),
                output_fields=fields,
            )  # fmt: skip
        else:
            result = self._client.search(
                self.collection,
                data=[query_vector if mode == "vector" else text],
                anns_field="vector" if mode == "vector" else "sparse",
                search_params={"metric_type": "COSINE" if mode == "vector" else "BM25"},
                limit=fetch_size(k), filter=expr, output_fields=fields,
            )  # fmt: skip
        hits = []
        for row in result[0]:
            # Milvus Lite reports BM25 as a negative distance, a server as a positive score.
            score = abs(row["distance"]) if mode == "text" else row["distance"]
            hits.append(Hit(_passage(row["entity"]), float(score)))
        return best_first(hits, k)

    def count(self) -> int:
        """Number of stored passages."""
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def close(self) -> None:
        """Close the client (and the Milvus Lite process it started)."""
        self._client.close()


def _row(p: Passage, vector: list[float]) -> dict[str, Any]:
    for name, value, limit in (("id", p.id, _ID_MAX), ("source", p.source, _SOURCE_MAX)):
        if len(value.encode("utf-8")) > limit:
            raise DataError(f"passage {p.id[:80]!r}: {name} is over Milvus' {limit} bytes")
    if len(p.text.encode("utf-8")) > _TEXT_MAX:
        raise DataError(
            f"passage {p.id!r}: text is {len(p.text.encode())} bytes, over Milvus' "
            f"{_TEXT_MAX}; chunk it smaller"
        )
    return {
        "id": p.id,
        "text": p.text,
        "source": p.source,
        "metadata": dict(p.metadata),
        "content_hash": p.content_hash(),
        "vector": vector,
    }


def _filter(where: dict[str, str]) -> str:
    """A Milvus boolean expression; literals are JSON strings (Milvus Lite has no templating)."""
    clauses = []
    for key, value in where.items():
        literal = json.dumps(str(value), ensure_ascii=False)
        if key in ("id", "source"):
            clauses.append(f"{key} == {literal}")
        else:
            clauses.append(f"metadata[{json.dumps(key, ensure_ascii=False)}] == {literal}")
    return " and ".join(clauses)


def _passage(entity: dict[str, Any]) -> Passage:
    meta = entity.get("metadata") or {}
    if isinstance(meta, str):  # some server versions return JSON fields as text
        meta = json.loads(meta)
    return Passage(
        id=entity["id"],
        text=entity["text"],
        source=entity["source"],
        metadata={str(k): str(v) for k, v in meta.items()},
    )
