"""Config sections for the synthesize stage: templates, LLM endpoint, paraphrase, abstention."""

from __future__ import annotations

from pydantic import Field, model_validator

from tuneline.config_base import Section
from tuneline.llm.config import LlmEndpointConfig

# Reading practice per template when a config with RAG training sets none (init's and the
# demo's: tuned+rag heldout 100 on the demo and >= 90 on the public panel's medians).
READING_FACTS_PER_TEMPLATE = 40


class TemplateConfig(Section):
    name: str = Field(description="Template id, kept on every pair it makes.")
    source: str = Field(description="Name of the ingest source whose rows fill the template.")
    where: dict[str, str] = Field(
        default_factory=dict, description="Keep only rows whose column equals this value."
    )
    questions: list[str] = Field(
        min_length=2,
        description="Question phrasings with {column} placeholders. The last "
        "`curate.recall_phrasings` are never trained on: they probe recall.",
    )
    answer: str = Field(description="Full-sentence answer template containing the fact.")
    fact: str = Field(description="The fact the answer must contain, e.g. '{name}'.")
    key: str | None = Field(
        None,
        description="What the question is about, e.g. '{event}'. Rows sharing a key with "
        "different facts are ambiguous and dropped. Default: the question's placeholders.",
    )


class LlmSynthesisConfig(Section):
    enabled: bool = Field(False, description="Generate extra Q&A pairs with an LLM.")
    endpoint: LlmEndpointConfig | None = Field(
        None, description="The OpenAI-compatible endpoint that writes the pairs."
    )
    sources: list[str] = Field(
        default_factory=list, description="Ingest sources to draw rows from (default: all)."
    )
    rows_per_prompt: int = Field(8, ge=1, le=100, description="Table rows shown per prompt.")
    pairs_per_prompt: int = Field(6, ge=1, le=100, description="Q&A pairs asked per prompt.")
    questions_per_pair: int = Field(
        3, ge=2, le=10,
        description="Phrasings asked per pair; pairs with fewer than curate.recall_phrasings + 1 "
        "are rejected (some phrasings train, the rest probe recall).",
    )
    max_prompts: int | None = Field(
        None, ge=1, description="Stop after this many prompts (default: every row once)."
    )
    min_fuzzy_ratio: float = Field(
        0.9, gt=0, le=1,
        description="Grounding: how closely (difflib ratio, after normalisation) a claimed "
        "fact must match a cell of its source row.",
    )
    system_prompt: str | None = Field(
        None, description="Replace the built-in instructions (must ask for the same JSON lines)."
    )

    @model_validator(mode="after")
    def _needs_endpoint(self) -> LlmSynthesisConfig:
        if self.enabled and self.endpoint is None:
            raise ValueError("llm.enabled needs llm.endpoint (base_url and model)")
        return self


class UnanswerableConfig(Section):
    per_template: int = Field(
        0, ge=0, description="Questions per template about invented entities that the table "
        "does not contain (keys recombined from real values); 0 turns them off.",
    )
    answer: str = Field(
        "I don't have information about that in my data.",
        description="The abstention answer trained and expected for them.",
    )
    out_of_data: bool | None = Field(
        None, description="Also ask about the sampled facts' real entities what the data "
        "cannot answer: an attribute no column holds (absent_attribute) and the template's "
        "questions with a qualifier outside the data, its year shifted (other_qualifier); and "
        "name people by a variant of their name (variant_name, answerable). Unset: on when "
        "per_template > 0.",
    )
    attributes: list[str] = Field(
        default_factory=list, description="Your own absent-attribute questions, added to the "
        "packaged ones; {entity} is the entity's key values, or use the key's placeholders, "
        "e.g. 'Who coached {name}?'.",
    )
    qualifiers: dict[str, list[str]] = Field(
        default_factory=dict, description="Qualifiers to swap for ones outside the data, e.g. "
        "{'Paris 2024': ['Tokyo 2020', 'London 2012']}; a question without one has its years "
        "shifted instead.",
    )

    @property
    def builds_out_of_data(self) -> bool:
        return self.per_template > 0 if self.out_of_data is None else self.out_of_data


