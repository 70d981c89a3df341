"""Conversations from ingested records: a chat file as it is, a table one exchange per row, or
threads of rows (a ticket's messages) mapped to user and assistant turns."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneline.errors import ConfigError, DataError
from tuneline.ingest.chat_files import FORMAT, MESSAGES
from tuneline.ingest.records import Record
from tuneline.synthesize.config import ConversationConfig


@dataclass
class Conversation:
    """One conversation in OpenAI messages, with where its turns came from."""

    conversation_id: str
    source: str
    thread: str
    messages: list[dict[str, str]]
    group: str | None = None
    # {"file": ..., "lines": [...]}: the rows (or the record) its turns were read from
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_conversations(
    configs: list[ConversationConfig], tables: dict[str, Any],
    records: dict[str, list[Record]],
) -> tuple[list[Conversation], dict[str, int]]:
    """Every configured source's conversations, and counts of what was kept and left out."""
    _check_config(configs, tables)
    conversations: list[Conversation] = []
    counts: Counter[str] = Counter()
    for config in configs:
        rows = records.get(config.source, [])
        if config.mapping == "thread":
            built = _threads(config, rows, counts)
        elif config.mapping == "single":
            built = _single_turns(config, rows, counts)
        else:
            built = _chats(config, rows)
        counts[f"conversations:{config.source}"] += len(built)
        conversations += built
    return conversations, dict(counts)


def _check_config(configs: list[ConversationConfig], tables: dict[str, Any]) -> None:
    problems = []
    for number, config in enumerate(configs):
        where = f"synthesize.conversations.{number}"
        table = tables.get(config.source)
        if table is None:
            problems.append(f"{where}.source: '{config.source}' is not an ingest source "
                            f"(sources: {sorted(tables)})")
            continue
        columns = table["columns"]
        is_chat = MESSAGES in columns and FORMAT in columns
        if config.mapping == "chat" and not is_chat:
            problems.append(f"{where}: '{config.source}' is a table (columns: "
                            f"{', '.join(columns)}); map it with prompt and response, or with "
                            "thread, role and content, or ingest it with format: chat")
        for name in ("prompt", "response", "thread", "order", "role", "content", "group"):
            column = getattr(config, name)
            if column is not None and column not in columns:
                problems.append(f"{where}.{name}: no column '{column}' in '{config.source}' "
                                f"(columns: {', '.join(columns)})")
    if problems:
        raise ConfigError(problems)


def _threads(config: ConversationConfig, rows: list[Record], counts: Counter[str]
             ) -> list[Conversation]:
    assert config.thread and config.role and config.content
    grouped: dict[str, list[Record]] = defaultdict(list)
    for record in rows:
        thread = record.data[config.thread].strip()
        if not thread:
            raise DataError(f"{record.file}:{record.line}: column '{config.thread}' (the "
                            f"thread of source '{config.source}') is empty")
        grouped[thread].append(record)
    built = []
    for thread, members in grouped.items():
        members = _ordered(members, config.order)
        turns: list[tuple[str, str, int]] = []
        for record in members:
            role = _role(config, record)
            text = record.data[config.content].strip()
            if role == "skip":
                counts["skipped:rows_mapped_to_skip"] += 1
            elif not text:
                counts["skipped:empty_message"] += 1
            elif turns and turns[-1][0] == role:  # a customer writing twice in a row
                turns[-1] = (role, f"{turns[-1][1]}\n\n{text}", turns[-1][2])
                counts["merged:consecutive_same_role"] += 1
            else:
                turns.append((role, text, record.line))
        messages = _trimmed([{"role": r, "content": t} for r, t, _ in turns], counts)
        if messages is None:
            continue
        group = members[0].data[config.group] if config.group else None
        built.append(_conversation(config, thread, messages, group, members[0].file,
                                   [r.line for r in members]))
    return built


def _ordered(members: list[Record], order: str | None) -> list[Record]:
    if order is None:
        return members
    values = [r.data[order] for r in members]
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return sorted(members, key=lambda r: r.data[order])
    return [r for _, r in sorted(zip(numbers, members, strict=True), key=lambda p: p[0])]


def _role(config: ConversationConfig, record: Record) -> str:
    assert config.role
    value = record.data[config.role].strip()
    if value not in config.roles:
        raise DataError(f"{record.file}:{record.line}: column '{config.role}' is {value!r}, "
                        f"which synthesize.conversations roles does not map (mapped: "
                        f"{', '.join(sorted(config.roles))}); map it to user, assistant, "
                        "system or skip")
    return config.roles[value]


def _trimmed(messages: list[dict[str, str]], counts: Counter[str]
             ) -> list[dict[str, str]] | None:
    """System turns first, then from the first user turn to the last assistant turn; None (and
    counted) when no exchange is left: a ticket nobody answered."""
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    while turns and turns[0]["role"] == "assistant":
        turns.pop(0)
        counts["trimmed:leading_assistant_turn"] += 1
    while turns and turns[-1]["role"] == "user":
        turns.pop()
        counts["trimmed:trailing_user_turn"] += 1
    if not turns:
        counts["skipped:no_assistant_turn"] += 1
        return None
    if len(system) > 1:
        system = [{"role": "system", "content": "\n\n".join(m["content"] for m in system)}]
    return system + turns


def _single_turns(config: ConversationConfig, rows: list[Record], counts: Counter[str]
                  ) -> list[Conversation]:
    assert config.prompt and config.response
    built = []
    for record in rows:
        prompt, response = (record.data[config.prompt].strip(),
                            record.data[config.response].strip())
        if not prompt or not response:
            counts["skipped:empty_message"] += 1
            continue
        thread = record.key or f"{record.file}:{record.line}"
        group = record.data[config.group] if config.group else None
        built.append(_conversation(config, thread, [{"role": "user", "content": prompt},
                                                    {"role": "assistant", "content": response}],
                                   group, record.file, [record.line]))
    return built


def _chats(config: ConversationConfig, rows: list[Record]) -> list[Conversation]:
    return [_conversation(config, record.key or f"{record.file}:{record.line}",
                          json.loads(record.data[MESSAGES]),
                          record.data.get(config.group) if config.group else None,
                          record.file, [record.line])
            for record in rows]


def _conversation(config: ConversationConfig, thread: str, messages: list[dict[str, str]],
                  group: str | None, file: str, lines: list[int]) -> Conversation:
    if config.system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": config.system}, *messages]
    digest = hashlib.sha256(f"{config.source}\0{thread}".encode()).hexdigest()[:16]
    return Conversation(digest, config.source, thread, messages, group or None,
                        {"file": file, "lines": lines})
