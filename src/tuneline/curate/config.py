"""Config sections for the curate stage: PII, dedup, select, balance, splits and exports."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tuneline.config_base import Section


class PiiConfig(Section):
    enabled: bool = Field(True, description="Mask PII in questions and answers.")
    entities: list[Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS"]] = Field(
        default_factory=lambda: ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS"],
        description="Entity types to mask (each becomes <TYPE> in the text).",
    )
    default_region: str = Field(
        "US", description="Region for phone numbers written without a +country code."
    )
    engine: Literal["builtin", "presidio", "auto"] = Field(
        "builtin", description="Recognisers: builtin patterns, Microsoft Presidio's pattern "
        "recognisers (no NLP model; needs tuneline[pii]), or auto (presidio when installed)."
    )


class DedupConfig(Section):
    exact: bool = Field(True, description="Drop facts whose question + answer repeat another's.")
    near: bool = Field(True, description="Drop near-duplicate facts (MinHash LSH).")
    threshold: float = Field(
        0.85, gt=0, le=1, description="Estimated Jaccard similarity (word 3-grams) above which "
        "two facts count as near-duplicates."
    )


class SelectConfig(Section):
    enabled: bool = Field(
        False, description="Train on an informative subset of the training facts (TF-IDF); "
        "validation and evaluation sets are never touched."
    )
    max_facts: int | None = Field(
        None, ge=1, description="Keep at most this many training facts."
    )
    fraction: float | None = Field(
        None, gt=0, le=1, description="Keep this share of the training facts (with "
        "max_facts too, the smaller size wins)."
    )
    rare_term_share: float = Field(
        0.3, ge=0, le=1, description="Share of the kept facts picked to cover rare terms; the "
        "rest are the facts with the highest mean TF-IDF."
    )
    rare_max_df: int = Field(
        2, ge=1, description="A term is rare when at most this many training facts contain it."
    )

    @model_validator(mode="after")
    def _check_size(self) -> SelectConfig:
        if self.enabled and self.max_facts is None and self.fraction is None:
            raise ValueError("select is enabled but has no size: set max_facts or fraction")
        return self


class BalanceConfig(Section):
    enabled: bool = Field(
        False, description="Cap the training facts per category so no category dominates."
    )
    by: Literal["template", "source", "kind"] = Field(
        "template", description="Category of a fact: its template, its ingest source, or its "
        "kind (answerable 'qa' or 'unanswerable')."
    )
    max_per_category: int | None = Field(
        None, ge=1, description="Keep at most this many training facts per category (seeded "
        "sample)."
    )
    strategy: Literal["cap", "equal"] = Field(
        "cap", description="'cap': cut categories above max_per_category; 'equal': cut every "
        "category to the smallest one's size (and to max_per_category when set)."
    )

    @model_validator(mode="after")
    def _check_cap(self) -> BalanceConfig:
        if self.enabled and self.strategy == "cap" and self.max_per_category is None:
            raise ValueError("strategy 'cap' needs max_per_category (or use strategy 'equal')")
        return self


class RaftConfig(Section):
    fraction: float = Field(
        0.0, ge=0, le=1, description="Share of the training questions also given in the RAG "
        "format (question + retrieved passages, gold among distractors); needs index.enabled.",
    )
    min_gold: int = Field(
        64, ge=0, description="Fewest RAG examples answered from their gold passage (trained "
        "and reading facts together) when `fraction` is above 0: on a small table `fraction` is "
        "raised until they are reached or every trained question is used. The decline budget "
        "(max_decline_share) is a share of each format's answers, so with a dozen of them it "
        "kept almost none of the declines that teach the model to say no passage answers.",
    )
    gold_removed: float = Field(
        0.2, ge=0, le=1, description="Share of those RAG examples whose gold passage is taken "
        "out: their answer becomes synthesize.unanswerable.answer, so the model learns to say "
        "so when the context lacks the answer.",
    )
    unanswerable_fraction: float | None = Field(
        None, ge=0, le=1, description="Share of the trained unanswerable questions also given "
        "in the RAG format, with the passages retrieval finds for them (none answers them: "
        "the model learns to decline a context about someone else); default: `fraction`.",
    )
    answer: Literal["template", "passage"] = Field(
        "passage", description="What a RAG example with its gold passage is answered with: "
        "'template', the synthesize answer; 'passage' (the default), the gold passage's own text "
        "(extractive): the model learns to find the passage that answers and copy it, so "
        "choosing a row is decided by the first words it copies (the medal, the event) rather "
        "than by a rewrite; of a passage that lists a row's fields ('entity: label value; "
        "label value.', as `init` writes them) and names two values of the asked column, only "
        "the entity and the fields that state the fact, and then so for every answer of that "
        "template (`rag:field_quoted_for_its_template`: one form per question kind). Served "
        "+rag answers then quote the passage.",
    )
    reading_gold_removed: float = Field(
        0.0, ge=0, le=1, description="Share of the reading facts (synthesize."
        "reading_facts_per_template) trained a second time, the same question with the gold "
        "passage taken out and the abstention as answer, so that answering depends on "
        "reading the passages rather than on the question's shape.",
    )
    conversation_fraction: float = Field(
        0.0, ge=0, le=1, description="Share of the training conversations (synthesize."
        "conversations) also given in the RAG format: the last user turn with the passages "
        "retrieved for it, the reply unchanged; a passage that shares a run of twelve words "
        "with an evaluated reply is left out. Needs index.enabled.",
    )
    conversation_withheld: float = Field(
        0.0, ge=0, le=1, description="Share of those RAG-format conversations shaped as the "
        "evaluated `withheld` set: every passage quoting the reply is left out and the reply "
        "becomes synthesize.unanswerable.answer, so the model learns to say when the "
        "documents do not hold the answer instead of answering from another passage.",
    )

    @property
    def enabled(self) -> bool:
        return self.fraction > 0 or self.conversation_fraction > 0


class CurateConfig(Section):
    normalize: bool = Field(
        True, description="Unicode NFKC, strip control characters, collapse whitespace."
    )
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII redaction.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Duplicate removal.")
    heldout_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of facts never trained on (the 'heldout' eval set)."
    )
    val_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of facts kept for validation loss."
    )
    dev_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of facts (answerable, and of the unanswerable "
        "questions) that form the dev sets (eval/dev/) besides synthesize."
        "dev_facts_per_template: "
        "the same kinds as the test sets on disjoint facts, never trained on. Choose knobs on "
        "them (`evaluate.split: dev`); the test sets are scored once per run."
    )
    recall_dev_fraction: float = Field(
        0.25, ge=0, lt=1, description="Share of the trained facts whose held-back phrasing "
        "is asked in the dev recall set rather than the test one (training is the same "
        "either way)."
    )
    unanswerable_train_fraction: float = Field(
        0.5, ge=0, lt=1,
        description="Share of the unanswerable questions (synthesize.unanswerable) trained on, "
        "teaching abstention; the rest form the 'unanswerable' eval set.",
    )
    reworded_fraction: float = Field(
        0.0, ge=0, le=1, description="Conversations: share of the trained one-question "
        "conversations also asked with their question reworded by a rule ('How can I X?' -> "
        "'Is there a way to X?'; tuneline.curate.rephrase), never trained, in the "
        "reference_recall sets (half test, half dev): does the model answer the question or "
        "only its trained wording? Questions no rule rewords are left out.",
    )
    recall_phrasings: int = Field(
        1, ge=1, description="Phrasings per fact reserved for the 'recall' eval set."
    )
    max_decline_share: float = Field(
        1 / 3, gt=0, le=1,
        description="Most of the training chats of one format (bare questions; questions with "
        "passages) that may decline: beyond it, declines (unanswerable, absent attribute, "
        "other qualifier, gold removed...) are thinned at random in proportion across their "
        "routes (`dropped:decline_budget:<route>`). A model trained on as many declines as "
        "answers declines what it knows. 1 keeps them all. A question whose context says no "
        "passage was found is not counted here (see no_passage_declines_per_answer).",
    )
    no_passage_declines_per_answer: float | None = Field(
        1.0, gt=0, description="Most declines where retrieval found no passage (invented "
        "entities, gold removed with nothing left) per answer given with passages; beyond it "
        "they are thinned like the others. Their number follows the invented entities, not the "
        "table's size: on an 11-row table they outnumbered the passage answers three to one "
        "and the retrieval model declined with the gold passage in front of it. null keeps "
        "them all.",
    )
    select: SelectConfig = Field(
        default_factory=SelectConfig, description="Informative subset of the training facts."
    )
    balance: BalanceConfig = Field(
        default_factory=BalanceConfig, description="Per-category cap on the training facts "
        "(applied after select)."
    )
    rag: RaftConfig = Field(
        default_factory=RaftConfig, description="Retrieval-aware (RAFT-style) training examples."
    )
    exports: list[Literal["openai", "bedrock", "hf"]] = Field(
        default_factory=lambda: ["openai"],
        description="Formats to write: 'openai' (train/val/test.jsonl, always written: the "
        "trainer reads it), 'bedrock' (bedrock/train.jsonl, bedrock/validation.jsonl), "
        "'hf' (hf/: Parquet splits + README, for datasets.load_dataset).",
    )
    bedrock_format: Literal["conversation", "prompt_completion"] = Field(
        "conversation", description="Bedrock records: 'conversation' (bedrock-conversation-2024, "
        "Amazon Nova) or 'prompt_completion' (Titan, Llama, Cohere text models)."
    )
    bedrock_strict: bool = Field(
        False, description="Fail when the Bedrock export breaks a documented Bedrock limit; "
        "otherwise count the problems as `bedrock_warning:<rule>`."
    )
    card: bool = Field(
        True, description="Write dataset_card.md (and card/*.png plots when matplotlib is "
        "installed)."
    )
