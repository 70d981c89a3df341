"""The nearest trained reply (evaluate/lookup.py): the baseline a closed-book model must beat
on free-text sets, found from the training conversations' questions, passages or not."""

from __future__ import annotations

import json

import pytest

from tuneline.evaluate.lookup import last_question, nearest_trained_replies, trained_replies
from tuneline.rag.passages import Passage
from tuneline.rag.prompt import rag_messages

SYSTEM = {"role": "system", "content": "You are a Python expert."}
RESET = "Hold the reset button for 15 seconds."
INVOICE = "Invoices are under Billing, then History."


def _write(path, conversations):
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations))
    return path


def test_trained_replies_key_each_reply_by_its_question_without_passages(tmp_path):
    plain = [SYSTEM, {"role": "user", "content": "How do I reset the router?"},
             {"role": "assistant", "content": RESET}]
    with_passages = [*rag_messages(plain[:2], [Passage("kb-1", "Reset: hold 15 s.", "kb")]),
                     {"role": "assistant", "content": "Something else."}]
    thread = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
              {"role": "user", "content": "Where are my invoices?"},
              {"role": "assistant", "content": INVOICE}]
    unanswered = [{"role": "user", "content": "Anyone there?"}]
    replies = trained_replies(_write(tmp_path / "train.jsonl",
                                     [plain, with_passages, thread, unanswered]))
    assert replies == {"How do I reset the router?": RESET,  # the first reply of a question
                       "Where are my invoices?": INVOICE}  # a thread's last turn


def test_last_question_strips_the_rag_scaffolding():
    messages = rag_messages([{"role": "user", "content": "Is Python stable?"}],
                            [Passage("faq-1", "Very stable.", "faq")])
    assert "passage" in messages[-1]["content"]
    assert last_question(messages) == "Is Python stable?"
    assert last_question([SYSTEM]) is None


def test_each_question_gets_the_reply_of_the_nearest_trained_question():
    pytest.importorskip("sentence_transformers")
    from tuneline.index.config import EMBEDDED_EMBEDDER
    from tuneline.rag.embed import Embedder

    trained = {"How do I reset the router?": RESET, "Where are my invoices?": INVOICE}
    asked = ["Where can I find my bills?", None, "My router hangs, how to restart it?"]
    assert nearest_trained_replies(asked, trained, Embedder(EMBEDDED_EMBEDDER).embed) == [
        INVOICE, None, RESET]
    assert nearest_trained_replies([None], trained, None) == [None]
