"""backend: openai — upload the curated chat JSONL, run a fine-tuning job, fetch its metrics."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneline.artifacts import Artifact, StageResult, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError, DataError, ManagedJobError
from tuneline.train.managed.common import (
    JOB_EVENTS,
    Poll,
    loss_summary,
    poll_until_done,
    require_sdk,
    to_float,
    write_remote_model,
)
from tuneline.train.managed.config import OpenAiJobConfig

PROVIDER = "openai"
RESULTS_CSV = "results.csv"
TRAIN_LOG = "train_log.jsonl"
TERMINAL = ("succeeded", "failed", "cancelled")


def openai_client(oc: OpenAiJobConfig) -> Any:
    """An official `openai.OpenAI` client for `oc.base_url`, keyed from `oc.api_key_env`."""
    openai = require_sdk("openai")
    key = os.environ.get(oc.api_key_env, "").strip()
    if not key:
        raise ConfigError([
            f"train.openai.api_key_env: the environment variable {oc.api_key_env} is not set "
            f"or empty. Export the provider's API key in it, or name the variable that holds "
            f"it (train.openai.api_key_env=MY_KEY_VARIABLE)."
        ])
    return openai.OpenAI(api_key=key, base_url=oc.base_url, timeout=oc.request_timeout_s,
                         max_retries=oc.max_retries)


@contextmanager
def provider_call(client: Any, what: str) -> Iterator[None]:
    """Turn the SDK's exceptions into one ManagedJobError naming the endpoint and the step."""
    openai = require_sdk("openai")
    where = f"the OpenAI API at {client.base_url}"
    try:
        yield
    except openai.APIStatusError as exc:
        hint = " Check the API key." if exc.status_code in (401, 403) else ""
        raise ManagedJobError(f"{where} refused {what} (HTTP {exc.status_code}): "
                              f"{error_message(exc)}.{hint}") from None
    except openai.APIConnectionError as exc:
        raise ManagedJobError(f"cannot reach {where} while {what}: {exc}. Check "
                              "train.openai.base_url and the network.") from None


def error_message(exc: Any) -> str:
    """The provider's own words from an SDK error (its `error.message` when there is one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "message", exc))


def run_openai_job(cfg: PipelineConfig, curated: Artifact, tmp: Path) -> StageResult:
    """Fine-tune `train.openai.model` on curate's train/val.jsonl; write remote_model.json."""
    oc = cfg.train.openai
    client = openai_client(oc)
    train_path, val_path = curated.path / "train.jsonl", curated.path / "val.jsonl"
    n_train, n_val = _count_lines(train_path), _count_lines(val_path)
    if not n_train:
        raise DataError(f"{train_path}: no training examples")
    if oc.job_id:
        with provider_call(client, f"retrieving job {oc.job_id}"):
            job = client.fine_tuning.jobs.retrieve(oc.job_id)
        request: dict[str, Any] = {"attached_to": oc.job_id}
    else:
        files = {"training_file": _upload(client, train_path)}
        if n_val:
            files["validation_file"] = _upload(client, val_path)
        request = job_request(cfg, files)
        with provider_call(client, "creating the fine-tuning job"):
            job = client.fine_tuning.jobs.create(**request)
    events: list[dict[str, Any]] = []
    job = _wait(client, oc, job.id, events)
    write_jsonl(tmp / JOB_EVENTS, events)
    metrics, log = _result_metrics(client, job, tmp)
    write_jsonl(tmp / TRAIN_LOG, log)
    record = {
        "provider": PROVIDER,
        "model_id": job.fine_tuned_model,
        "job_id": job.id,
        "base_model": job.model,
        "endpoint": str(client.base_url),
        "status": job.status,
        "request": request,
        "hyperparameters": _plain(job.hyperparameters) or request.get("method"),
        "method": _plain(getattr(job, "method", None)),
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "result_files": list(job.result_files or []),
        "trained_tokens": job.trained_tokens,
        "seed": job.seed,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "metrics": metrics,
    }
    write_remote_model(tmp, record)
    return StageResult(
        counts={"examples": n_train, "steps": int(metrics.get("steps", 0)),
                "tokens": int(job.trained_tokens or 0)},
        details={"backend": PROVIDER, "model_id": job.fine_tuned_model, "job_id": job.id,
                 "base_model": job.model, "endpoint": str(client.base_url),
                 **{k: v for k, v in metrics.items() if k != "steps"}},
    )


