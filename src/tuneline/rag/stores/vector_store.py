"""The VectorStore protocol shared by the LanceDB and Milvus stores, and their input checks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from tuneline.errors import ConfigError, DataError
from tuneline.rag.passages import Hit, Passage

if TYPE_CHECKING:
    import numpy

SearchMode = Literal["vector", "text", "hybrid"]
StoreKind = Literal["lancedb", "milvus"]
SEARCH_MODES: tuple[str, ...] = ("vector", "text", "hybrid")
# Extra hits a search fetches so that passages tied at the k-th place are all seen.
TIE_MARGIN = 8


def fetch_size(k: int) -> int:
    """How many hits to ask the engine for, to keep the k best (best_first)."""
    return k + TIE_MARGIN


def best_first(hits: Sequence[Hit], k: int) -> list[Hit]:
    """The k best hits, ties in the natural order of their ids (row 8 before row 79).

    Engines return tied passages in an order that changes from one process to the next (BM25
    ties rows that differ only in words the question lacks, "Silver Medal in Fencing, Women's
    Sabre Individual" and "Bronze Medal ..."), and the RAG prompts built from them, so the
    curated data, changed between two runs of one config (docs/log.md, 2026-12-05 (night))."""
    return sorted(hits, key=lambda hit: (-hit.score, _natural_key(hit.passage.id)))[:k]


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    return [(1, int(part)) if part.isdigit() else (0, part)
            for part in re.split(r"(\d+)", text) if part]


class VectorStore(Protocol):
    """A collection of passages with their embeddings; ids are unique."""

    def upsert(self, passages: Sequence[Passage], vectors: numpy.ndarray) -> int:
        """Insert passages, or replace those whose id is stored; returns the count written."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Delete passages by id; returns how many were stored (unknown ids are ignored)."""
        ...

    def content_hashes(self) -> dict[str, str]:
        """id -> `Passage.content_hash()` of every stored passage (for incremental indexing)."""
        ...

    def search(
        self,
        vector: numpy.ndarray,
        k: int,
        *,
        text: str | None = None,
        mode: SearchMode = "vector",
        where: dict[str, str] | None = None,
    ) -> list[Hit]:
        """The k best passages, best first.

        Args:
            vector: The query embedding (ignored, may be None, in mode "text").
            k: How many hits at most.
            text: The query text, for modes "text" and "hybrid".
            mode: "vector" (cosine), "text" (BM25 full-text) or "hybrid" (both, fused by RRF).
            where: Equality filters, all of which must hold: key ``source`` or ``id`` filters
                that column, any other key a metadata entry.
        """
        ...

    def count(self) -> int:
        """Number of stored passages."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def check_upsert(
    collection: str, dim: int, passages: Sequence[Passage], vectors: numpy.ndarray
) -> numpy.ndarray:
    """Validate an upsert batch; returns the vectors as a C-contiguous float32 (n, dim) array."""
    import numpy as np

    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DataError(
            f"vector store collection {collection!r} holds {dim}-dimensional vectors but got "
            f"an array of shape {arr.shape} (dim {arr.shape[-1] if arr.ndim else 0}); "
            "embed with the model the collection was built with, or use a new collection."
        )
    if arr.shape[0] != len(passages):
        raise DataError(
            f"upsert into {collection!r}: {len(passages)} passages but {arr.shape[0]} vectors"
        )
    ids = [p.id for p in passages]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DataError(f"upsert into {collection!r}: duplicate passage ids {dupes}")
    for p in passages:
        bad = {k: v for k, v in p.metadata.items() if not isinstance(v, str)}
        if bad or not p.id:
            raise DataError(
                f"passage {p.id!r}: id must be non-empty and metadata values strings, got {bad}"
            )
    return arr


def check_query(
    collection: str,
    dim: int,
    vector: numpy.ndarray | None,
    text: str | None,
    mode: str,
) -> list[float] | None:
    """Validate search arguments; returns the query vector as a list (None in mode "text")."""
    import numpy as np

    if mode not in SEARCH_MODES:
        raise ConfigError([f"search mode {mode!r} is not one of {list(SEARCH_MODES)}"])
    if mode in ("text", "hybrid") and not (text and text.strip()):
        raise ConfigError([f"search mode {mode!r} needs the query text (text=...)"])
    if mode == "text":
        return None
    if vector is None:
        raise ConfigError([f"search mode {mode!r} needs a query vector"])
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if arr.shape[0] != dim:
        raise DataError(
            f"vector store collection {collection!r} holds {dim}-dimensional vectors but the "
            f"query vector has dim {arr.shape[0]}; embed the query with the collection's model."
        )
    return arr.tolist()
