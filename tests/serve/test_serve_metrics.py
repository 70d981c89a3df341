"""Server metrics: values observed come back in the Prometheus exposition, per instance."""

from __future__ import annotations

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tuneline.serve.prometheus import ServerMetrics


def samples(metrics: ServerMetrics) -> dict[tuple[str, frozenset], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
    }


def value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def test_request_metrics():
    m = ServerMetrics()
    m.observe_request("tuned", 200, 0.3, prompt_tokens=12, completion_tokens=30, ttft_s=0.04)
    m.observe_request("tuned", 200, 1.7, prompt_tokens=8, completion_tokens=5, ttft_s=0.2)
    m.observe_request("tuned", 429, 0.001, prompt_tokens=0, completion_tokens=0, ttft_s=None)
    m.observe_request("base", 200, 0.5, prompt_tokens=3, completion_tokens=4, ttft_s=0.1)
    assert value(m, "tuneline_requests_total", model="tuned", status="200") == 2
    assert value(m, "tuneline_requests_total", model="tuned", status="429") == 1
    assert value(m, "tuneline_requests_total", model="base", status="200") == 1
    assert value(m, "tuneline_prompt_tokens_total", model="tuned") == 20
    assert value(m, "tuneline_completion_tokens_total", model="tuned") == 35
    assert value(m, "tuneline_completion_tokens_total", model="base") == 4
    assert value(m, "tuneline_request_latency_seconds_count", model="tuned") == 3
    assert value(m, "tuneline_request_latency_seconds_sum", model="tuned") == pytest.approx(2.001)
    assert value(m, "tuneline_request_latency_seconds_bucket", model="tuned", le="0.5") == 2
    # No first token for the refused request: 2 TTFT observations, not 3.
    assert value(m, "tuneline_time_to_first_token_seconds_count", model="tuned") == 2
    assert value(m, "tuneline_time_to_first_token_seconds_bucket", model="tuned",
                 le="0.05") == 1


def test_scheduler_metrics():
    m = ServerMetrics()
    m.set_queue(depth=5, active=3)
    m.set_queue(depth=2, active=7)
    for size in (1, 3, 16, 64):
        m.observe_batch(size)
    assert value(m, "tuneline_queue_depth") == 2
    assert value(m, "tuneline_active_sequences") == 7
    assert value(m, "tuneline_batch_size_count") == 4
    assert value(m, "tuneline_batch_size_sum") == 84
    assert value(m, "tuneline_batch_size_bucket", le="2.0") == 1
    assert value(m, "tuneline_batch_size_bucket", le="4.0") == 2
    assert value(m, "tuneline_batch_size_bucket", le="32.0") == 3
    assert value(m, "tuneline_batch_size_bucket", le="64.0") == 4


def test_canary_and_rejection_metrics():
    m = ServerMetrics()
    assert value(m, "tuneline_rejected_total", reason="queue_full") == 0  # pre-created
    assert value(m, "tuneline_canary_requests_total", arm="candidate") == 0
    assert value(m, "tuneline_canary_rollbacks_total") == 0
    for arm in ("champion", "champion", "candidate"):
        m.canary_request(arm)
    m.canary_rollback()
    for reason in ("rate_limit", "rate_limit", "unauthorized", "bad_json"):
        m.rejected(reason)
    assert value(m, "tuneline_canary_requests_total", arm="champion") == 2
    assert value(m, "tuneline_canary_requests_total", arm="candidate") == 1
    assert value(m, "tuneline_canary_rollbacks_total") == 1
    assert value(m, "tuneline_rejected_total", reason="rate_limit") == 2
    assert value(m, "tuneline_rejected_total", reason="unauthorized") == 1
    assert value(m, "tuneline_rejected_total", reason="bad_json") == 1
    assert value(m, "tuneline_rejected_total", reason="quota") == 0


def test_instances_are_independent():
    a, b = ServerMetrics(), ServerMetrics()
    a.observe_request("m", 200, 0.1, 1, 1, 0.01)
    a.rejected("timeout")
    a.set_queue(4, 1)
    assert value(a, "tuneline_requests_total", model="m", status="200") == 1
    assert ("tuneline_requests_total", frozenset({("model", "m"), ("status", "200")})) \
        not in samples(b)
    assert value(b, "tuneline_rejected_total", reason="timeout") == 0
    assert value(b, "tuneline_queue_depth") == 0


def test_render_content_type_and_prefix():
    m = ServerMetrics()
    body, content_type = m.render()
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert names and all(n.startswith("tuneline_") for n in names)
    assert {"tuneline_requests", "tuneline_request_latency_seconds",
            "tuneline_time_to_first_token_seconds", "tuneline_queue_depth",
            "tuneline_active_sequences", "tuneline_batch_size"} <= names
