"""OpenAI-compatible request and response bodies: chat, completions, models, feedback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """A message; content may be OpenAI's list of text parts, joined into one string. Fields
    a chat template cannot carry (`name`, tool calls, audio) are refused, not dropped."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    @field_validator("content")
    @classmethod
    def _joined(cls, content: str | list[TextPart]) -> str:
        return content if isinstance(content, str) else "".join(p.text for p in content)

    @field_validator("role")
    @classmethod
    def _developer_is_system(cls, role: str) -> str:
        return "system" if role == "developer" else role  # OpenAI's newer name for it


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["text", "json_object", "json_schema"]


class _OpenAIRequest(BaseModel):
    """Fields both endpoints share. Types are strict ("yes" is not a boolean, "8" not an
    integer). Every field OpenAI defines is declared, so that `refusal` can refuse what this
    server does not do instead of ignoring it; a field OpenAI does not define is refused too."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    # Identifiers for the caller's own abuse tracking: recorded nowhere, change nothing.
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def refusal(self) -> tuple[str, str] | None:
        """(param, message) for the first field this server would have to ignore, or None."""
        for name, neutral, why in _REFUSED:
            if name in type(self).model_fields and not neutral(getattr(self, name)):
                return name, f"{name} is not supported by this server ({why})"
        if self.stream_options is not None and not self.stream:
            return "stream_options", "stream_options is only allowed when stream is true"
        for name in self.model_extra or {}:
            return name, f"Unrecognized request argument supplied: {name}"
        return None


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    service_tier: str | None = None
    web_search_options: dict[str, Any] | None = None
    rag: bool | None = Field(
        None, description="tuneline extension: retrieve passages from the index and answer "
        "from them (citations come back in the response); default: on for '<name>+rag'.")

    def refusal(self) -> tuple[str, str] | None:
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs needs logprobs: true"
        return super().refusal()


class CompletionRequest(_OpenAIRequest):
    prompt: str | list[str] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    max_tokens: int | None = Field(16, ge=1)
    n: int = Field(1, ge=1, le=1, description="Only one choice per prompt is supported.")
    best_of: int | None = Field(None, ge=1, le=20)
    echo: bool | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None


def _off(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == {} or value == []


# Fields this server cannot honour yet: (name, neutral value test, why). A request that sets one
# to anything but its neutral value gets a 400 naming it (docs/serve.md, "Request fields").
_REFUSED: list[tuple[str, Callable[[Any], bool], str]] = [
    ("response_format", lambda v: v is None or v.type == "text",
     "no constrained decoding yet: only {\"type\": \"text\"}"),
    ("tools", _off, "no tool calling"),
    ("tool_choice", lambda v: v is None or v == "none", "no tool calling"),
    ("parallel_tool_calls", lambda v: v is None, "no tool calling"),
    ("functions", _off, "no function calling"),
    ("function_call", lambda v: v is None or v == "none", "no function calling"),
    ("frequency_penalty", _off, "no repetition penalties"),
    ("presence_penalty", _off, "no repetition penalties"),
    ("logit_bias", _off, "no logit bias"),
    ("store", _off, "completions are not stored for later retrieval"),
    ("metadata", _off, "completions are not stored, so there is nothing to tag"),
    ("modalities", lambda v: v is None or v == ["text"], "text only"),
    ("audio", _off, "text only"),
    ("prediction", _off, "no predicted outputs"),
    ("reasoning_effort", _off, "not a reasoning model"),
    ("verbosity", _off, "no verbosity control"),
    ("service_tier", lambda v: v in (None, "auto", "default"), "one service tier"),
    ("web_search_options", _off, "no web search"),
    ("best_of", lambda v: v in (None, 1), "one candidate per prompt"),
    ("echo", _off, "the prompt is not echoed"),
    ("suffix", lambda v: v in (None, ""), "no fill-in-the-middle"),
]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=200)
    rating: int = Field(ge=1, le=5, description="1 (bad) to 5 (good).")
    comment: str | None = Field(None, max_length=10_000)
    correction: str | None = Field(
        None, min_length=1, max_length=20_000,
        description="What the answer should have been; trained instead of the model's answer.")


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class Choice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChoiceLogprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Citation(BaseModel):
    """A passage the answer was grounded on (tuneline extension)."""

    id: str
    source: str
    score: float
    text: str
    file: str | None = None
    line: str | None = None


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[Citation] | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    # OpenAI's legacy shape: tokens, token_logprobs, top_logprobs ({token: logprob}), text_offset
    logprobs: dict[str, list[Any]] | None = None


class Completion(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "tuneline"
    root: str | None = Field(None, description="The base model this one runs on.")
    parent: str | None = Field(None, description="For an alias or adapter: what it points to.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
