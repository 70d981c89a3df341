"""Passages (what a vector store holds) and search hits; pure Python."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Passage:
    """A piece of text with provenance, the unit a vector store indexes and returns.

    Attributes:
        id: Stable id, unique in a store, e.g. ``"medallists:L484"``.
        text: The text that is embedded and shown to the model.
        source: Source name (provenance), e.g. ``"medallists"``.
        metadata: String-valued extras, e.g. ``{"file": "medallists.csv", "line": "484"}``;
            a store can filter on any key.
    """

    id: str
    text: str
    source: str
    # hash=False keeps Passage hashable although dicts are not
    metadata: dict[str, str] = field(default_factory=dict, hash=False)

    def content_hash(self) -> str:
        """First 16 hex digits of the sha256 of text, source and sorted metadata.

        Two passages with the same id and hash need no re-embedding.
        """
        payload = json.dumps(
            [self.text, self.source, sorted(self.metadata.items())], ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        passage: The stored passage.
        score: Higher is better: cosine similarity for vector search, BM25 for text search,
            the store's fused (reciprocal-rank) score for hybrid search.
    """

    passage: Passage
    score: float
