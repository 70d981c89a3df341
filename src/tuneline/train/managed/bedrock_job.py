"""backend: bedrock — upload Bedrock JSONL to S3, run a model customization job, fetch metrics."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneline.artifacts import Artifact, StageResult, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.curate.formats import bedrock_problems, bedrock_record
from tuneline.curate.stage import BEDROCK_DIR, load_chat
from tuneline.errors import ConfigError, DataError, ManagedJobError
from tuneline.train.managed.common import (
    JOB_EVENTS,
    Poll,
    loss_summary,
    poll_until_done,
    require_sdk,
    to_float,
    utc_stamp,
    write_remote_model,
)
from tuneline.train.managed.config import BedrockJobConfig

PROVIDER = "bedrock"
TRAIN_LOG = "train_log.jsonl"
JOB_TERMINAL = ("Completed", "Failed", "Stopped")
THROUGHPUT_TERMINAL = ("InService", "Failed")
# Where Bedrock writes metrics under the job's output location, as documented in
# "Analyze the results of a model customization job":
#   model-customization-job-<id>/training_artifacts/step_wise_training_metrics.csv
#   model-customization-job-<id>/validation_artifacts/post_fine_tuning_validation/validation/
#       validation_metrics.csv
METRIC_FILES = {"step_wise_training_metrics.csv": "training_loss",
                "validation_metrics.csv": "validation_loss"}


def aws_session(bc: BedrockJobConfig) -> Any:
    """A boto3 session in `bc.region` (or the SDK's default region, which must exist)."""
    boto3 = require_sdk("boto3")
    session = boto3.session.Session(region_name=bc.region)
    if not session.region_name:
        raise ConfigError(["train.bedrock.region: no AWS region is set; set it "
                           "(train.bedrock.region=us-east-1) or export AWS_REGION"])
    return session


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn botocore's exceptions into one ManagedJobError saying what was being done."""
    errors = require_sdk("botocore.exceptions")
    try:
        yield
    except errors.ClientError as exc:
        error = exc.response.get("Error", {})
        raise ManagedJobError(f"AWS refused {what} ({error.get('Code', '?')}): "
                              f"{error.get('Message', exc)}") from None
    except errors.BotoCoreError as exc:
        raise ManagedJobError(f"AWS SDK error while {what}: {exc}") from None


def run_bedrock_job(cfg: PipelineConfig, curated: Artifact, tmp: Path) -> StageResult:
    """Fine-tune `train.bedrock.base_model_id` on the curated data; write remote_model.json."""
    bc = cfg.train.bedrock
    if not bc.job_name:
        _check_config(bc)
    session = aws_session(bc)
    bedrock = session.client("bedrock")
    files, fmt, source, warnings = _training_files(cfg, curated, tmp)
    if bc.job_name:
        job_name, request = bc.job_name, {"attached_to": bc.job_name}
    else:
        job_name = _resource_name(cfg.run.name)
        request = job_request(cfg, job_name, _upload(session.client("s3"), bc, job_name, files))
        with aws_call(f"creating model customization job {job_name}"):
            bedrock.create_model_customization_job(**request)
    events: list[dict[str, Any]] = []
    job = _wait_for_job(bedrock, bc, job_name, events)
    write_jsonl(tmp / JOB_EVENTS, events)
    metrics, log = _job_metrics(session.client("s3"), job, tmp)
    write_jsonl(tmp / TRAIN_LOG, log)
    model_arn = job["outputModelArn"]
    throughput = provision_throughput(bedrock, bc, job) if bc.provisioned_throughput.enabled \
        else {"skipped": "train.bedrock.provisioned_throughput.enabled is false"}
    invoke_id = throughput.get("provisioned_model_arn") or model_arn
    record = {
        "provider": PROVIDER,
        "model_id": model_arn,
        "model_name": job.get("outputModelName"),
        "invoke_model_id": invoke_id,
        "provisioned_model_arn": throughput.get("provisioned_model_arn"),
        "job_id": job["jobArn"],
        "job_name": job_name,
        "base_model": bc.base_model_id,
        "region": session.region_name,
        "status": job["status"],
        "request": request,
        "hyperparameters": job.get("hyperParameters", request.get("hyperParameters")),
        "training_data": job.get("trainingDataConfig"),
        "validation_data": job.get("validationDataConfig"),
        "output_data": job.get("outputDataConfig"),
        "data_format": fmt,
        "data_source": source,
        "data_warnings": warnings,
        "metrics": metrics,
        "provisioned_throughput": throughput,
        "test_invocation": invoke_once(session, cfg, curated, invoke_id),
    }
    write_remote_model(tmp, _jsonable(record))
    return StageResult(
        counts={"examples": _count(files["train"]), "steps": len(log)},
        details={"backend": PROVIDER, "model_id": model_arn, "job_id": job["jobArn"],
                 "base_model": bc.base_model_id, "region": session.region_name,
                 "provisioned_model_arn": record["provisioned_model_arn"], **metrics},
    )


def job_request(cfg: PipelineConfig, job_name: str, uris: dict[str, str]) -> dict[str, Any]:
    """The documented CreateModelCustomizationJob request (hyperParameters are strings)."""
    bc = cfg.train.bedrock
    hyper = {"epochCount": str(bc.epoch_count or max(1, round(cfg.train.epochs))),
             "learningRate": repr(float(bc.learning_rate or cfg.train.learning_rate))}
    if bc.batch_size is not None:
        hyper["batchSize"] = str(bc.batch_size)
    if bc.learning_rate_warmup_steps is not None:
        hyper["learningRateWarmupSteps"] = str(bc.learning_rate_warmup_steps)
    hyper.update(bc.hyper_parameters)
    request: dict[str, Any] = {
        "jobName": job_name,
        "customModelName": bc.custom_model_name or job_name,
        "roleArn": bc.role_arn,
        "baseModelIdentifier": bc.base_model_id,
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": uris["train"]},
        "outputDataConfig": {"s3Uri": uris["output"]},
        "hyperParameters": hyper,
    }
    if "validation" in uris:
        request["validationDataConfig"] = {"validators": [{"s3Uri": uris["validation"]}]}
    return request


def data_format(bc: BedrockJobConfig) -> str:
    """'conversation' for Amazon Nova base models, 'prompt_completion' for the rest, or as set."""
    if bc.data_format != "auto":
        return bc.data_format
    return "conversation" if bc.base_model_id.startswith("amazon.nova") else "prompt_completion"


def _check_config(bc: BedrockJobConfig) -> None:
    problems = []
    if not bc.bucket:
        problems.append("train.bedrock.bucket: required for train.backend: bedrock; name the "
                        "S3 bucket for the training files and the job's output")
    if not bc.role_arn:
        problems.append("train.bedrock.role_arn: required for train.backend: bedrock; the IAM "
                        "service role Bedrock assumes to read and write that bucket "
                        "(arn:aws:iam::<account>:role/<name>)")
    if problems:
        raise ConfigError(problems)


def _training_files(
    cfg: PipelineConfig, curated: Artifact, tmp: Path
) -> tuple[dict[str, Path], str, str, list[str]]:
    """Curate's Bedrock export when its format fits the base model, else files written here."""
    fmt = data_format(cfg.train.bedrock)
    exported = curated.manifest.get("details", {}).get("bedrock", {})
    folder = curated.path / BEDROCK_DIR
    if exported.get("format") == fmt and (folder / "train.jsonl").is_file():
        files = {name: folder / f"{name}.jsonl" for name in ("train", "validation")
                 if (folder / f"{name}.jsonl").is_file()}
        return files, fmt, f"curate/{BEDROCK_DIR}", list(exported.get("problems", []))
    out = tmp / "bedrock_data"
    out.mkdir()
    files, warnings = {}, []
    for name, split in (("train", "train"), ("validation", "val")):
        records = [bedrock_record(example, fmt) for example in load_chat(curated, split)]
        if records:  # Bedrock rejects an empty validation file
            write_jsonl(out / f"{name}.jsonl", records)
            files[name] = out / f"{name}.jsonl"
            warnings += [message for _, message in bedrock_problems(records, fmt, name)]
    if "train" not in files:
        raise DataError(f"{curated.path / 'train.jsonl'}: no training examples")
    return files, fmt, "written from curate's chat data", warnings


def _upload(s3: Any, bc: BedrockJobConfig, job_name: str, files: dict[str, Path]) -> dict[str, str]:
    """Put the JSONL files under s3://<bucket>/<prefix>/<job>/; return their URIs + output URI."""
    base = f"{bc.prefix.strip('/')}/{job_name}".lstrip("/")
    uris = {}
    for name, path in files.items():
        key = f"{base}/{name}.jsonl"
        with aws_call(f"uploading {path.name} to s3://{bc.bucket}/{key} (check that the "
                      "bucket exists in this account and region: train.bedrock.bucket)"), \
                path.open("rb") as handle:
            s3.put_object(Bucket=bc.bucket, Key=key, Body=handle)
        uris[name] = f"s3://{bc.bucket}/{key}"
    uris["output"] = f"s3://{bc.bucket}/{base}/output/"
    return uris


def _wait_for_job(
    bedrock: Any, bc: BedrockJobConfig, job_name: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    def fetch() -> Poll:
        with aws_call(f"polling model customization job {job_name}"):
            job = bedrock.get_model_customization_job(jobIdentifier=job_name)
        news = []
        if not events or events[-1]["status"] != job["status"]:
            events.append({"status": job["status"],
                           "last_modified": str(job.get("lastModifiedTime", ""))})
            news.append(job["status"])
        latest["job"] = job
        return Poll(job["status"], job["status"] in JOB_TERMINAL, news)

    def on_timeout(elapsed: float) -> Exception:
        return ManagedJobError(
            f"Bedrock model customization job {job_name} has not finished after "
            f"{elapsed:.0f} s (train.bedrock.timeout_s={bc.timeout_s:g}); it keeps running "
            f"on AWS. Wait for it again with: train.bedrock.job_name={job_name}")

    poll_until_done(fetch, bc.poll_interval_s, bc.poll_max_interval_s, bc.timeout_s, on_timeout,
                    f"train (bedrock {job_name})")
    job = latest["job"]
    if job["status"] != "Completed":
        said = f": {job['failureMessage']}" if job.get("failureMessage") else ""
        raise ManagedJobError(f"Bedrock model customization job {job_name} "
                              f"({job.get('jobArn')}) {job['status']}{said}")
    if not job.get("outputModelArn"):
        raise ManagedJobError(f"Bedrock model customization job {job_name} completed but names "
                              "no outputModelArn")
    return job


def _job_metrics(
    s3: Any, job: dict[str, Any], tmp: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Losses from the job (trainingMetrics, validationMetrics) and the output CSVs in S3."""
    metrics: dict[str, Any] = {}
    if (loss := (job.get("trainingMetrics") or {}).get("trainingLoss")) is not None:
        metrics["training_loss"] = loss
    validation = [v["validationLoss"] for v in job.get("validationMetrics") or []
                  if "validationLoss" in v]
    if validation:
        metrics["validation_loss"] = validation[-1]
    tables = _metric_tables(s3, job.get("outputDataConfig", {}).get("s3Uri", ""), tmp)
    log = []
    for row in tables.get("step_wise_training_metrics.csv", []):
        step, loss = to_float(row.get("step_number")), to_float(row.get("training_loss"))
        if step is not None and loss is not None:
            log.append({"step": int(step), "epoch": to_float(row.get("epoch_number")),
                        "loss": loss})
    metrics.update(loss_summary([e["loss"] for e in log]))
    val_rows = [v for row in tables.get("validation_metrics.csv", [])
                if (v := to_float(row.get("validation_loss"))) is not None]
    if val_rows:
        metrics["val_loss_last"] = val_rows[-1]
    if not tables:
        metrics["output_metrics"] = "no metric CSVs under the job's output location"
    return metrics, log


def _metric_tables(s3: Any, output_uri: str, tmp: Path) -> dict[str, list[dict[str, str]]]:
    match = re.match(r"^s3://([^/]+)/?(.*)$", output_uri)
    if not match:
        return {}
    bucket, prefix = match.groups()
    tables: dict[str, list[dict[str, str]]] = {}
    with aws_call(f"listing the job's output under {output_uri}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            if name in METRIC_FILES and name not in tables:
                text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
                (tmp / name).write_text(text, encoding="utf-8")
                tables[name] = list(csv.DictReader(io.StringIO(text)))
    return tables


def provision_throughput(bedrock: Any, bc: BedrockJobConfig, job: dict[str, Any]) -> dict[str, Any]:
    """Buy provisioned throughput for the custom model and wait until it is InService."""
    pt = bc.provisioned_throughput
    request: dict[str, Any] = {"modelUnits": pt.model_units,
                               "provisionedModelName": pt.name or job["outputModelName"],
                               "modelId": job["outputModelArn"]}
    if pt.commitment_duration:
        request["commitmentDuration"] = pt.commitment_duration
    try:
        with aws_call("creating provisioned throughput for the custom model"):
            arn = bedrock.create_provisioned_model_throughput(**request)["provisionedModelArn"]
    except NotImplementedError as exc:  # moto, and endpoints without the operation
        return {"skipped": f"CreateProvisionedModelThroughput is not implemented by this "
                           f"endpoint ({exc})", "request": request}
    latest: dict[str, Any] = {}

    def fetch() -> Poll:
        with aws_call(f"polling provisioned throughput {arn}"):
            latest.update(bedrock.get_provisioned_model_throughput(provisionedModelId=arn))
        return Poll(latest["status"], latest["status"] in THROUGHPUT_TERMINAL, [])

    poll_until_done(fetch, bc.poll_interval_s, bc.poll_max_interval_s, bc.timeout_s,
                    lambda s: ManagedJobError(f"provisioned throughput {arn} is not InService "
                                              f"after {s:.0f} s"), "provision (bedrock)")
    if latest["status"] != "InService":
        raise ManagedJobError(f"provisioned throughput {arn} for {job['outputModelArn']} "
                              f"{latest['status']}: {latest.get('failureMessage', '')}")
    return {"provisioned_model_arn": arn, "status": latest["status"], "request": request}


def invoke_once(
    session: Any, cfg: PipelineConfig, curated: Artifact, model_id: str
) -> dict[str, Any]:
    """One Converse call to the tuned model; a refusal is recorded, not raised."""
    if not cfg.train.bedrock.test_invocation:
        return {"skipped": "train.bedrock.test_invocation is false"}
    examples = load_chat(curated, "val") or load_chat(curated, "train")
    question = next(m["content"] for m in examples[0]["messages"] if m["role"] == "user")
    try:
        answer = converse(session.client("bedrock-runtime"), model_id, question,
                          cfg.evaluate.max_new_tokens)
    except NotImplementedError as exc:  # moto implements no Converse
        return {"skipped": f"bedrock-runtime Converse is not implemented by this endpoint "
                           f"({exc})", "model_id": model_id}
    except ManagedJobError as exc:
        return {"ok": False, "model_id": model_id, "question": question, "error": str(exc)}
    return {"ok": True, "model_id": model_id, "question": question, "answer": answer}


def converse(runtime: Any, model_id: str, question: str, max_tokens: int) -> str:
    """One greedy single-turn answer through the bedrock-runtime Converse API."""
    with aws_call(f"invoking {model_id} (Converse)"):
        response = runtime.converse(
            modelId=model_id,
            messages=[{"role": "user", "content": [{"text": question}]}],
            inferenceConfig={"maxTokens": max_tokens, "temperature": 0.0},
        )
    blocks = response["output"]["message"]["content"]
    return "".join(block.get("text", "") for block in blocks)


def _resource_name(run_name: str) -> str:
    """A job/model name Bedrock accepts: letters, digits and single hyphens, <= 63 chars."""
    stamp = utc_stamp()
    base = re.sub(r"[^0-9A-Za-z]+", "-", run_name).strip("-") or "tuneline"
    return f"{base[: 62 - len(stamp)]}-{stamp}"


def _count(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
