"""Structured JSON logs for the server: one object per line, prompt text only when asked."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "tuneline.serve"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: ts, level, logger, message and its `fields`.

    Fields come from `logger.info(msg, extra={"fields": {...}})`; they never replace the four
    standard keys.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single line of JSON."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                payload.setdefault(str(key), value)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # default=str keeps a log line from raising on a Path, datetime or other odd value.
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_json_logging(level: str | int = "INFO") -> logging.Logger:
    """Send the `tuneline.serve` logger to stderr as JSON lines; calling again adds nothing.

    Args:
        level: The logger's level, a name ("INFO") or a number.

    Returns:
        The configured logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(getattr(h, "_tuneline_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._tuneline_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    # Root handlers would print each record a second time, in another format, on the same stream.
    logger.propagate = False
    return logger


def request_record(
    request_id: str,
    method: str,
    path: str,
    status: int,
    latency_s: float,
    model: str | None,
    key_name: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    prompt_text: str | None = None,
    completion_text: str | None = None,
    log_prompts: bool = False,
) -> dict[str, Any]:
    """Build the fields of one access-log line.

    Args:
        request_id: The request's id (also sent back as a header).
        method: HTTP method.
        path: URL path, without the query.
        status: HTTP status answered.
        latency_s: Seconds from request to last byte.
        model: Served model name, or None when the request named none.
        key_name: The API key's name (never the key), or None without auth.
        prompt_tokens: Prompt tokens processed.
        completion_tokens: Completion tokens generated.
        prompt_text: The prompt, kept only when `log_prompts`.
        completion_text: The completion, kept only when `log_prompts`.
        log_prompts: Whether texts may be logged (`serve.log_prompts`); off, only their
            lengths in characters are.

    Returns:
        A dict for `extra={"fields": ...}`.
    """
    record: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "latency_s": round(latency_s, 6),
        "model": model,
        "key_name": key_name,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "prompt_chars": len(prompt_text or ""),
        "completion_chars": len(completion_text or ""),
    }
    if log_prompts:
        record["prompt"] = prompt_text
        record["completion"] = completion_text
    return record
