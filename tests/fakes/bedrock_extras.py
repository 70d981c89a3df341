"""What moto's Bedrock lacks, added for tests: job progress, metric files, throughput, Converse.

moto 5 creates a model customization job and leaves it `InProgress` forever, and implements
neither provisioned throughput nor bedrock-runtime's Converse (both raise NotImplementedError).
`advance_jobs` plays Bedrock's part when a job finishes (status, metric CSVs written under the
job's output location as documented). `bedrock_extras()` patches moto's response classes with
the two missing operations: throughput goes Creating -> InService over polls, and Converse
answers for a custom model with the training answer closest to the question (read back from
the job's training file in moto's S3), for any other model with BASE_ANSWER; each call is
recorded with the answer it got.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import boto3
from moto.bedrock.models import bedrock_backends
from moto.bedrock.responses import BedrockResponse
from moto.bedrockruntime.responses import BedrockRuntimeResponse
from moto.core import DEFAULT_ACCOUNT_ID

BASE_ANSWER = "I'm not sure about that."
TRAINING_CSV = "step_number,epoch_number,training_loss,perplexity\n" + "".join(
    f"{step},{step // 4},{2.0 - 0.15 * step:.3f},{7.0 - 0.5 * step:.2f}\n" for step in range(12))
VALIDATION_CSV = "step_number,epoch_number,validation_loss,perplexity\n11,2,0.61,1.84\n"


def jobs(region: str = "us-east-1") -> dict[str, Any]:
    """moto's model customization jobs, by job name."""
    return bedrock_backends[DEFAULT_ACCOUNT_ID][region].model_customization_jobs


def advance_jobs(region: str = "us-east-1", outcome: str = "Completed",
                 failure: str = "") -> None:
    """Finish every InProgress job as Bedrock would: status, and metrics in the output bucket."""
    for job in jobs(region).values():
        if job.status != "InProgress":
            continue
        job.status = outcome
        job.failure_message = failure
        if outcome != "Completed":
            continue
        bucket, _, prefix = job.output_data_config["s3Uri"][len("s3://"):].partition("/")
        folder = f"{prefix.rstrip('/')}/model-customization-job-{job.job_name}"
        s3 = boto3.client("s3", region_name=region)
        s3.put_object(Bucket=bucket, Body=TRAINING_CSV.encode(),
                      Key=f"{folder}/training_artifacts/step_wise_training_metrics.csv")
        s3.put_object(Bucket=bucket, Body=VALIDATION_CSV.encode(),
                      Key=f"{folder}/validation_artifacts/post_fine_tuning_validation/"
                          "validation/validation_metrics.csv")


def _training_answers(model_arn: str, region: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of the job that made `model_arn`, read from moto's S3."""
    for job in jobs(region).values():
        if job.output_model_arn == model_arn:
            bucket, _, key = job.training_data_config["s3Uri"][len("s3://"):].partition("/")
            s3 = boto3.client("s3", region_name=region)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            pairs = []
            for line in body.decode().splitlines():
                record = json.loads(line)
                if "prompt" in record:
                    pairs.append((record["prompt"], record["completion"]))
                else:
                    texts = [m["content"][0]["text"] for m in record["messages"]]
                    pairs.append((texts[0], texts[-1]))
            return pairs
    return []


@contextlib.contextmanager
def bedrock_extras(region: str = "us-east-1") -> Iterator[dict[str, Any]]:
    """Patch moto with provisioned throughput and Converse; yields what they received."""
    seen: dict[str, Any] = {"throughput": [], "converse": [], "throughputs": {}}

    def create_provisioned_model_throughput(self: BedrockResponse) -> str:
        params = json.loads(self.body)
        seen["throughput"].append(params)
        arn = (f"arn:aws:bedrock:{region}:{DEFAULT_ACCOUNT_ID}:provisioned-model/"
               f"pt{len(seen['throughput'])}")
        seen["throughputs"][arn] = {"model_arn": params["modelId"], "polls": 0}
        return json.dumps({"provisionedModelArn": arn})

    def get_provisioned_model_throughput(self: BedrockResponse) -> str:
        arn = unquote(self.path.rsplit("/provisioned-model-throughput/", 1)[-1])
        entry = seen["throughputs"][arn]
        entry["polls"] += 1
        status = "InService" if entry["polls"] >= 2 else "Creating"
        return json.dumps({"provisionedModelArn": arn, "modelArn": entry["model_arn"],
                           "status": status, "modelUnits": 1, "desiredModelUnits": 1,
                           "provisionedModelName": "pt", "foundationModelArn": "x",
                           "desiredModelArn": entry["model_arn"],
                           "creationTime": "2026-11-23T00:00:00Z",
                           "lastModifiedTime": "2026-11-23T00:00:00Z"})

    def converse(self: BedrockRuntimeResponse) -> str:
        model_id = unquote(re.match(r"^/model/(.+)/converse$", self.path).group(1))
        params = json.loads(self.body)
        call = {"modelId": model_id, **params}
        seen["converse"].append(call)
        question = params["messages"][-1]["content"][0]["text"]
        model_arn = seen["throughputs"].get(model_id, {}).get("model_arn", model_id)
        pairs = _training_answers(model_arn, region)
        words = set(re.findall(r"\w+", question.lower()))
        answer = max(pairs, key=lambda p: len(words & set(re.findall(r"\w+", p[0].lower()))))[
            1] if pairs else BASE_ANSWER
        call["answer"] = answer  # what this model said, for tests to trace into the metrics
        return json.dumps({"output": {"message": {"role": "assistant",
                                                  "content": [{"text": answer}]}},
                           "stopReason": "end_turn",
                           "usage": {"inputTokens": 5, "outputTokens": 5, "totalTokens": 10},
                           "metrics": {"latencyMs": 1}})

    patches = [(BedrockResponse, "create_provisioned_model_throughput",
                create_provisioned_model_throughput),
               (BedrockResponse, "get_provisioned_model_throughput",
                get_provisioned_model_throughput),
               (BedrockRuntimeResponse, "converse", converse)]
    try:
        for cls, name, function in patches:
            setattr(cls, name, function)
        yield seen
    finally:
        for cls, name, _ in patches:
            delattr(cls, name)
