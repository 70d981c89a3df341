"""A local fake of OpenAI's documented files, fine-tuning and chat endpoints, strict on shapes.

It validates what a real request must look like (auth header, upload purpose, chat JSONL lines,
the job body's keys, the supervised method's hyperparameters) and answers 400/401/404 with
OpenAI's `{"error": {...}}` body otherwise, so a client that drifts from the documented shapes
fails its tests. A job moves validating_files -> queued -> running -> succeeded (or failed /
cancelled) one step per GET of the job, emitting events, and ends with a base64-encoded result
CSV (step, train_loss, train_accuracy, valid_loss, valid_mean_token_accuracy), as OpenAI serves
it. Fine-tuned models answer chat completions with the training answer whose question shares
the most words with the prompt; base models say they do not know.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

FILE_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
JOB_KEYS = {"model", "training_file", "hyperparameters", "integrations", "metadata", "method",
            "seed", "suffix", "validation_file"}
HYPERPARAMETERS = {"n_epochs", "batch_size", "learning_rate_multiplier"}
ROLES = {"system", "developer", "user", "assistant", "tool"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
FLOW = ("validating_files", "queued", "running", "running", "succeeded")
RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss",
                  "valid_mean_token_accuracy")
BASE_ANSWER = "I'm not sure about that."


class Refusal(Exception):
    """An OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": kind,
                                                    "param": param, "code": code}}


