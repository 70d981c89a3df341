"""The nearest trained reply: a baseline for free-text sets that no model computes.

For each question of a free-text set (reference, reference_recall), the reply of the training
conversation whose question is nearest to it under the index's embedder. Scored like a variant
(`nearest_trained`), it is what reciting the training set gives: a closed-book model below it
has learned less than a lookup; on reference_recall (trained questions reworded) it is the
trained reply itself, the most recitation can score. On the Python FAQ's held-out questions
even the best trained reply, picked knowing the reference, scores ROUGE-L 0.17
(docs/log.md, 2026-12-06 afternoon)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneline.artifacts import read_jsonl
from tuneline.errors import MissingDependencyError
from tuneline.rag.prompt import question_of

NEAREST_TRAINED = "nearest_trained"

__all__ = ["NEAREST_TRAINED", "last_question", "lookup_replies", "nearest_trained_replies",
           "trained_replies"]


def lookup_replies(questions: Sequence[str | None], train_file: Path, embedder: str,
                   details: dict[str, Any]) -> list[str | None] | None:
    """The nearest trained reply to each question (None: not a free-text item); None when
    nothing is asked, or without the rag extra's embedder (the reason in details)."""
    if all(q is None for q in questions):
        return None
    from tuneline.rag.embed import Embedder

    try:
        embed = Embedder(embedder).embed
    except MissingDependencyError as exc:
        details.setdefault("skipped_metrics", {})[NEAREST_TRAINED] = str(exc)
        return None
    return nearest_trained_replies(questions, trained_replies(train_file), embed)


def last_question(messages: Sequence[dict[str, Any]]) -> str | None:
    """The last user turn's question (RAG instruction and passages removed), if any."""
    users = [m for m in messages if m.get("role") == "user"]
    return question_of(str(users[-1]["content"])) if users else None


def trained_replies(train_file: Path) -> dict[str, str]:
    """Each training conversation's question (its last user turn before the final reply) and
    that reply; a question trained twice (plain and with passages) keeps its first reply."""
    replies: dict[str, str] = {}
    for row in read_jsonl(train_file):
        messages = row.get("messages") or []
        if not messages or messages[-1].get("role") != "assistant":
            continue
        question = last_question(messages[:-1])
        if question is not None:
            replies.setdefault(question, str(messages[-1]["content"]))
    return replies


def nearest_trained_replies(questions: Sequence[str | None], trained: dict[str, str],
                            embed: Any) -> list[str | None]:
    """For each question (None: not asked), the reply of the most similar trained question.

    `embed` maps texts to L2-normalised vectors (tuneline.rag.embed.Embedder.embed)."""
    asked = [i for i, q in enumerate(questions) if q is not None]
    replies: list[str | None] = [None] * len(questions)
    if not asked or not trained:
        return replies
    keys = list(trained)
    known = embed(keys)
    wanted = embed([str(questions[i]) for i in asked])
    for i, row in zip(asked, (wanted @ known.T).argmax(axis=1), strict=True):
        replies[i] = trained[keys[int(row)]]
    return replies
