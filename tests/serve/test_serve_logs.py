"""Server logs: one JSON object per line; prompt text only when log_prompts is on."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime, timedelta

import pytest

from tuneline.serve.logs import JsonFormatter, configure_json_logging, request_record

PROMPT = "What is the capital of Peru? (private question 7)"
COMPLETION = "Lima, private answer 9."


@pytest.fixture
def captured():
    """A logger writing through JsonFormatter into a buffer; yields (logger, buffer)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tuneline.serve.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def record(log_prompts: bool) -> dict:
    return request_record("req-1", "POST", "/v1/chat/completions", 200, 0.25, "tuned", "alice",
                          12, 7, prompt_text=PROMPT, completion_text=COMPLETION,
                          log_prompts=log_prompts)


def test_formatter_emits_one_json_object_per_line(captured):
    logger, buffer = captured
    logger.info("request %s", "done", extra={"fields": record(log_prompts=False)})
    logger.warning("plain")
    first, second = lines(buffer)
    assert first["level"] == "INFO" and first["logger"] == "tuneline.serve.test_logs"
    assert first["message"] == "request done"
    ts = datetime.fromisoformat(first["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert abs((datetime.now(ts.tzinfo) - ts).total_seconds()) < 60
    assert first["request_id"] == "req-1" and first["status"] == 200
    assert first["model"] == "tuned" and first["key_name"] == "alice"
    assert first["prompt_tokens"] == 12 and first["completion_tokens"] == 7
    assert first["latency_s"] == pytest.approx(0.25)
    assert second["level"] == "WARNING" and "request_id" not in second


def test_fields_do_not_override_standard_keys_and_odd_values_serialise(captured):
    logger, buffer = captured
    fields = {"message": "spoof", "level": "x", "when": datetime(2024, 1, 1)}
    logger.info("hi", extra={"fields": fields})
    (line,) = lines(buffer)
    assert line["message"] == "hi" and line["level"] == "INFO"
    assert line["when"].startswith("2024-01-01")


def test_exception_is_included(captured):
    logger, buffer = captured
    try:
        raise RuntimeError("engine fell over")
    except RuntimeError:
        logger.exception("failed")
    (line,) = lines(buffer)
    assert line["level"] == "ERROR" and "engine fell over" in line["exc_info"]


def test_prompt_text_only_with_log_prompts(captured):
    logger, buffer = captured
    logger.info("request", extra={"fields": record(log_prompts=False)})
    text = buffer.getvalue()
    assert "private question" not in text and "private answer" not in text
    (quiet,) = lines(buffer)
    assert quiet["prompt_chars"] == len(PROMPT)
    assert quiet["completion_chars"] == len(COMPLETION)
    assert "prompt" not in quiet and "completion" not in quiet

    logger.info("request", extra={"fields": record(log_prompts=True)})
    loud = lines(buffer)[1]
    assert loud["prompt"] == PROMPT and loud["completion"] == COMPLETION


def test_request_record_without_texts():
    rec = request_record("r", "GET", "/v1/models", 401, 0.001, None, None, 0, 0)
    assert rec["prompt_chars"] == 0 and rec["completion_chars"] == 0
    assert "prompt" not in rec and rec["model"] is None and rec["status"] == 401


def test_configure_json_logging_is_idempotent(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logger = logging.getLogger("tuneline.serve")
    before = list(logger.handlers)
    try:
        configured = configure_json_logging("debug")
        assert configure_json_logging("INFO") is configured is logger
        added = [h for h in logger.handlers if h not in before]
        assert len(added) == 1
        assert logger.level == logging.INFO and not logger.propagate
        logging.getLogger("tuneline.serve.app").info("started", extra={"fields": {"port": 8000}})
        (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert line["logger"] == "tuneline.serve.app" and line["port"] == 8000
    finally:
        for handler in logger.handlers[:]:
            if handler not in before:
                logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