@dataclass
class FakeOpenAI:
    """State and ASGI app of the fake; inspect `requests`, `jobs`, `files` in tests."""

    api_key: str = "sk-fake-key"
    fine_tunable: tuple[str, ...] = ("gpt-4o-mini-2024-07-18", "gpt-4.1-nano-2025-04-14")
    outcome: str = "succeeded"  # or "failed" / "cancelled"
    failure: dict[str, Any] = field(default_factory=lambda: {
        "code": "invalid_training_file", "param": "training_file",
        "message": "The job failed due to an invalid training file. Expected file to have "
                   "JSONL format with prompt/completion keys or messages key."})
    result_base64: bool = True
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    models: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=itertools.count)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.exception_handler(Refusal)
        async def refused(_: Request, exc: Refusal) -> JSONResponse:
            return JSONResponse(exc.body, status_code=exc.status)

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Any:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse(Refusal(401, "Incorrect API key provided.",
                                            code="invalid_api_key").body, status_code=401)
            return await call_next(request)

        @app.post("/v1/files")
        async def upload(request: Request) -> dict[str, Any]:
            form = _multipart(request.headers.get("content-type", ""), await request.body())
            return self.upload(form)

        @app.get("/v1/files/{file_id}")
        async def file_meta(file_id: str) -> dict[str, Any]:
            return self._file(file_id)["meta"]

        @app.get("/v1/files/{file_id}/content")
        async def file_content(file_id: str) -> Response:
            return Response(self._file(file_id)["content"],
                            media_type="application/octet-stream")

        @app.post("/v1/fine_tuning/jobs")
        async def create_job(request: Request) -> dict[str, Any]:
            return self.create_job(await _json(request))

        @app.get("/v1/fine_tuning/jobs/{job_id}")
        async def retrieve_job(job_id: str) -> dict[str, Any]:
            self.requests.append(("GET", f"/v1/fine_tuning/jobs/{job_id}", None))
            return self.advance(job_id)

        @app.get("/v1/fine_tuning/jobs/{job_id}/events")
        async def list_events(job_id: str, limit: int = 20, after: str | None = None) -> dict:
            self._job(job_id)
            newest_first = list(reversed(self.events[job_id]))
            if after is not None:
                ids = [e["id"] for e in newest_first]
                newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
            return {"object": "list", "data": newest_first[:limit],
                    "has_more": len(newest_first) > limit}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict[str, Any]:
            return self.chat(await _json(request))

        return app

    # -- files -------------------------------------------------------------------------------
    def upload(self, form: dict[str, Any]) -> dict[str, Any]:
        purpose, upload = form.get("purpose"), form.get("file")
        if not isinstance(upload, tuple):
            raise Refusal(400, "'file' is a required property", param="file")
        if purpose not in FILE_PURPOSES:
            raise Refusal(400, f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'",
                          param="purpose")
        filename, content = upload
        if purpose == "fine-tune":
            if not filename.endswith(".jsonl"):
                raise Refusal(400, "Invalid file format for Fine-Tuning API. Must be .jsonl",
                              param="file")
            _check_chat_jsonl(content)
        self.requests.append(("POST", "/v1/files", {"purpose": purpose, "filename": filename}))
        return self._store(filename, purpose, content)["meta"]

    def _store(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        file_id = f"file-{next(self._ids):06d}"
        meta = {"id": file_id, "object": "file", "bytes": len(content),
                "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                "status": "processed", "expires_at": None, "status_details": None}
        self.files[file_id] = {"meta": meta, "content": content}
        return self.files[file_id]

    def _file(self, file_id: str) -> dict[str, Any]:
        if file_id not in self.files:
            raise Refusal(404, f"No such File object: {file_id}", param="id")
        return self.files[file_id]

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - JOB_KEYS)
        if unknown:
            raise Refusal(400, f"Unrecognized request argument supplied: {unknown[0]}")
        for key in ("model", "training_file"):
            if not isinstance(body.get(key), str):
                raise Refusal(400, f"Missing required parameter: '{key}'.", param=key)
        if body["model"] not in self.fine_tunable:
            raise Refusal(400, f"Model {body['model']} is not available for fine-tuning or "
                          "does not exist.", param="model", code="model_not_available")
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None:
                file = self.files.get(body[key])
                if file is None or file["meta"]["purpose"] != "fine-tune":
                    raise Refusal(400, f"invalid {key}: {body[key]} is not a file uploaded "
                                  "with purpose 'fine-tune'", param=key)
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise Refusal(400, "suffix must be a string of at most 64 characters",
                          param="suffix")
        if body.get("seed") is not None and not isinstance(body["seed"], int):
            raise Refusal(400, "seed must be an integer", param="seed")
        hyper = _check_method(body)
        self.requests.append(("POST", "/v1/fine_tuning/jobs", body))
        job_id = f"ftjob-{next(self._ids):06d}"
        n_train = len(self._examples(body["training_file"]))
        resolved = {"n_epochs": hyper.get("n_epochs", "auto"),
                    "batch_size": hyper.get("batch_size", "auto"),
                    "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto")}
        resolved = {"n_epochs": 3 if resolved["n_epochs"] == "auto" else resolved["n_epochs"],
                    "batch_size": (max(1, n_train // 10) if resolved["batch_size"] == "auto"
                                   else resolved["batch_size"]),
                    "learning_rate_multiplier": (1.8 if resolved["learning_rate_multiplier"]
                                                 == "auto" else
                                                 resolved["learning_rate_multiplier"])}
        self.jobs[job_id] = {
            "object": "fine_tuning.job", "id": job_id, "model": body["model"],
            "created_at": int(time.time()), "finished_at": None, "fine_tuned_model": None,
            "organization_id": "org-fake", "result_files": [], "status": FLOW[0],
            "validation_file": body.get("validation_file"),
            "training_file": body["training_file"], "hyperparameters": resolved,
            "trained_tokens": None, "error": None, "seed": body.get("seed", 42),
            "estimated_finish": None, "integrations": [], "metadata": body.get("metadata"),
            "user_provided_suffix": suffix,
            "method": {"type": "supervised", "supervised": {"hyperparameters": resolved}},
            "_step": 0,
        }
        self.events[job_id] = []
        self._event(job_id, f"Validating training file: {body['training_file']}")
        return self._public(job_id)

    def advance(self, job_id: str) -> dict[str, Any]:
        """One GET moves the job one step along its flow."""
        job = self._job(job_id)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return self._public(job_id)
        job["_step"] += 1
        status = FLOW[min(job["_step"], len(FLOW) - 1)]
        if self.outcome != "succeeded" and status == "running":
            return self._end(job_id, self.outcome)
        job["status"] = status
        if status == "queued":
            self._event(job_id, "Files validated, moving job to queued state")
        elif status == "running" and job["_step"] == FLOW.index("running"):
            self._event(job_id, "Fine-tuning job started")
        elif status == "running":
            total = self._total_steps(job)
            self._event(job_id, f"Step {total // 2}/{total}: training loss=0.812",
                        kind="metrics", data={"step": total // 2, "train_loss": 0.812,
                                              "total_steps": total})
        elif status == "succeeded":
            self._end(job_id, "succeeded")
        return self._public(job_id)

    def _end(self, job_id: str, status: str) -> dict[str, Any]:
        job = self._job(job_id)
        job["status"], job["finished_at"] = status, int(time.time())
        if status == "failed":
            job["error"] = dict(self.failure)
            self._event(job_id, job["error"]["message"], level="error")
        elif status == "cancelled":
            self._event(job_id, "Fine-tuning job cancelled")
        else:
            suffix = job["user_provided_suffix"] or ""
            model = f"ft:{job['model']}:org-fake:{suffix}:{job_id[-6:]}"
            job["fine_tuned_model"] = model
            self.models[model] = self._examples(job["training_file"])
            csv_text = self._results_csv(job)
            content = base64.b64encode(csv_text.encode()) if self.result_base64 \
                else csv_text.encode()
            result = self._store("step_metrics.csv", "fine-tune-results", content)
            job["result_files"] = [result["meta"]["id"]]
            job["trained_tokens"] = 50 * len(self.models[model]) * job["hyperparameters"][
                "n_epochs"]
            self._event(job_id, f"New fine-tuned model created: {model}")
            self._event(job_id, "The job has successfully completed")
        return self._public(job_id)

    def _results_csv(self, job: dict[str, Any]) -> str:
        total, with_val = self._total_steps(job), job["validation_file"] is not None
        lines = [",".join(RESULT_COLUMNS)]
        for step in range(1, total + 1):
            loss = 2.0 * math.exp(-3.0 * step / total) + 0.05
            valid = (f"{loss + 0.1:.4f},{min(1.0, 0.4 + step / total / 2):.4f}"
                     if with_val and (step % 5 == 0 or step == total) else ",")
            lines.append(f"{step},{loss:.4f},{min(1.0, 0.5 + step / total / 2):.4f},{valid}")
        return "\n".join(lines) + "\n"

    def _total_steps(self, job: dict[str, Any]) -> int:
        hyper = job["hyperparameters"]
        n_train = len(self._examples(job["training_file"]))
        return math.ceil(n_train / hyper["batch_size"]) * hyper["n_epochs"]

    def _examples(self, file_id: str) -> list[tuple[str, str]]:
        pairs = []
        for line in self.files[file_id]["content"].decode().splitlines():
            if line.strip():
                messages = json.loads(line)["messages"]
                user = next(m["content"] for m in messages if m["role"] == "user")
                answer = [m["content"] for m in messages if m["role"] == "assistant"][-1]
                pairs.append((user, answer))
        return pairs

    def _event(self, job_id: str, message: str, level: str = "info", kind: str = "message",
               data: dict[str, Any] | None = None) -> None:
        self.events[job_id].append({
            "object": "fine_tuning.job.event", "id": f"ftevent-{next(self._ids):06d}",
            "created_at": int(time.time()), "level": level, "message": message,
            "data": data or {}, "type": kind})

    def _job(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.jobs:
            raise Refusal(404, f"Could not find fine tune: {job_id}", param="fine_tune_id")
        return self.jobs[job_id]

    def _public(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[job_id].items() if not k.startswith("_")}

    # -- chat --------------------------------------------------------------------------------
    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Refusal(400, "'messages' is a required property", param="messages")
        if model not in self.models and model not in self.fine_tunable:
            raise Refusal(404, f"The model `{model}` does not exist or you do not have access "
                          "to it.", code="model_not_found")
        self.requests.append(("POST", "/v1/chat/completions", body))
        question = str(messages[-1].get("content", ""))
        answer = _closest(question, self.models[model]) if model in self.models else BASE_ANSWER
        return {"id": f"chatcmpl-{next(self._ids):06d}", "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": len(question.split()),
                          "completion_tokens": len(answer.split()),
                          "total_tokens": len(question.split()) + len(answer.split())}}


def _closest(question: str, pairs: list[tuple[str, str]]) -> str:
    words = set(re.findall(r"\w+", question.lower()))
    return max(pairs, key=lambda p: len(words & set(re.findall(r"\w+", p[0].lower()))))[1]


def _check_chat_jsonl(content: bytes) -> None:
    """OpenAI's chat fine-tuning format: one JSON object per line with a `messages` list."""
    lines = [line for line in content.decode("utf-8").splitlines() if line.strip()]
    if not lines:
        raise Refusal(400, "Invalid file: the file is empty", param="file")
    for number, line in enumerate(lines, 1):
        try:
            example = json.loads(line)
        except json.JSONDecodeError:
            raise Refusal(400, f"Invalid file format: line {number} is not JSON",
                          param="file") from None
        if not isinstance(example, dict) or not isinstance(example.get("messages"), list):
            raise Refusal(400, f"line {number}: missing 'messages' list", param="file")
        if set(example) - EXAMPLE_KEYS:
            raise Refusal(400, f"line {number}: unrecognized key "
                          f"{sorted(set(example) - EXAMPLE_KEYS)[0]}", param="file")
        for message in example["messages"]:
            if not isinstance(message, dict) or message.get("role") not in ROLES \
                    or not isinstance(message.get("content"), str):
                raise Refusal(400, f"line {number}: each message needs a role in "
                              f"{sorted(ROLES)} and string content", param="file")
        if not any(m["role"] == "assistant" for m in example["messages"]):
            raise Refusal(400, f"line {number}: no assistant message", param="file")


def _check_method(body: dict[str, Any]) -> dict[str, Any]:
    """The supervised method's (or the deprecated top-level) hyperparameters, validated."""
    method = body.get("method")
    hyper = body.get("hyperparameters") or {}
    if method is not None:
        if not isinstance(method, dict) or method.get("type") not in (
                "supervised", "dpo", "reinforcement"):
            raise Refusal(400, "method.type must be supervised, dpo or reinforcement",
                          param="method.type")
        unknown = set(method) - {"type", method["type"]}
        if unknown:
            raise Refusal(400, f"Unrecognized method argument: {sorted(unknown)[0]}",
                          param="method")
        hyper = method.get(method["type"], {}).get("hyperparameters", {})
    unknown = set(hyper) - HYPERPARAMETERS
    if unknown:
        raise Refusal(400, f"Unrecognized hyperparameter: {sorted(unknown)[0]}",
                      param="hyperparameters")
    for key in ("n_epochs", "batch_size"):
        value = hyper.get(key, "auto")
        if value != "auto" and not (isinstance(value, int) and value >= 1):
            raise Refusal(400, f"{key} must be 'auto' or a positive integer", param=key)
    lr = hyper.get("learning_rate_multiplier", "auto")
    if lr != "auto" and not (isinstance(lr, int | float) and lr > 0):
        raise Refusal(400, "learning_rate_multiplier must be 'auto' or a positive number",
                      param="learning_rate_multiplier")
    return dict(hyper)


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields of a multipart/form-data body: text values, files as (filename, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        raise Refusal(400, "expected a multipart/form-data upload")
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        form[name] = (filename, payload) if filename is not None else payload.decode()
    return form


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError:
        raise Refusal(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise Refusal(400, "the request body must be a JSON object")
    return body
