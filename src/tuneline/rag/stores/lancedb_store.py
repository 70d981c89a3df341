"""LanceDB vector store: a table in a local folder, cosine search, native BM25 full-text index."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneline._optional import require
from tuneline.errors import ConfigError
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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pair(key: str, value: str) -> str:
    # One list element per metadata entry, JSON-encoded so that no key/value can collide.
    return json.dumps([key, value], ensure_ascii=False)


class LanceDBStore:
    """A `VectorStore` on a LanceDB table.

    Columns: id, text, source, metadata (JSON string), metadata_pairs (list of JSON
    ``[key, value]`` strings, what ``where`` filters on), content_hash, vector.
    Text and hybrid search use LanceDB's native full-text index on ``text``; hybrid fuses
    it with vector search by reciprocal-rank fusion (`RRFReranker`, no model involved).
    """

    def __init__(self, uri: str, collection: str, dim: int):
        lancedb = require("lancedb")
        pa = require("pyarrow")
        self.collection, self.dim = collection, dim
        self._schema = pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("text", pa.string()),
                pa.field("source", pa.string()),
                pa.field("metadata", pa.string()),
                pa.field("metadata_pairs", pa.list_(pa.string())),
                pa.field("content_hash", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        self._db = lancedb.connect(uri)
        try:
            self._table = self._db.open_table(collection)
        except ValueError:  # "Table ... was not found"
            self._table = self._db.create_table(collection, schema=self._schema)
        stored = self._table.schema
        found = stored.field("vector").type if "vector" in stored.names else None
        found_dim = getattr(found, "list_size", None)
        if found_dim != dim or "metadata_pairs" not in stored.names:
            raise ConfigError(
                [
                    f"LanceDB table {collection!r} at {uri} holds vectors of dim {found_dim} "
                    f"(schema {stored.names}) but dim {dim} was asked for; use the embedder "
                    "it was built with, or another collection name."
                ]
            )

    def upsert(self, passages: Sequence[Passage], vectors: numpy.ndarray) -> int:
        """Insert or replace passages by id (merge-insert), then refresh the full-text index."""
        pa = require("pyarrow")
        arr = check_upsert(self.collection, self.dim, passages, vectors)
        if not passages:
            return 0
        batch = pa.table(
            {
                "id": [p.id for p in passages],
                "text": [p.text for p in passages],
                "source": [p.source for p in passages],
                "metadata": [json.dumps(p.metadata, ensure_ascii=False) for p in passages],
                "metadata_pairs": [[_pair(k, v) for k, v in p.metadata.items()] for p in passages],
                "content_hash": [p.content_hash() for p in passages],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), self.dim),
            },
            schema=self._schema,
        )
        result = (
            self._table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(batch)
        )
        self._refresh_fts()
        return int(result.num_updated_rows + result.num_inserted_rows)

    def _refresh_fts(self) -> None:
        # LanceDB searches rows added after the index was built by brute force; optimize()
        # folds them into the index (and compacts the small fragments each upsert leaves).
        if any(ix.index_type == "FTS" for ix in self._table.list_indices()):
            self._table.optimize()
        else:
            fts = require("lancedb.index").FTS
            self._table.create_index("text", config=fts(), replace=True)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete passages by id; returns how many existed."""
        deleted = 0
        for start in range(0, len(ids), 1000):  # keeps the SQL predicate a sane size
            chunk = ids[start : start + 1000]
            result = self._table.delete(f"id IN ({', '.join(_sql_str(i) for i in chunk)})")
            deleted += int(result.num_deleted_rows)
        return deleted

    def content_hashes(self) -> dict[str, str]:
        """id -> content hash of every stored passage."""
        n = self.count()
        if n == 0:
            return {}
        rows = self._table.search().select(["id", "content_hash"]).limit(n).to_arrow()
        return dict(zip(rows["id"].to_pylist(), rows["content_hash"].to_pylist(), strict=True))

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
        if k <= 0 or self.count() == 0:
            return []
        if mode == "vector":
            query: Any = self._table.search(query_vector, query_type="vector")
            query = query.distance_type("cosine")
        elif mode == "text":
            query = self._table.search(text, query_type="fts", fts_columns="text")
        else:
            rrf = require("lancedb.rerankers").RRFReranker
            query = self._table.search(query_type="hybrid", fts_columns="text")
            query = query.vector(query_vector).text(text).distance_type("cosine")
            query = query.rerank(rrf())
        if where:
            query = query.where(_where_sql(where), prefilter=True)
        # Naming the score columns (and not narrowing hybrid queries, whose inner vector and
        # text queries would be narrowed too) keeps LanceDB from warning on every query.
        query = query.limit(fetch_size(k))
        if mode != "hybrid":
            score = "_distance" if mode == "vector" else "_score"
            query = query.select(["id", "text", "source", "metadata", score])
        return best_first([Hit(_passage(row), _score(row, mode)) for row in query.to_list()], k)

    def count(self) -> int:
        """Number of stored passages."""
        return int(self._table.count_rows())

    def close(self) -> None:
        """Drop the table handle (LanceDB holds no server connection)."""
        self._table = None  # type: ignore[assignment]
        self._db = None


def _where_sql(where: dict[str, str]) -> str:
    clauses = []
    for key, value in where.items():
        if key in ("id", "source"):
            clauses.append(f"{key} = {_sql_str(str(value))}")
        else:
            clauses.append(f"array_has(metadata_pairs, {_sql_str(_pair(key, str(value)))})")
    return " AND ".join(clauses)


def _passage(row: dict[str, Any]) -> Passage:
    return Passage(
        id=row["id"],
        text=row["text"],
        source=row["source"],
        metadata=json.loads(row["metadata"] or "{}"),
    )


def _score(row: dict[str, Any], mode: str) -> float:
    if mode == "vector":
        return 1.0 - float(row["_distance"])  # cosine distance -> cosine similarity
    if mode == "text":
        return float(row["_score"])  # BM25
    return float(row["_relevance_score"])  # reciprocal-rank fusion
