"""User ratings of served answers: recent responses in memory, a SQLite store, a JSONL export."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneline.artifacts import write_text_atomic
from tuneline.curate.validate import MESSAGE_KEYS, check_example
from tuneline.errors import DataError

if TYPE_CHECKING:
    from tuneline.config import PipelineConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    response_id TEXT NOT NULL,
    rating INTEGER NOT NULL,
    comment TEXT,
    key_name TEXT,
    model TEXT,
    messages TEXT,
    completion TEXT,
    has_text INTEGER NOT NULL,
    correction TEXT
);
CREATE INDEX IF NOT EXISTS feedback_response_id ON feedback (response_id);
"""
_COLUMNS = ("id", "created", "response_id", "rating", "comment", "key_name", "model",
            "messages", "completion", "has_text", "correction")
MIN_RATING = 4  # the lowest rating whose answer is trained as it was given


def feedback_db_path(cfg: PipelineConfig) -> Path:
    """Where feedback lives: `serve.feedback_path`, else `<runs_dir>/<run>/feedback.db`."""
    if cfg.serve.feedback_path is not None:
        return cfg.serve.feedback_path
    return cfg.run.runs_dir / cfg.run.name / "feedback.db"


class ResponseLog:
    """The last `capacity` responses in memory, so feedback can attach prompt and answer.

    Prompts are kept only here, not on disk, unless a user rates the answer.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        """Create an empty log holding at most `capacity` responses (least recent dropped)."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, response_id: str, model: str, messages: list[dict[str, Any]],
                 completion: str) -> None:
        """Keep one response.

        Args:
            response_id: The `id` the server returned (`chatcmpl-...`).
            model: Served model name that answered.
            messages: The request's messages.
            completion: The assistant's answer text.
        """
        entry = {"response_id": response_id, "model": model,
                 "messages": [dict(m) for m in messages], "completion": completion}
        with self._lock:
            self._entries[response_id] = entry
            self._entries.move_to_end(response_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def get(self, response_id: str) -> dict[str, Any] | None:
        """The remembered response (a copy), or None when unknown or already evicted."""
        with self._lock:
            entry = self._entries.get(response_id)
            if entry is None:
                return None
            self._entries.move_to_end(response_id)
            return {**entry, "messages": [dict(m) for m in entry["messages"]]}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class FeedbackStore:
    """Ratings in a SQLite file (WAL), safe to use from several threads and processes."""

    def __init__(self, path: Path, must_exist: bool = False) -> None:
        """Point at a store; the file and table are created on first use.

        Args:
            path: The SQLite file.
            must_exist: Raise instead of creating a new, empty store (for readers).

        Raises:
            DataError: `must_exist` and there is no file at `path`.
        """
        if must_exist and not path.is_file():
            raise DataError(f"no feedback store at {path}: the server creates it when "
                            "/v1/feedback first receives a rating (set serve.feedback_path "
                            "to read another file)")
        self.path = path
        self._init_lock = threading.Lock()
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per call: sqlite3 connections must not be shared across threads,
        # and WAL plus the busy timeout lets concurrent writers queue instead of failing.
        self._ensure_schema()
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            # In WAL mode NORMAL still survives a process crash; only a power cut can lose the
            # latest commits, which is acceptable for ratings and makes each insert far cheaper.
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                yield conn
        finally:
            conn.close()

    def _ensure_schema(self) -> None:
        with self._init_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(feedback)")}
                if "correction" not in columns:  # a store written before corrections existed
                    conn.execute("ALTER TABLE feedback ADD COLUMN correction TEXT")
            finally:
                conn.close()
            self._ready = True

    def add(self, response_id: str, rating: int, comment: str | None,
            response: dict[str, Any] | None, key_name: str | None = None,
            correction: str | None = None) -> str:
        """Store one rating.

        Args:
            response_id: The rated response's id.
            rating: 1 (worst) to 5 (best).
            comment: Free text from the user, if any.
            response: What `ResponseLog.get` returned, or None when the response is unknown;
                the rating is stored either way, marked as without text.
            key_name: Name of the API key that sent the rating.
            correction: What the answer should have been (trained instead of the answer).

        Returns:
            The new feedback id, `fb-<hex>`.

        Raises:
            DataError: `rating` is not an integer from 1 to 5.
        """
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise DataError(f"rating must be an integer from 1 to 5, got {rating!r}")
        feedback_id = f"fb-{uuid.uuid4().hex}"
        created = datetime.now(UTC).isoformat(timespec="seconds")
        has_text = response is not None
        values = (feedback_id, created, response_id, rating, comment, key_name,
                  response["model"] if has_text else None,
                  json.dumps(response["messages"], ensure_ascii=False) if has_text else None,
                  response["completion"] if has_text else None, int(has_text), correction)
        with self._connect() as conn:
            conn.execute(f"INSERT INTO feedback ({', '.join(_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)
        return feedback_id

    def count(self) -> int:
        """Number of stored ratings."""
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored ratings, oldest first; with `limit`, only the latest `limit` of them."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM feedback ORDER BY seq DESC"
        with self._connect() as conn:
            found = conn.execute(query + (" LIMIT ?" if limit is not None else ""),
                                 () if limit is None else (limit,)).fetchall()
        return [_row_dict(values) for values in reversed(found)]

    def examples(self, min_rating: int = MIN_RATING) -> tuple[list[dict[str, Any]],
                                                              dict[str, int]]:
        """Rated answers as OpenAI chat examples, each response once with its latest rating:
        its correction when the user gave one (whatever the rating), else the model's answer
        when rated `min_rating` or better. Also the counts: written, corrected,
        skipped_low_rating, skipped_no_text, skipped_invalid (the example would fail
        `tuneline data validate`, e.g. an empty answer)."""
        latest = {row["response_id"]: row for row in self.rows()}
        counts = {"written": 0, "corrected": 0, "skipped_low_rating": 0, "skipped_no_text": 0,
                  "skipped_invalid": 0}
        examples = []
        for row in latest.values():
            if not row["has_text"]:
                counts["skipped_no_text"] += 1
            elif row["rating"] < min_rating and not row["correction"]:
                counts["skipped_low_rating"] += 1
            elif example := _chat_example(row):
                examples.append(example)
                counts["written"] += 1
                counts["corrected"] += bool(row["correction"])
            else:
                counts["skipped_invalid"] += 1
        return examples, counts

    def export(self, out_path: Path, min_rating: int = MIN_RATING) -> dict[str, int]:
        """Write `examples(min_rating)` as OpenAI chat-format JSONL, ready for fine-tuning;
        the file appears complete or not at all, and not when no example qualifies."""
        examples, counts = self.examples(min_rating)
        if examples:
            write_text_atomic(out_path, "".join(json.dumps(e, ensure_ascii=False) + "\n"
                                                for e in examples))
        return counts


def _row_dict(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(_COLUMNS, values, strict=True))
    row["has_text"] = bool(row["has_text"])
    row["messages"] = json.loads(row["messages"]) if row["messages"] is not None else None
    return row


def _chat_example(row: dict[str, Any]) -> dict[str, Any] | None:
    # Request messages may carry fields the fine-tuning format rejects; keep the known ones.
    messages = [{k: v for k, v in m.items() if k in MESSAGE_KEYS} for m in row["messages"]]
    answer = row["correction"] or row["completion"]
    example = {"messages": [*messages, {"role": "assistant", "content": answer}]}
    return None if check_example(example) else example
