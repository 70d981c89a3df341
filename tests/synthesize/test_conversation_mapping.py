"""Tables and chat files mapped to conversations: threads of rows in order, roles mapped,
unanswered tickets left out, bad mappings named."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tuneline.errors import ConfigError, DataError
from tuneline.ingest.records import Record
from tuneline.synthesize.config import ConversationConfig
from tuneline.synthesize.conversations import build_conversations

COLUMNS = ["ticket", "at", "who", "text", "customer"]


def _rows(*rows):
    return [Record("tickets", "t.csv", line, dict(zip(COLUMNS, row, strict=True)))
            for line, row in enumerate(rows, start=2)]


def _build(rows, **mapping):
    config = ConversationConfig.model_validate({
        "source": "tickets", "thread": "ticket", "role": "who", "content": "text",
        "roles": {"customer": "user", "agent": "assistant", "note": "skip"}, **mapping})
    return build_conversations([config], {"tickets": {"columns": COLUMNS}},
                               {"tickets": rows})


def test_a_thread_is_ordered_mapped_and_merged():
    rows = _rows(("1", "10", "agent", "Reset it with the button.", "c1"),
                 ("1", "2", "customer", "My router hangs.", "c1"),
                 ("1", "3", "customer", "Any update?", "c1"),
                 ("1", "5", "note", "internal: checked plan", "c1"),
                 ("1", "11", "customer", "Thanks!", "c1"))
    [talk], counts = _build(rows, order="at", system="You are support.", group="customer")
    assert talk.messages == [
        {"role": "system", "content": "You are support."},
        {"role": "user", "content": "My router hangs.\n\nAny update?"},
        {"role": "assistant", "content": "Reset it with the button."}]
    assert talk.group == "c1" and talk.thread == "1"
    assert talk.provenance == {"file": "t.csv", "lines": [3, 4, 5, 2, 6]}
    assert counts["merged:consecutive_same_role"] == 1
    assert counts["skipped:rows_mapped_to_skip"] == 1
    assert counts["trimmed:trailing_user_turn"] == 1


def test_numbers_order_as_numbers_and_unanswered_threads_are_counted():
    rows = _rows(("1", "9", "customer", "first", ""), ("1", "10", "agent", "reply", ""),
                 ("2", "1", "customer", "nobody answered", ""))
    talks, counts = _build(rows, order="at")
    assert [m["content"] for m in talks[0].messages] == ["first", "reply"]
    assert len(talks) == 1 and counts["skipped:no_assistant_turn"] == 1
    assert counts["conversations:tickets"] == 1


def test_an_unmapped_role_names_the_row():
    rows = _rows(("1", "1", "customer", "hi", ""), ("1", "2", "bot", "hello", ""))
    with pytest.raises(DataError, match=r"t\.csv:3: column 'who' is 'bot'"):
        _build(rows)


def test_single_turn_rows():
    config = ConversationConfig(source="faq", prompt="q", response="a")
    rows = [Record("faq", "f.csv", 2, {"q": "Why?", "a": "Because."}),
            Record("faq", "f.csv", 3, {"q": "Empty?", "a": " "})]
    talks, counts = build_conversations([config], {"faq": {"columns": ["q", "a"]}},
                                        {"faq": rows})
    assert [t.messages for t in talks] == [[{"role": "user", "content": "Why?"},
                                            {"role": "assistant", "content": "Because."}]]
    assert counts["skipped:empty_message"] == 1


def test_a_chat_source_is_taken_as_it_is():
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    record = Record("chats", "c.jsonl", 4, {"messages": json.dumps(messages),
                                            "chat_format": "openai"}, key="x1")
    [talk], _ = build_conversations([ConversationConfig(source="chats")],
                                    {"chats": {"columns": ["messages", "chat_format"]}},
                                    {"chats": [record]})
    assert talk.messages == messages and talk.thread == "x1"


def test_mapping_problems_are_config_errors():
    with pytest.raises(ValidationError, match="not both"):
        ConversationConfig(source="t", prompt="q", response="a", thread="t", role="r",
                           content="c")
    with pytest.raises(ValidationError, match="missing: role"):
        ConversationConfig(source="t", thread="t", content="c")
    with pytest.raises(ValidationError, match="user, assistant, system or skip"):
        ConversationConfig(source="t", thread="t", role="r", content="c",
                           roles={"agent": "bot"})
    with pytest.raises(ConfigError, match=r"conversations\.0\.content: no column 'body'"):
        build_conversations([ConversationConfig(source="tickets", thread="ticket", role="who",
                                                content="body")],
                            {"tickets": {"columns": COLUMNS}}, {"tickets": []})
    with pytest.raises(ConfigError, match="is a table"):
        build_conversations([ConversationConfig(source="tickets")],
                            {"tickets": {"columns": COLUMNS}}, {"tickets": []})
