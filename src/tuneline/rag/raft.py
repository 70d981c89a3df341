"""Retrieval-aware training examples (RAFT-style): a question with the passages retrieval would
give it, the gold passage among distractors, or taken out so that the answer is to say the
information is not available."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tuneline.config import PipelineConfig
from tuneline.data.export import chat_example
from tuneline.data.templates import Fact
from tuneline.rag.passages import Passage
from tuneline.rag.prompt import rag_user_message
from tuneline.rag.records import gold_provenance, provenance
from tuneline.rag.retrieve import Retriever


def raft_examples(cfg: PipelineConfig, facts: list[Fact], phrasings: slice,
                  retriever: Retriever, reading: list[Fact] | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """RAG-format chats for curate.rag.fraction of the trained (fact, question) pairs and one
    for each reading fact, and counts by kind: `rag:gold` (answer from the gold passage),
    `rag:gold_removed` and `rag:no_gold` (unanswerable questions; both answer with the
    abstention sentence)."""
    raft = cfg.curate.rag
    rng = random.Random(cfg.run.seed)
    pairs = [(fact, question) for fact in facts for question in fact.questions[phrasings]]
    chosen = rng.sample(pairs, round(raft.fraction * len(pairs)))
    # A fact the model never saw without passages: it can only answer by reading.
    chosen += [(fact, rng.choice(fact.questions[phrasings])) for fact in reading or []]
    if not chosen:
        return [], {}
    k = cfg.index.retrieval.top_k
    questions = [question for _, question in chosen]
    vectors = retriever.embedder.embed(questions, progress=True)
    found = retriever.search_embedded(questions, vectors, k + 1)
    examples, kinds = [], Counter()
    for (fact, question), hits, vector in zip(chosen, found, vectors, strict=True):
        gold_at = gold_provenance({"source": fact.source}) if fact.kind != "unanswerable" else None
        others = [h.passage for h in hits if provenance(h.passage) != gold_at][:k]
        if gold_at is None:
            kind, passages, answer = "no_gold", others, fact.answer
        elif rng.random() < raft.gold_removed:
            kind, passages, answer = "gold_removed", others, cfg.synthesize.unanswerable.answer
        else:
            gold = _gold_passage(retriever, vector, gold_at, hits)
            if gold is None:
                kinds["skipped:gold_not_indexed"] += 1
                continue
            kind, passages, answer = "gold", _insert(others[: k - 1], gold, rng), fact.answer
        content = rag_user_message(question, passages, cfg.index.retrieval.max_passage_chars)
        examples.append(chat_example(content, answer))
        kinds[f"rag:{kind}"] += 1
    return examples, dict(kinds)


def _gold_passage(retriever: Retriever, vector: Any, gold_at: tuple[str, str, str],
                  hits: list[Any]) -> Passage | None:
    for hit in hits:
        if provenance(hit.passage) == gold_at:
            return hit.passage
    source, file, line = gold_at
    return retriever.find(vector, {"source": source, "file": file, "line": line})


def _insert(passages: list[Passage], gold: Passage, rng: random.Random) -> list[Passage]:
    """The gold passage at a random position, so the model cannot learn 'always the first'."""
    placed = list(passages)
    placed.insert(rng.randrange(len(placed) + 1), gold)
    return placed
