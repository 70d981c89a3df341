"""Config sections for managed fine-tuning backends: OpenAI and Amazon Bedrock jobs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from tuneline.config_base import Section

# Polling settings change how long we wait, never what is trained: they are left out of
# model_dump (exclude=True), so tuning them does not change the train stage's fingerprint
# and rerun a paid job. The price: they are not written into the saved config.yaml either.
_NOT_HASHED = " Not part of the stage fingerprint (changing it never reruns a job)."

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


class _PollingMixin(Section):
    poll_interval_s: float = Field(
        10.0, ge=0, exclude=True,
        description="First wait between status polls; it grows by 1.5x while nothing "
        "changes, up to poll_max_interval_s, and drops back when the job moves." + _NOT_HASHED,
    )
    poll_max_interval_s: float = Field(
        120.0, ge=0, exclude=True, description="Longest wait between polls." + _NOT_HASHED,
    )
    timeout_s: float = Field(
        86_400.0, gt=0, exclude=True,
        description="Give up waiting after this many seconds (the job keeps running at the "
        "provider; attach to it again, see job_id / job_name)." + _NOT_HASHED,
    )


class OpenAiJobConfig(_PollingMixin):
    model: str = Field("gpt-4o-mini-2024-07-18", description="Base model to fine-tune.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible API root, e.g. https://api.openai.com/v1 or any "
        "server implementing OpenAI's files and fine_tuning endpoints (default: "
        "$OPENAI_BASE_URL, else OpenAI). Evaluate sends chat completions to the same URL.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never put "
        "keys in YAML).",
    )
    n_epochs: int | Literal["auto"] | None = Field(
        None, description="Epochs (hyperparameters.n_epochs). Default: train.epochs, rounded "
        "to a whole number; 'auto' lets the provider pick.",
    )
    batch_size: int | Literal["auto"] | None = Field(
        None, description="Examples per batch (hyperparameters.batch_size). Default: "
        "train.batch_size; 'auto' lets the provider pick.",
    )
    learning_rate_multiplier: float | Literal["auto"] = Field(
        "auto", description="Scale of the provider's own learning rate "
        "(hyperparameters.learning_rate_multiplier). train.learning_rate is an absolute rate "
        "for the local trainer and does not translate, so the default is 'auto'.",
    )
    suffix: str | None = Field(
        None, max_length=64, description="Up to 64 characters added to the fine-tuned model "
        "name. Default: run.name (cut to 64 characters).",
    )
    seed: int | None = Field(None, description="Job seed. Default: run.seed.")
    job_id: str | None = Field(
        None, description="Attach to this existing fine-tuning job (ftjob-...) instead of "
        "uploading and creating a new one: resumes the wait after a timeout or a crash.",
    )
    request_timeout_s: float = Field(
        120.0, gt=0, exclude=True, description="Timeout of one HTTP request." + _NOT_HASHED,
    )
    max_retries: int = Field(
        3, ge=0, exclude=True, description="SDK retries of one request (429, 5xx, dropped "
        "connections)." + _NOT_HASHED,
    )


class ProvisionedThroughputConfig(Section):
    enabled: bool = Field(
        False, description="Buy provisioned throughput for the custom model after training "
        "(billed per hour until you delete it; tuneline never deletes it).",
    )
    model_units: int = Field(1, ge=1, description="Model units (modelUnits).")
    commitment_duration: Literal["OneMonth", "SixMonths"] | None = Field(
        None, description="Commitment term; none is hourly, no commitment.",
    )
    name: str | None = Field(
        None, max_length=63, description="provisionedModelName. Default: the custom model's "
        "name.",
    )


class BedrockJobConfig(_PollingMixin):
    base_model_id: str = Field("meta.llama3-2-1b-instruct-v1:0",
                               description="Bedrock base model identifier.")
    region: str | None = Field(
        None, description="AWS region. Default: the AWS SDK's (AWS_REGION, AWS_DEFAULT_REGION, "
        "~/.aws/config).",
    )
    bucket: str | None = Field(
        None, description="S3 bucket for the training/validation files and the job's "
        "output (required for backend: bedrock).",
    )
    prefix: str = Field("tuneline", description="S3 key prefix under the bucket.")
    role_arn: str | None = Field(
        None, description="IAM service role Bedrock assumes to read and write the bucket "
        "(required for backend: bedrock).",
    )
    data_format: Literal["auto", "conversation", "prompt_completion"] = Field(
        "auto", description="Training records: 'conversation' (bedrock-conversation-2024, "
        "Amazon Nova) or 'prompt_completion' (Meta Llama, Titan, Cohere). 'auto' picks "
        "conversation for amazon.nova* models, prompt_completion otherwise. Curate's Bedrock "
        "export is uploaded when its format matches; otherwise the files are written from "
        "the curated chat data.",
    )
    custom_model_name: str | None = Field(
        None, max_length=63, description="customModelName. Default: <run.name>-<UTC time>.",
    )
    epoch_count: int | None = Field(
        None, ge=1, description="hyperParameters.epochCount. Default: train.epochs rounded.",
    )
    batch_size: int | None = Field(
        None, ge=1, description="hyperParameters.batchSize. Default: left to Bedrock (Meta "
        "Llama models accept only 1, so train.batch_size is not carried over).",
    )
    learning_rate: float | None = Field(
        None, gt=0, description="hyperParameters.learningRate. Default: train.learning_rate.",
    )
    learning_rate_warmup_steps: int | None = Field(
        None, ge=0, description="hyperParameters.learningRateWarmupSteps (models that take it).",
    )
    hyper_parameters: dict[str, str] = Field(
        default_factory=dict, description="More hyperParameters, sent as strings and applied "
        "last (the names differ per base model; see Bedrock's 'Custom model hyperparameters').",
    )
    job_name: str | None = Field(
        None, description="Attach to this existing customization job instead of uploading "
        "and creating a new one: resumes the wait after a timeout or a crash.",
    )
    provisioned_throughput: ProvisionedThroughputConfig = Field(
        default_factory=ProvisionedThroughputConfig,
        description="Optional provisioned throughput for the custom model.",
    )
    test_invocation: bool = Field(
        True, description="After training, send one Converse request to the custom model "
        "(through its provisioned throughput when there is one) and record the answer; a "
        "refusal is recorded, not fatal.",
    )

    @field_validator("role_arn")
    @classmethod
    def _role_arn_shape(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError("expected an IAM role ARN like "
                             "arn:aws:iam::123456789012:role/BedrockFineTuning")
        return value