class ParaphraseConfig(Section):
    per_template: int = Field(
        0, ge=0, le=20,
        description="Extra question phrasings per template written by the synthesize.llm "
        "endpoint (one request per template; {placeholders} must survive intact); 0: off.",
    )


class ConversationConfig(Section):
    """How one ingest source becomes conversations: a `chat` source as it is; a table as one
    exchange per row (prompt, response) or as threads of rows (thread, content, role)."""

    source: str = Field(description="Name of the ingest source (a table, a SQL query, or a "
                        "`format: chat` conversation file).")
    prompt: str | None = Field(
        None, description="Single turn: the column holding the user's message.")
    response: str | None = Field(
        None, description="Single turn: the column holding the assistant's reply.")
    thread: str | None = Field(
        None, description="Threads: the column that identifies a conversation (a ticket id); "
        "its rows, in `order`, are the turns.")
    order: str | None = Field(
        None, description="Threads: the column that orders a thread's rows (a timestamp or a "
        "number, compared as numbers when every value is one); default: source order.")
    role: str | None = Field(
        None, description="Threads: the column saying who wrote the row (author type).")
    content: str | None = Field(
        None, description="Threads: the column holding the message text.")
    roles: dict[str, str] = Field(
        default_factory=lambda: {"user": "user", "assistant": "assistant"},
        description="Threads: `role` values mapped to chat roles (user, assistant, system; "
        "`skip` leaves those rows out, e.g. internal notes). A value not listed is an error "
        "naming the row.")
    system: str | None = Field(
        None, description="A system prompt put first in every conversation of this source "
        "(one the data already has is kept instead).")
    group: str | None = Field(
        None, description="A column grouping conversations (a customer id): curate keeps a "
        "group's conversations in one split, so nothing about a customer seen in training "
        "is evaluated.")

    @model_validator(mode="after")
    def _one_mapping(self) -> ConversationConfig:
        single = (self.prompt, self.response)
        threads = (self.thread, self.role, self.content)
        if any(single) and any(threads):
            raise ValueError("give either prompt and response (one exchange per row) or "
                             "thread, role and content (threads of rows), not both")
        if any(single) and not all(single):
            raise ValueError("a single-turn mapping needs both prompt and response")
        if any(threads) and not all(threads):
            missing = [n for n, v in zip(("thread", "role", "content"), threads,
                                         strict=True) if not v]
            raise ValueError(f"a thread mapping needs thread, role and content; missing: "
                             f"{', '.join(missing)}")
        if self.order and not self.thread:
            raise ValueError("order applies to a thread mapping (set thread, role, content)")
        bad = sorted(v for v in self.roles.values()
                     if v not in ("user", "assistant", "system", "skip"))
        if bad:
            raise ValueError(f"roles map to user, assistant, system or skip; got {bad}")
        return self

    @property
    def mapping(self) -> str:
        """'chat' (a conversation file), 'single' or 'thread'."""
        return "single" if self.prompt else "thread" if self.thread else "chat"


class DocumentQaConfig(Section):
    """LLM-written question-answer pairs grounded in document chunks (taught as
    conversations)."""

    enabled: bool = Field(False, description="Ask the endpoint for pairs about each chunk.")
    endpoint: LlmEndpointConfig | None = Field(
        None, description="The OpenAI-compatible endpoint that writes the pairs.")
    sources: list[str] = Field(
        default_factory=list, description="Ingest sources of document chunks (text, markdown, "
        "rst, html or pdf, read without faq).")
    pairs_per_chunk: int = Field(3, ge=1, le=20, description="Pairs asked per chunk.")
    max_chunks: int | None = Field(
        None, ge=1, description="Send at most this many chunks (a seeded sample; default: "
        "all).")
    min_chunk_chars: int = Field(
        200, ge=0, description="Chunks shorter than this are not sent (headings, fragments).")
    min_answer_overlap: float = Field(
        0.6, ge=0, le=1, description="Grounding: share of the answer's content words that "
        "must occur in the chunk (its evidence must be a quote of the chunk in any case).")
    system: str | None = Field(
        None, description="A system prompt put first in every conversation made from them.")

    @model_validator(mode="after")
    def _needs_endpoint_and_sources(self) -> DocumentQaConfig:
        if self.enabled and (self.endpoint is None or not self.sources):
            raise ValueError("documents.enabled needs documents.endpoint (base_url and model) "
                             "and documents.sources")
        return self


