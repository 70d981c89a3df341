"""Turn facts into OpenAI chat JSONL examples and evaluation questions."""

from __future__ import annotations

from typing import Any

from tuneline.data.templates import Fact


def chat_example(question: str, answer: str) -> dict[str, Any]:
    """One OpenAI chat fine-tuning example (only the `messages` key, as OpenAI requires)."""
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def chat_examples(facts: list[Fact], phrasings: slice) -> list[dict[str, Any]]:
    """Chat examples for the selected phrasings of every fact."""
    return [chat_example(q, f.answer) for f in facts for q in f.questions[phrasings]]


def eval_items(facts: list[Fact], phrasings: slice, set_name: str) -> list[dict[str, Any]]:
    """Evaluation questions with their reference answer and the fact to look for."""
    return [
        {
            "id": f"{set_name}-{fact.fact_id}-{i}",
            "set": set_name,
            "question": question,
            "reference": fact.answer,
            "fact": fact.fact,
            "fact_id": fact.fact_id,
            "template": fact.template,
            "source": fact.source,
        }
        for fact in facts
        for i, question in enumerate(fact.questions[phrasings])
    ]
