"""Retrieval over the index stage's store: embed questions in batches, search, return hits."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError
from tuneline.index.config import IndexConfig
from tuneline.rag.matching import FieldValues, matching_hits
from tuneline.rag.passages import Hit, Passage

if TYPE_CHECKING:
    from tuneline.rag.floor import DerivedFloor

INDEX_INFO = "index.json"
# The index stage's list of every match field value (for index.retrieval.match_question).
MATCH_VALUES = "match_values.json"


def store_location(cfg: PipelineConfig) -> tuple[str, str]:
    """(uri, collection) of the run's vector store; it lives outside the stage folder."""
    index = cfg.index
    uri = index.uri
    if uri is None:
        folder = cfg.run.runs_dir / cfg.run.name / "vectors"
        uri = str(folder / ("milvus.db" if index.store == "milvus" else "lancedb"))
    collection = index.collection or re.sub(r"\W", "_", cfg.run.name)
    if not re.match(r"[A-Za-z_]", collection):
        collection = f"t_{collection}"
    return uri, collection


def is_local_uri(uri: str) -> bool:
    return "://" not in uri


class Retriever:
    """Questions in, the top-k passages of each out (best first)."""

    def __init__(self, index: IndexConfig, uri: str, collection: str, embedder: Any = None,
                 known: FieldValues | None = None, template_questions: Sequence[str] = ()):
        from tuneline.rag.embed import Embedder
        from tuneline.rag.stores import open_store

        self.settings = index.retrieval
        self.known = known
        # What the +rag variants and the server reply when no passage is left (for_run).
        self.no_passage_reply: str | None = None
        self._lock = threading.Lock()  # server threads share one embedder and connection
        self._passage_vectors: dict[str, Any] = {}  # by text, for min_similarity
        floor = self.settings.min_similarity
        self._floor: float | None = floor if isinstance(floor, float) else None
        # min_similarity 'auto': derived on the first floored search (derived_floor) from
        # these training chats and the abstention they decline with (for_run sets them).
        self.floor_source: tuple[Path, str] | None = None
        self.derived_floor: DerivedFloor | None = None
        self._floor_lock = threading.Lock()
        self.embedder = embedder or Embedder(index.embedder, index.batch_size)
        self.scope = None
        margin = self.settings.scope_margin
        if known is not None and margin is not None and len(set(template_questions)) > 1:
            from tuneline.rag.scope import ScopeGate

            self.scope = ScopeGate(self.embedder, template_questions, known, margin)
        self.store = open_store(index.store, uri, collection, self.embedder.dim)
        if self.store.count() == 0:
            raise ConfigError([f"index: the store {uri} (collection {collection!r}) is empty; "
                               "run `tuneline index` (or `tuneline run`) first"])

    @classmethod
    def for_run(cls, cfg: PipelineConfig) -> Retriever:
        if not cfg.index.enabled:
            raise ConfigError(["retrieval needs index.enabled: true (and an index built by "
                               "`tuneline index`)"])
        uri, collection = store_location(cfg)
        if is_local_uri(uri) and not Path(uri).exists():
            raise ConfigError([f"index: no vector store at {uri}; run `tuneline index` first"])
        retriever = cls(cfg.index, uri, collection, known=_known_values(cfg),
                        template_questions=_trained_phrasings(cfg))
        retriever.no_passage_reply = no_passage_reply(cfg)
        if cfg.index.retrieval.min_similarity == "auto":
            retriever.floor_source = (cfg.run.runs_dir / cfg.run.name / "curate" / "train.jsonl",
                                      cfg.synthesize.unanswerable.answer)
        return retriever

    def similarity_floor(self) -> float | None:
        """The floor floored searches apply: index.retrieval.min_similarity, or the one
        'auto' derives from the run's training questions (once, on first use)."""
        if self.settings.min_similarity != "auto":
            return self._floor
        with self._floor_lock:
            if self.derived_floor is None:
                from tuneline.rag.floor import derive_floor

                if self.floor_source is None or not self.floor_source[0].is_file():
                    where = self.floor_source[0] if self.floor_source else "the run's curate"
                    raise ConfigError([f"index.retrieval.min_similarity: auto derives the floor "
                                       f"from the training questions in {where}, which is "
                                       "missing; run `tuneline curate` first or set a number"])
                self.derived_floor = derive_floor(self, *self.floor_source)
                self._floor = self.derived_floor.value
        return self._floor

    def search(self, questions: Sequence[str], k: int | None = None,
               floor: bool = True) -> list[list[Hit]]:
        """The top-k hits of every question (k defaults to index.retrieval.top_k); with
        `floor`, only those reaching index.retrieval.min_similarity."""
        if not questions:
            return []
        return self.search_embedded(questions, self.embed(questions), k, floor)

    def embed(self, texts: Sequence[str]) -> Any:
        """The embeddings of `texts` (server threads share the embedder)."""
        with self._lock:
            return self.embedder.embed(list(texts))

    def search_embedded(self, questions: Sequence[str], vectors: Any,
                        k: int | None = None, floor: bool = True) -> list[list[Hit]]:
        """`search` with the questions' embeddings already computed."""
        k = k or self.settings.top_k
        matching = self.settings.match_question
        searched = max(k, self.settings.candidates) if matching else k
        with self._lock:
            found = [self.store.search(vector, searched, text=question, mode=self.settings.mode)
                     for question, vector in zip(questions, vectors, strict=True)]
        if matching:
            in_scope = [True] * len(questions)
            if self.scope is not None:
                with self._lock:
                    in_scope = self.scope.in_scope(questions)
            found = [matching_hits(question, hits, self.known)[:k] if scoped else []
                     for question, hits, scoped in zip(questions, found, in_scope, strict=True)]
        minimum = self.similarity_floor() if floor else None
        if minimum is not None:
            found = [[h for h, similarity in zip(hits, scores, strict=True)
                      if similarity >= minimum]
                     for hits, scores in zip(found, self.similarities(vectors, found),
                                             strict=True)]
        return found

    def similarities(self, vectors: Any, found: Sequence[Sequence[Hit]]) -> list[list[float]]:
        """The cosine similarity of each hit's passage to its question (`vectors`, one per
        list of hits). A vector search's score is that cosine; other modes score otherwise
        (BM25, fused ranks), so their passages are embedded afresh, as the index stage
        embedded them."""
        if self.settings.mode == "vector":
            return [[h.score for h in hits] for hits in found]
        embedded = self._passage_vectors
        with self._lock:  # each passage is embedded once per retriever, not once per search
            new = list(dict.fromkeys(h.passage.text for hits in found for h in hits
                                     if h.passage.text not in embedded))
            if new:
                embedded.update(zip(new, self.embedder.embed(new), strict=True))
        return [[float(vector @ embedded[h.passage.text]) for h in hits]
                for vector, hits in zip(vectors, found, strict=True)]

    def find(self, vector: Any, where: dict[str, str]) -> Passage | None:
        """The stored passage matching `where` (e.g. a gold record's source, file and line)."""
        hits = self.store.search(vector, 1, mode="vector", where=where)
        return hits[0].passage if hits else None

    def close(self) -> None:
        self.store.close()


def no_passage_reply(cfg: PipelineConfig) -> str | None:
    """The reply to a question retrieval kept no passage for (by name or by the similarity
    floor), given without the model (index.retrieval.decline_without_passages); None: the
    model reads the no-passage prompt."""
    retrieval = cfg.index.retrieval
    ruling_out = retrieval.match_question or retrieval.min_similarity is not None
    if not (ruling_out and retrieval.decline_without_passages):
        return None
    return cfg.synthesize.unanswerable.answer


def _trained_phrasings(cfg: PipelineConfig) -> list[str]:
    """The template phrasings training uses (the held-back recall ones left out)."""
    held_back = cfg.curate.recall_phrasings
    return [q for t in cfg.synthesize.templates for q in t.questions[:-held_back]]


def _known_values(cfg: PipelineConfig) -> FieldValues | None:
    """The match field values the index stage listed; None when matching is off."""
    if not cfg.index.retrieval.match_question:
        return None
    path = cfg.run.runs_dir / cfg.run.name / "index" / MATCH_VALUES
    if not path.exists():
        raise ConfigError([f"index.retrieval.match_question: {path} is missing; run "
                           "`tuneline index` with index.match_fields set"])
    return FieldValues(json.loads(path.read_text(encoding="utf-8")))
