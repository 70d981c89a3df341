"""Prometheus metrics of one server instance, in a registry of its own."""

from __future__ import annotations

from tuneline._optional import require

# LLM requests take from tens of milliseconds to the 120 s request timeout.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Pre-created so dashboards show a 0 series before the first rejection or canary request.
REJECT_REASONS = ("rate_limit", "quota", "queue_full", "unauthorized", "timeout")
CANARY_ARMS = ("champion", "candidate")
# The server's last drift check of its recorded traffic (serve.traffic.drift_every_s).
DRIFT_GAUGES = {
    "alert": "1 when the last check raised a drift alert, else 0.",
    "window": "Recorded requests in the last check's window.",
    "out_of_coverage": "Share of the window resembling no training question.",
    "classifier_auc": "AUC of a classifier telling the window from training questions.",
    "mmd_p_value": "MMD permutation p-value of the window against training questions.",
    "psi": "PSI of the window's topic (cluster) shares against training's.",
    "abstention": "Share of the window's answers that declined.",
    "no_passage": "Share of the window's RAG questions retrieval left without a passage.",
    "checked_timestamp_seconds": "Unix time of the last check.",
}


class ServerMetrics:
    """The server's counters, gauges and histograms, all prefixed `tuneline_`.

    Each instance owns a `CollectorRegistry`, so several apps in one process do not collide.

    Raises:
        MissingDependencyError: prometheus_client is not installed.
    """

    def __init__(self) -> None:
        prom = require("prometheus_client")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        reg = self.registry
        self._requests = prom.Counter(
            "tuneline_requests", "Requests answered, by model and HTTP status.",
            ["model", "status"], registry=reg)
        self._latency = prom.Histogram(
            "tuneline_request_latency_seconds", "Time from request to last byte.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=reg)
        self._ttft = prom.Histogram(
            "tuneline_time_to_first_token_seconds", "Time from request to first token.",
            ["model"], buckets=_TTFT_BUCKETS, registry=reg)
        self._prompt_tokens = prom.Counter(
            "tuneline_prompt_tokens", "Prompt tokens processed.", ["model"], registry=reg)
        self._completion_tokens = prom.Counter(
            "tuneline_completion_tokens", "Completion tokens generated.", ["model"], registry=reg)
        self._queue_depth = prom.Gauge(
            "tuneline_queue_depth", "Requests waiting for a batch slot.", registry=reg)
        self._active = prom.Gauge(
            "tuneline_active_sequences", "Sequences being decoded.", registry=reg)
        self._batch = prom.Histogram(
            "tuneline_batch_size", "Sequences per decoding step.",
            buckets=_BATCH_BUCKETS, registry=reg)
        self._canary = prom.Counter(
            "tuneline_canary_requests", "Requests routed to each canary arm.", ["arm"],
            registry=reg)
        self._rollbacks = prom.Counter(
            "tuneline_canary_rollbacks", "Automatic canary rollbacks.", registry=reg)
        self._rejected = prom.Counter(
            "tuneline_rejected", "Requests refused, by reason.", ["reason"], registry=reg)
        self._drift = {name: prom.Gauge(f"tuneline_drift_{name}", help_text, registry=reg)
                       for name, help_text in DRIFT_GAUGES.items()}
        for reason in REJECT_REASONS:
            self._rejected.labels(reason=reason)
        for arm in CANARY_ARMS:
            self._canary.labels(arm=arm)

    def observe_request(
        self,
        model: str,
        status: int,
        latency_s: float,
        prompt_tokens: int,
        completion_tokens: int,
        ttft_s: float | None,
    ) -> None:
        """Record one finished request.

        Args:
            model: The served model name.
            status: The HTTP status answered.
            latency_s: Seconds from request to last byte.
            prompt_tokens: Prompt tokens processed.
            completion_tokens: Completion tokens generated.
            ttft_s: Seconds to the first token, or None when none was generated.
        """
        self._requests.labels(model=model, status=str(status)).inc()
        self._latency.labels(model=model).observe(latency_s)
        self._prompt_tokens.labels(model=model).inc(max(0, prompt_tokens))
        self._completion_tokens.labels(model=model).inc(max(0, completion_tokens))
        if ttft_s is not None:
            self._ttft.labels(model=model).observe(ttft_s)

    def set_queue(self, depth: int, active: int) -> None:
        """Set the waiting-request and active-sequence gauges."""
        self._queue_depth.set(depth)
        self._active.set(active)

    def observe_batch(self, size: int) -> None:
        """Record the number of sequences in one decoding step."""
        self._batch.observe(size)

    def canary_request(self, arm: str) -> None:
        """Count a request routed to canary `arm` ('champion' or 'candidate')."""
        self._canary.labels(arm=arm).inc()

    def canary_rollback(self) -> None:
        """Count an automatic rollback of the canary."""
        self._rollbacks.inc()

    def rejected(self, reason: str) -> None:
        """Count a refused request; `reason` is one of REJECT_REASONS or another short word."""
        self._rejected.labels(reason=reason).inc()

    def set_drift(self, values: dict[str, float]) -> None:
        """Set the `tuneline_drift_*` gauges named in `values` (keys of DRIFT_GAUGES)."""
        for name, value in values.items():
            self._drift[name].set(value)

    def render(self) -> tuple[bytes, str]:
        """Return (the text exposition of every metric, its content type) for GET /metrics."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
