"""The prompts drift compares: the questions a run trained on, and a file of live ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tuneline.errors import DataError

_QUESTION = "\n\nQuestion: "  # where a RAG-format user message puts the question


def question_of(messages: Sequence[dict[str, str]]) -> str:
    """The user's question: the last user turn, without the passages RAG put before it
    ("" when there is no user turn)."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return user.rsplit(_QUESTION, 1)[-1].strip()


def training_questions(train_jsonl: Path) -> list[str]:
    """The user's question of every training chat (the question of a RAG-format message, not
    its passages): what the model was taught to answer."""
    questions = [question_of(json.loads(line)["messages"])
                 for line in train_jsonl.read_text(encoding="utf-8").splitlines()]
    return [q for q in questions if q]


def live_questions(path: Path) -> list[str]:
    """Questions from a file of live traffic: JSONL with "question", "prompt" or OpenAI
    "messages" (the last user turn) per line, or plain text, one question per line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix.lower() != ".jsonl":
        return [line.strip() for line in lines]
    questions = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from None
        text = row.get("question") or row.get("prompt") if isinstance(row, dict) else None
        if text is None and isinstance(row, dict) and isinstance(row.get("messages"), list):
            text = next((m.get("content") for m in reversed(row["messages"])
                         if isinstance(m, dict) and m.get("role") == "user"), None)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{number}: no question (a 'question', 'prompt' or "
                            "'messages' field with a user turn)")
        questions.append(text.strip())
    return questions
