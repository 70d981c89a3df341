"""Config section for the OpenAI-compatible server: engine, batching, guards, canary, feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tuneline.config_base import Section


class BatchingConfig(Section):
    max_batch_size: int = Field(
        16, ge=1, description="Sequences decoded together in one step (continuous batching)."
    )
    max_queue: int = Field(
        64, ge=0, description="Requests waiting for a batch slot; beyond it the server answers "
        "429 with Retry-After instead of queueing without bound.",
    )
    request_timeout_s: float = Field(
        120.0, gt=0, description="A request still unfinished after this long is cancelled (504)."
    )


class AuthConfig(Section):
    api_keys_env: str = Field(
        "TUNELINE_API_KEYS", description="Environment variable holding API keys, comma-separated "
        "(each 'key' or 'name:key'). Keys are hashed (SHA-256) at load and never kept in clear.",
    )
    api_keys_file: Path | None = Field(
        None, description="File with one key per line: 'name:sha256:<hex digest>' (hashed at "
        "rest, made by `tuneline serve-key`) or 'name:key'/'key'; '#' starts a comment.",
    )


class LimitsConfig(Section):
    requests_per_minute: float | None = Field(
        None, gt=0, description="Per API key: token-bucket refill rate (requests per minute)."
    )
    burst: int = Field(10, ge=1, description="Per API key: bucket size (requests at once).")
    daily_token_quota: int | None = Field(
        None, ge=1, description="Per API key: prompt + completion tokens per UTC day (then 429)."
    )


class CanaryConfig(Section):
    percent: float = Field(
        0.0, ge=0, le=100, description="Share of traffic to `candidate` for requests naming "
        "the registered model; 0 turns the canary off.",
    )
    champion: str | None = Field(None, description="Default: <register.name>@champion.")
    candidate: str | None = Field(None, description="Default: <register.name>@candidate.")
    sticky_header: str = Field(
        "x-user-id", description="Request header whose value pins a user to one arm (else the "
        "API key, else the client address).",
    )
    window: int = Field(200, ge=10, description="Recent requests per arm compared.")
    min_requests: int = Field(
        20, ge=1, description="Requests each arm needs in the window before any rollback."
    )
    max_error_rate_factor: float = Field(
        2.0, gt=1, description="Roll back when candidate error rate > factor × champion's "
        "(with an absolute floor of 5 points).",
    )
    max_p95_factor: float = Field(
        2.0, gt=1, description="Roll back when candidate p95 latency > factor × champion's."
    )
    follow_s: float = Field(
        0.0, ge=0, description="Check the registry every N seconds; when the candidate alias "
        "points at another version (e.g. registered by `tuneline watch`), load it and make it "
        "the canary's candidate without a restart, with fresh windows (0: never).",
    )


class TrafficConfig(Section):
    enabled: bool = Field(
        False, description="Record every answered request (time, model, status, latency, "
        "passages retrieved, declined or not, answer length, and the question's embedding with "
        "index.embedder; its text only with serve.log_prompts) for `tuneline monitor "
        "--traffic`. Written by a process at the lowest CPU priority; off by default (it cost "
        "a median 1% of throughput at 16 clients, but 19% in one run of three).",
    )
    path: Path | None = Field(
        None, description="SQLite file (default: <runs_dir>/<run>/traffic.db)."
    )
    max_rows: int = Field(100_000, ge=100, description="Newest rows kept.")
    max_age_days: float = Field(30.0, gt=0, description="Rows older than this are dropped.")
    drift_every_s: float = Field(
        300.0, ge=0, description="How often the server checks its newest recorded requests "
        "against the served version's drift baseline and sets the tuneline_drift_* gauges on "
        "/metrics (0: never; the check needs a baseline: the registered version's, else the "
        "run's evaluate/drift-baseline).",
    )
    drift_window: int = Field(500, ge=20, description="Newest requests each check looks at.")
    drift_webhook: str | None = Field(
        None, description="POST the alerts as JSON to this http(s) URL when a check starts "
        "alerting (once per episode, not every check); e.g. a Slack or Teams incoming webhook.",
    )


class ServeConfig(Section):
    host: str = Field(
        "127.0.0.1", description="Interface to bind. Beyond loopback an API key is required."
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    model: str | None = Field(
        None, description="'name' (latest version), 'name/version' or 'name@alias'; default: "
        "register.name.",
    )
    adapters: dict[str, str] = Field(
        default_factory=dict, description="More models on the same base, served by name: "
        "served name → registry reference or adapter folder (several LoRA adapters, one base).",
    )
    expose_base: bool = Field(
        True, description="Also serve the untuned base model under the name 'base'."
    )
    engine: Literal["transformers", "vllm"] = Field(
        "transformers", description="'transformers' (CPU/GPU, continuous batching) or 'vllm' "
        "(GPU; pip install vllm).",
    )
    max_tokens_default: int = Field(256, ge=1, description="max_tokens when a request omits it.")
    retrieval: Literal["on_request", "always"] = Field(
        "on_request", description="'on_request': '<name>+rag' and requests with \"rag\": true "
        "answer from retrieved passages, '<name>' closed book. 'always' (needs index.enabled): "
        "every chat request is answered with retrieval, whatever model it names; \"rag\": "
        "false and /v1/completions (a raw prompt) are refused, and the quality gate holds the "
        "tuned model with retrieval alone, since nothing else is served (`tuneline init` "
        "writes it for tables).",
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Scheduler.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Rate limits, quotas.")
    canary: CanaryConfig = Field(default_factory=CanaryConfig, description="Canary rollout.")
    feedback_path: Path | None = Field(
        None, description="SQLite file for /v1/feedback (default: <runs_dir>/<run>/feedback.db)."
    )
    log_prompts: bool = Field(
        False, description="Log prompt and completion text (off: logs carry sizes only)."
    )
    traffic: TrafficConfig = Field(default_factory=TrafficConfig,
                                   description="Recording what users ask, for drift.")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests get to finish."
    )
    tracing: bool = Field(
        False, description="OpenTelemetry spans per request (pip install 'tuneline[otel]')."
    )

    @model_validator(mode="after")
    def _adapter_names_free(self) -> ServeConfig:
        if self.expose_base and "base" in self.adapters:
            raise ValueError("serve.adapters: 'base' is the base model's name while "
                             "expose_base is on; pick another name")
        return self
