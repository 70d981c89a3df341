"""Read conversation files (ingest format `chat`): OpenAI chat JSONL, ShareGPT, Alpaca and
prompt/completion, one format per file, detected by the shape of its records; or a Hugging
Face `datasets` folder saved with `save_to_disk`.

Every conversation becomes one record whose `messages` column holds the OpenAI messages as
JSON; a malformed one is a DataError naming the file and line (or row)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tuneline.errors import DataError
from tuneline.ingest.records import Record, cell_text, resolve_encoding

MESSAGES = "messages"  # the record column holding the conversation as JSON
FORMAT = "chat_format"  # the record column naming the detected format
ID_COLUMNS = ("id", "conversation_id", "thread_id")
ROLES = ("system", "user", "assistant")
# ShareGPT speaker names (and the aliases datasets on the Hub use) mapped to OpenAI roles.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
                  "bing": "assistant", "model": "assistant"}
OPENAI_ROLE_ALIASES = {"developer": "system"}
SHAPES = {
    "openai": "an OpenAI chat record ({\"messages\": [...]})",
    "sharegpt": "a ShareGPT record ({\"conversations\": [{\"from\", \"value\"}]})",
    "alpaca": "an Alpaca record ({\"instruction\", \"input\", \"output\"})",
    "prompt_completion": "a prompt/completion record ({\"prompt\", \"completion\"})",
}
HF_DATASET_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")
MAX_SHOWN = 5


def is_hf_dataset_folder(path: Path) -> bool:
    """A folder written by `datasets.Dataset.save_to_disk` (or DatasetDict's)."""
    return path.is_dir() and any((path / name).is_file() for name in HF_DATASET_FILES)


def read_chat_file(name: str, path: Path, encoding: str = "auto") -> Iterator[Record]:
    """One record per conversation of a JSONL/JSON file or a saved `datasets` folder."""
    rows = (_hf_rows(path) if path.is_dir() else
            _json_rows(path, resolve_encoding(path, encoding)))
    return _records(name, path, rows)


def detect_shape(obj: Any) -> str | None:
    """The format a record's keys say it is in, or None."""
    if not isinstance(obj, dict):
        return None
    if MESSAGES in obj:
        return "openai"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    return None


def to_messages(obj: dict[str, Any], shape: str) -> list[dict[str, str]]:
    """OpenAI messages of one record in `shape`; ValueError says what is wrong with it."""
    if shape == "openai":
        return _openai_messages(obj[MESSAGES])
    if shape == "sharegpt":
        return _sharegpt_messages(obj)
    if shape == "alpaca":
        user = _text(obj["instruction"], "instruction")
        extra = obj.get("input")
        if extra not in (None, ""):
            user = f"{user}\n\n{_text(extra, 'input')}"
        system = [{"role": "system", "content": _text(obj["system"], "system")}] \
            if obj.get("system") else []
        return [*system, {"role": "user", "content": user},
                {"role": "assistant", "content": _text(obj["output"], "output")}]
    prompt, completion = obj["prompt"], obj["completion"]
    # TRL's conversational prompt-completion: both sides are message lists.
    head = (_openai_messages(prompt, whole=False) if isinstance(prompt, list)
            else [{"role": "user", "content": _text(prompt, "prompt")}])
    tail = (_openai_messages(completion, whole=False) if isinstance(completion, list)
            else [{"role": "assistant", "content": _text(completion, "completion")}])
    return _checked([*head, *tail])


def check_turns(messages: list[dict[str, str]]) -> None:
    """System messages first, then user and assistant alternating from a user turn to an
    assistant turn, none empty; ValueError says which turn breaks it."""
    if not messages:
        raise ValueError("no messages")
    turns = [m for m in messages if m["role"] != "system"]
    leading_system = len(messages) - len(turns)
    if any(m["role"] == "system" for m in messages[leading_system:]):
        raise ValueError("a system message after the conversation started; put system "
                         "messages first")
    for number, message in enumerate(messages, start=1):
        if not message["content"].strip():
            raise ValueError(f"message {number} ({message['role']}) is empty")
    if not turns:
        raise ValueError("only system messages: no user or assistant turn")
    for number, message in enumerate(turns, start=leading_system + 1):
        expected = "user" if (number - leading_system) % 2 == 1 else "assistant"
        if message["role"] != expected:
            raise ValueError(f"message {number} is {message['role']!r} where {expected!r} "
                             "was expected (turns must alternate, starting with user)")
    if not any(m["role"] == "assistant" for m in turns):
        raise ValueError("no assistant turn: nothing to learn or to compare with")
    if turns[-1]["role"] != "assistant":
        raise ValueError("the last turn is the user's; a conversation ends with the assistant")


def _openai_messages(raw: Any, whole: bool = True) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise ValueError(f"'messages' must be a list, got {type(raw).__name__}")
    messages = []
    for number, message in enumerate(raw, start=1):
        if not isinstance(message, dict):
            raise ValueError(f"message {number} is not an object")
        role = message.get("role")
        role = OPENAI_ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise ValueError(f"message {number} has unknown role {role!r} (known: "
                             f"{', '.join(ROLES)})")
        messages.append({"role": role, "content": _text(message.get("content"),
                                                        f"message {number} content")})
    return _checked(messages) if whole else messages


def _sharegpt_messages(obj: dict[str, Any]) -> list[dict[str, str]]:
    raw = obj["conversations"]
    if not isinstance(raw, list):
        raise ValueError(f"'conversations' must be a list, got {type(raw).__name__}")
    messages = ([{"role": "system", "content": _text(obj["system"], "system")}]
                if obj.get("system") else [])
    for number, turn in enumerate(raw, start=1):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {number} is not an object")
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise ValueError(f"turn {number} is from unknown speaker {speaker!r} (known: "
                             f"{', '.join(sorted(SHAREGPT_ROLES))})")
        messages.append({"role": role, "content": _text(turn.get("value"),
                                                        f"turn {number} value")})
    return _checked(messages)


def _checked(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    check_turns(messages)
    return messages


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text, got "
                         f"{'nothing' if value is None else type(value).__name__}")
    return value


def _records(name: str, path: Path, rows: Iterable[tuple[str | int, Any]]) -> Iterator[Record]:
    """Records of (location, object) rows, every row in the first row's format."""
    first: tuple[str, str | int] | None = None
    problems: list[str] = []
    records: list[Record] = []
    for where, obj in rows:
        shape = detect_shape(obj)
        if shape is None:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            problems.append(f"{path}:{where}: not a conversation record (keys: {keys}); "
                            f"expected {' or '.join(SHAPES.values())}")
            continue
        if first is None:
            first = (shape, where)
        elif shape != first[0]:
            problems.append(f"{path}:{where}: {SHAPES[shape]}, but line {first[1]} is "
                            f"{SHAPES[first[0]]}; use one format per file")
            continue
        try:
            messages = to_messages(obj, shape)
        except ValueError as exc:
            problems.append(f"{path}:{where}: {exc}")
            continue
        key = next((cell_text(obj[c]) for c in ID_COLUMNS if obj.get(c) not in (None, "")),
                   None)
        line = where if isinstance(where, int) else len(records) + 1
        records.append(Record(name, str(path), line,
                              {MESSAGES: json.dumps(messages, ensure_ascii=False),
                               FORMAT: shape}, key))
    if problems:
        shown = "\n".join(problems[:MAX_SHOWN])
        more = f"\n(and {len(problems) - MAX_SHOWN} more)" if len(problems) > MAX_SHOWN else ""
        raise DataError(f"{len(problems)} malformed conversation record(s) in {path}; nothing "
                        f"was ingested:\n{shown}{more}")
    if not records:
        raise DataError(f"{path}: no conversations found")
    yield from records


def _json_rows(path: Path, encoding: str) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: bytes at offset {exc.start} are not valid {encoding}; "
                        "set ingest.sources[].encoding") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column "
                            f"{exc.colno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON array of conversations, got "
                            f"{type(data).__name__}")
        yield from enumerate(data, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column "
                            f"{exc.colno})") from None


def _hf_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Rows of a saved dataset; a DatasetDict folder yields every split, 'row N' of 'split'."""
    if not is_hf_dataset_folder(path):
        raise DataError(f"{path}: a folder, but not one written by datasets' save_to_disk "
                        f"(none of {', '.join(HF_DATASET_FILES)}); point path at a JSONL file "
                        "or at such a folder")
    from tuneline._optional import require

    datasets = require("datasets")
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DataError(f"{path}: cannot load the saved dataset ({exc})") from None
    splits = loaded.items() if hasattr(loaded, "keys") else [("", loaded)]
    for split, dataset in splits:
        for number, row in enumerate(dataset, start=1):
            yield (f"{split} row {number}" if split else f"row {number}"), row