def job_request(cfg: PipelineConfig, files: dict[str, str]) -> dict[str, Any]:
    """The documented `POST /v1/fine_tuning/jobs` body (supervised method, hyperparameters)."""
    oc = cfg.train.openai
    hyperparameters = {
        "n_epochs": oc.n_epochs if oc.n_epochs is not None else max(1, round(cfg.train.epochs)),
        "batch_size": oc.batch_size if oc.batch_size is not None else cfg.train.batch_size,
        "learning_rate_multiplier": oc.learning_rate_multiplier,
    }
    suffix = oc.suffix or re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.run.name)[:64]
    return {
        "model": oc.model,
        **files,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "suffix": suffix,
        "seed": oc.seed if oc.seed is not None else cfg.run.seed,
    }


def _upload(client: Any, path: Path) -> str:
    with provider_call(client, f"uploading {path.name}"), path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    return str(uploaded.id)


def _wait(client: Any, oc: OpenAiJobConfig, job_id: str, events: list[dict[str, Any]]) -> Any:
    """Poll the job and its events until it ends; raise with the provider's message if it failed."""
    seen: set[str] = set()
    latest: dict[str, Any] = {}

    def fetch() -> Poll:
        with provider_call(client, f"polling job {job_id}"):
            job = client.fine_tuning.jobs.retrieve(job_id)
            page = client.fine_tuning.jobs.list_events(job_id, limit=100)
        new = [e for e in reversed(page.data) if e.id not in seen]  # the API lists newest first
        seen.update(e.id for e in new)
        events.extend(e.model_dump(mode="json") for e in new)
        latest["job"] = job
        return Poll(job.status, job.status in TERMINAL, [e.message for e in new])

    def on_timeout(elapsed: float) -> Exception:
        return ManagedJobError(
            f"OpenAI fine-tuning job {job_id} has not finished after {elapsed:.0f} s "
            f"(train.openai.timeout_s={oc.timeout_s:g}); it keeps running at the provider. "
            f"Wait for it again with: train.openai.job_id={job_id}")

    poll_until_done(fetch, oc.poll_interval_s, oc.poll_max_interval_s, oc.timeout_s, on_timeout,
                    f"train (openai {job_id})")
    job = latest["job"]
    if job.status != "succeeded":
        error = job.error
        said = (f": {error.message} (code {error.code}"
                f"{', param ' + error.param if error.param else ''})"
                if error is not None and error.message else "")
        last = f"; last event: {events[-1]['message']}" if events else ""
        raise ManagedJobError(f"OpenAI fine-tuning job {job_id} {job.status}{said}{last}")
    if not job.fine_tuned_model:
        raise ManagedJobError(f"OpenAI fine-tuning job {job_id} succeeded but names no "
                              "fine_tuned_model")
    return job


def _result_metrics(
    client: Any, job: Any, tmp: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Download the job's result CSV (step, train_loss, valid_loss, ...) and summarise it."""
    rows: list[dict[str, str]] = []
    for file_id in job.result_files or []:
        with provider_call(client, f"downloading result file {file_id}"):
            text = decode_results(client.files.content(file_id).content)
        (tmp / RESULTS_CSV).write_text(text, encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
        break  # one result file per job, as documented
    return summarise_results(rows)


def decode_results(raw: bytes) -> str:
    """Result CSV text; OpenAI serves it base64-encoded, compatible servers often plain."""
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("step"):
        return text + "\n"
    try:
        return base64.b64decode(text, validate=True).decode("utf-8").strip() + "\n"
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text + "\n"


def summarise_results(rows: list[dict[str, str]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (steps, loss first/last, last validation loss/accuracy) and a train log."""
    log = []
    for row in rows:
        step, loss = to_float(row.get("step")), to_float(row.get("train_loss"))
        if step is None or loss is None:
            continue
        entry: dict[str, Any] = {"step": int(step), "loss": loss}
        valid = to_float(row.get("valid_loss"))
        if valid is not None:
            entry["val_loss"] = valid
        log.append(entry)
    metrics: dict[str, Any] = {"steps": len(log), **loss_summary([e["loss"] for e in log])}
    for column in ("valid_loss", "valid_mean_token_accuracy", "full_valid_loss",
                   "full_valid_mean_token_accuracy", "train_accuracy"):
        values = [v for row in rows if (v := to_float(row.get(column))) is not None]
        if values:
            metrics[f"{column}_last"] = values[-1]
    return metrics, log


def _count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") \
        else value
