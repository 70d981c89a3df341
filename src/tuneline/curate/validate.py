"""Check chat JSONL against OpenAI's fine-tuning format rules, line by line (pure, torch-free).

The rules follow OpenAI's published data-preparation checks (format errors per example, token
limits) so a file that passes here is accepted by the OpenAI fine-tuning API and by our trainer.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneline.errors import DataError

EXAMPLE_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "tool_calls", "weight",
                          "tool_call_id"})
ROLES = frozenset({"system", "user", "assistant", "function", "tool"})

TokenCounter = Callable[[list[dict[str, Any]]], int]


@dataclass(frozen=True)
class Problem:
    """One broken rule on one line."""

    line: int
    rule: str
    detail: str

    def render(self, path: Path | str) -> str:
        return f"{path}:{self.line}: {self.rule}: {self.detail}"


@dataclass
class ValidationReport:
    """Problems found in a file, and counts per rule."""

    path: Path
    examples: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(p.rule for p in self.problems))

    @property
    def bad_lines(self) -> set[int]:
        return {p.line for p in self.problems}


def check_example(
    example: Any, count_tokens: TokenCounter | None = None, max_tokens: int | None = None
) -> list[tuple[str, str]]:
    """(rule, detail) for every rule `example` breaks; empty when it is a valid chat example."""
    if not isinstance(example, dict):
        return [("data_type", f"each line must be a JSON object, got {type(example).__name__}")]
    problems = _unknown_keys(example, EXAMPLE_KEYS, "unknown_key", "top-level key")
    messages = example.get("messages")
    if messages is None:
        return [*problems, ("missing_messages_list", "no 'messages' key")]
    if not isinstance(messages, list):
        return [*problems, ("missing_messages_list",
                            f"'messages' must be a list, got {type(messages).__name__}")]
    if not messages:
        return [*problems, ("empty_messages", "'messages' is an empty list")]
    for index, message in enumerate(messages):
        problems += [(rule, f"messages[{index}]: {detail}")
                     for rule, detail in _check_message(message)]
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append(("example_missing_assistant_message", "no message has role 'assistant'"))
    if count_tokens is not None and max_tokens is not None and not problems:
        n_tokens = count_tokens(messages)
        if n_tokens > max_tokens:
            problems.append(("token_limit", f"{n_tokens} tokens > limit {max_tokens}; "
                             "the example would be truncated"))
    return problems


def _unknown_keys(
    obj: dict[str, Any], allowed: frozenset[str], rule: str, what: str
) -> list[tuple[str, str]]:
    return [(rule, f"{what} '{k}' is not one of {sorted(allowed)}") for k in obj
            if k not in allowed]


def _check_message(message: Any) -> list[tuple[str, str]]:
    if not isinstance(message, dict):
        return [("message_not_dict", f"a message must be an object, got {type(message).__name__}")]
    problems = _unknown_keys(message, MESSAGE_KEYS, "message_unrecognized_key", "key")
    role = message.get("role")
    if role is None:
        problems.append(("message_missing_key", "no 'role'"))
    elif role not in ROLES:
        problems.append(("unrecognized_role", f"role {role!r} is not one of {sorted(ROLES)}"))
    calls_a_tool = bool(message.get("function_call") or message.get("tool_calls"))
    content = message.get("content")
    if "content" not in message and not calls_a_tool:
        problems.append(("message_missing_key", "no 'content'"))
    elif content is None and not calls_a_tool:
        problems.append(("missing_content", "'content' is null"))
    elif content is not None and not isinstance(content, str):
        problems.append(("missing_content",
                         f"'content' must be a string, got {type(content).__name__}"))
    elif isinstance(content, str) and not content.strip() and not calls_a_tool:
        problems.append(("missing_content", "'content' is empty"))
    if "weight" in message:
        if message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            problems.append(("invalid_weight", f"weight must be 0 or 1, got {message['weight']!r}"))
        elif role != "assistant":
            problems.append(("invalid_weight", "only assistant messages may carry a weight"))
    return problems


def validate_lines(
    lines: Iterable[str],
    path: Path,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
) -> ValidationReport:
    """Validate JSONL text lines (1-based line numbers in the report)."""
    report = ValidationReport(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        report.examples += 1
        try:
            example = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problems.append(Problem(number, "invalid_json", f"{exc.msg} at column "
                                                                   f"{exc.colno}"))
            continue
        report.problems += [Problem(number, rule, detail)
                            for rule, detail in check_example(example, count_tokens, max_tokens)]
    return report


def validate_file(
    path: Path, count_tokens: TokenCounter | None = None, max_tokens: int | None = None
) -> ValidationReport:
    """Validate a chat JSONL file; DataError when it cannot be read as UTF-8 text at all."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: looks binary (NUL bytes); expected UTF-8 JSON lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: bytes at offset {exc.start} are not valid UTF-8 "
                        "(JSONL must be UTF-8)") from None
    report = validate_lines(text.splitlines(), path, count_tokens, max_tokens)
    if report.examples == 0:
        report.problems.append(Problem(1, "empty_file", "no examples in the file"))
    return report