class SynthesizeConfig(Section):
    templates: list[TemplateConfig] = Field(
        default_factory=list, description="Question/answer templates over ingested tables."
    )
    max_facts_per_template: int | None = Field(
        None, ge=1, description="Sample at most this many facts per template (seeded)."
    )
    dev_facts_per_template: int = Field(
        20, ge=0, description="With max_facts_per_template, also sample this many facts per "
        "template from the rows left over, and as many extra invented entities, for the dev "
        "sets only (with their out-of-data questions): never trained, never in the test sets, "
        "and kept out of every training message like the test facts. Knobs are chosen on "
        "the dev sets, which then hold enough questions to tell two settings apart, at no "
        "training cost (the demo run does not score them; `evaluate.split: dev` does).",
    )
    reading_facts_per_template: int | dict[str, int] | None = Field(
        None, description="Also sample this many facts per template from rows no other fact "
        "uses, as retrieval-reading practice: curate turns each into one RAG-format training "
        "example (needs curate.rag) and never evaluates or trains them without passages. A "
        "mapping gives a count per template name (templates left out get none). Unset: "
        f"{READING_FACTS_PER_TEMPLATE} per template when curate.rag trains RAG examples "
        "(fraction > 0), none otherwise; a table with fewer unused rows gives what it has.",
    )
    auto_templates: bool = Field(
        False, description="When true, tables that no template names get suggested templates "
        "(the ones `tuneline synthesize --suggest` prints)."
    )
    paraphrase: ParaphraseConfig = Field(
        default_factory=ParaphraseConfig,
        description="LLM-written question phrasings added to each template.",
    )
    unanswerable: UnanswerableConfig = Field(
        default_factory=UnanswerableConfig,
        description="Abstention examples: template questions about entities not in the data.",
    )
    llm: LlmSynthesisConfig = Field(
        default_factory=LlmSynthesisConfig,
        description="LLM-written Q&A pairs from batches of rows, grounding-checked.",
    )
    documents: DocumentQaConfig = Field(
        default_factory=DocumentQaConfig,
        description="LLM-written question-answer pairs grounded in document chunks (the "
        "evidence a quote of the chunk, the answer's words in it, the question standing "
        "alone), as conversations; rejections counted by reason.",
    )
    conversations: list[ConversationConfig] = Field(
        default_factory=list,
        description="Sources taught as conversations (support tickets, chat logs, an existing "
        "chat JSONL): curate splits them by thread, trains on most and evaluates the last "
        "assistant turn of the held-out ones (eval set 'reference', graded by ROUGE-L, "
        "embedding similarity and token F1).",
    )

    @model_validator(mode="after")
    def _reading_counts_are_counts(self) -> SynthesizeConfig:
        counts = self.reading_facts_per_template
        values = counts.values() if isinstance(counts, dict) else [counts or 0]
        if any(n < 0 for n in values):
            raise ValueError("reading_facts_per_template: counts must be >= 0")
        return self

    @model_validator(mode="after")
    def _paraphrase_needs_endpoint(self) -> SynthesizeConfig:
        if self.paraphrase.per_template and self.llm.endpoint is None:
            raise ValueError("paraphrase.per_template needs synthesize.llm.endpoint to write "
                             "the phrasings")
        return self
