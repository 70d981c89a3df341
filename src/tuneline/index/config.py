"""Config section for the index stage and the retrieval settings every RAG user shares."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tuneline.config_base import Section

EMBEDDED_EMBEDDER = "embedded:all-minilm-l6-v2"


class RetrievalConfig(Section):
    top_k: int = Field(4, ge=1, le=50, description="Passages put in the prompt per question.")
    mode: Literal["vector", "text", "hybrid"] = Field(
        "hybrid", description="'vector' (embeddings), 'text' (full-text BM25) or 'hybrid' "
        "(both, fused); text and hybrid need LanceDB or a Milvus server with BM25.",
    )
    max_passage_chars: int = Field(
        600, ge=50, description="A longer passage is cut to this many characters in prompts."
    )
    match_question: bool = Field(
        False, description="Put a passage in the prompt only if the question names it: one of "
        "its index.match_fields in full, and the same value as every other candidate the "
        "question names for a field; and it states no other number than one the question "
        "names (another year) (tuneline.rag.matching). No passage left: the prompt says "
        "none was found, and a tuned model declines.",
    )
    min_similarity: float | Literal["auto"] | None = Field(
        None, description="Show a passage only if its cosine similarity to the question (the "
        "index's embedder) reaches this floor, in [-1, 1]; a question left with none is "
        "declined (decline_without_passages). For documents, whose questions retrieval cannot "
        "match by name. 'auto' derives it from the run's training questions "
        "(tuneline.rag.floor): as low as declines at most 1 in 20 of those shown a passage "
        "quoting their reply, and no higher than declines half of them with those passages "
        "left out (docs/rag.md#a-similarity-floor). null: every hit is shown. Curate's "
        "training copies ignore it.",
    )

    @field_validator("min_similarity")
    @classmethod
    def _a_cosine(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not -1 <= value <= 1:
            raise ValueError("a cosine similarity is in [-1, 1]")
        return value

    decline_without_passages: bool = Field(
        True, description="With match_question or min_similarity: when no passage is left, "
        "the +rag variants and the server reply with synthesize.unanswerable.answer instead "
        "of asking the model, which may answer from its prior what retrieval ruled out "
        "(docs/log.md, 2026-12-06). false: the model reads the no-passage prompt.",
    )
    candidates: int = Field(
        20, ge=1, le=200, description="With match_question, how many hits are searched and "
        "matched before the top_k matching ones are kept.",
    )
    scope_margin: float | None = Field(
        0.2, ge=0, le=1, description="With match_question and synthesize.templates: a "
        "question whose shape (the values it names masked: 'Who coached X?') is less similar "
        "to every trained template phrasing than the median phrasing is to its nearest other, "
        "less this margin, gets no passage: it asks something the table does not hold "
        "(tuneline.rag.scope). The margin was chosen on the demo's dev sets, the median on "
        "those of the demo and eight public tables. null: off.",
    )


# Settings only a search at evaluation and serving reads, as `section_hash` excludes: the
# stages that build from the index (index, curate) leave them out of their fingerprints, so
# changing them retrains nothing.
SEARCH_TIME_ONLY = {"index": {"retrieval": {"min_similarity"}}}


class IndexConfig(Section):
    enabled: bool = Field(
        False, description="Build a vector index of the ingested records and documents (stage "
        "'index'); retrieval then serves curate.rag, the evaluate variants base+rag and "
        "tuned+rag, and requests with \"rag\": true.",
    )
    store: Literal["lancedb", "milvus"] = Field(
        "lancedb", description="'lancedb': an embedded store on local disk; 'milvus': Milvus "
        "through pymilvus (a Milvus Lite file, or a server URL such as http://milvus:19530).",
    )
    uri: str | None = Field(
        None, description="Where the store lives: a folder (LanceDB), a .db file (Milvus Lite) "
        "or a server URL. Default: <runs_dir>/<run>/vectors/<store>. It outlives the stage "
        "folder so that re-indexing only embeds new and changed passages.",
    )
    collection: str | None = Field(
        None, description="Table / collection name (default: the run name)."
    )
    embedder: str = Field(
        EMBEDDED_EMBEDDER, description="Sentence-embedding model: 'embedded:all-minilm-l6-v2' "
        "(shipped in a PyPI package), a local sentence-transformers folder, or a cached hub id.",
    )
    batch_size: int = Field(64, ge=1, description="Passages embedded together.")
    sources: list[str] | None = Field(
        None, description="Ingest sources to index (default: all of them)."
    )
    templates: dict[str, str] = Field(
        default_factory=dict, description="Per source, a fact sentence rendered from a record's "
        "fields, e.g. {medallists: '{name} of {country} won {medal_type} in {event}.'}. "
        "Default, for a source synthesize.templates ask about: its key columns, then each "
        "column asked for ('{name}: capital {capital}; region {region}.'); any other source is "
        "rendered as 'field: value' pairs.",
    )
    match_fields: dict[str, list[str]] = Field(
        default_factory=dict, description="Per source, the fields that say what a record is "
        "about, e.g. {medallists: [name, discipline, event, medal_type]}: stored with each "
        "passage, compared with the question by index.retrieval.match_question. Default, "
        "with match_question: per source, the `where` and key columns of the synthesize "
        "templates on it.",
    )
    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig, description="How passages are retrieved."
    )
