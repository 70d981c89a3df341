"""The HTTP API over real HTTP (uvicorn in a thread) on the tiny model: streaming, errors,
guards, queue bounds, timeouts, feedback, metrics, canary."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from openai import APIStatusError, OpenAI  # noqa: E402

from conftest import serve_in_thread  # noqa: E402
from tuneline.serve.app import Route, build_app  # noqa: E402
from tuneline.serve.config import ServeConfig  # noqa: E402
from tuneline.serve.engines.transformers_engine import TransformersEngine  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the capital of Peru?"}]


@pytest.fixture
def engine(tiny_model_dir: Path):
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    yield engine
    engine.close()


def _settings(**overrides) -> ServeConfig:
    return ServeConfig.model_validate({"max_tokens_default": 8, **overrides})


def _client(url: str, key: str = "none") -> OpenAI:
    return OpenAI(base_url=url, api_key=key, max_retries=0)


def test_streaming_matches_the_whole_answer_and_ends_with_done(engine):
    with serve_in_thread(build_app({"tiny": engine}, _settings())) as url:
        client = _client(url)
        whole = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=20,
                                               temperature=0.9, seed=7)
        chunks = list(client.chat.completions.create(
            model="tiny", messages=QUESTION, max_tokens=20, temperature=0.9, seed=7,
            stream=True, stream_options={"include_usage": True}))
        with httpx.stream("POST", f"{url}/chat/completions", json={
                "model": "tiny", "messages": QUESTION, "max_tokens": 5, "stream": True}) as raw:
            lines = [line for line in raw.iter_lines() if line]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and
              c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_completions_whole_and_streamed(engine):
    with serve_in_thread(build_app({"tiny": engine}, _settings())) as url:
        client = _client(url)
        whole = client.completions.create(model="tiny", prompt="The capital of Peru is",
                                          max_tokens=6, temperature=0)
        streamed = list(client.completions.create(model="tiny", prompt="The capital of Peru is",
                                                  max_tokens=6, temperature=0, stream=True))
    assert whole.object == "text_completion" and whole.usage.completion_tokens == 6
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text
    assert streamed[-1].choices[0].finish_reason == "length"


def test_bad_requests_get_openai_shaped_errors(engine):
    with serve_in_thread(build_app({"tiny": engine}, _settings())) as url:
        client = _client(url)
        with pytest.raises(APIStatusError) as unknown:
            client.chat.completions.create(model="nope", messages=QUESTION)
        with pytest.raises(APIStatusError) as too_long:
            client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=10**6)
        with pytest.raises(APIStatusError) as two:
            client.chat.completions.create(model="tiny", messages=QUESTION, n=2)
        malformed = httpx.post(f"{url}/chat/completions", content=b"{not json",
                               headers={"content-type": "application/json"})
        no_messages = httpx.post(f"{url}/chat/completions", json={"model": "tiny"})
    assert unknown.value.status_code == 404 and unknown.value.body["param"] == "model"
    assert unknown.value.body["code"] == "model_not_found"
    assert too_long.value.status_code == 400 and too_long.value.body["param"] == "max_tokens"
    assert too_long.value.body["code"] == "context_length_exceeded"
    assert two.value.status_code == 400 and two.value.body["param"] == "n"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["message"] == "request body is not valid JSON"
    assert no_messages.status_code == 400
    assert no_messages.json()["error"] | {"message": ""} == {
        "message": "", "type": "invalid_request_error", "param": "messages", "code": None}


def test_models_list_names_adapters_and_their_base(engine):
    routes = {"m": Route(engine, root="tiny-base", parent="m/2"),
              "m/2": Route(engine, root="tiny-base"), "base": Route(engine, root="tiny-base")}
    with serve_in_thread(build_app(routes, _settings())) as url:
        cards = {m.id: m for m in _client(url).models.list()}
    assert set(cards) == {"m", "m/2", "base"}
    assert cards["m"].model_extra["parent"] == "m/2"
    assert cards["m"].model_extra["root"] == "tiny-base"


def test_api_keys_guard_every_route_but_health_ready_metrics(engine):
    app = build_app({"tiny": engine}, _settings(),
                    environ={"TUNELINE_API_KEYS": "alice:sk-alice,bob:sk-bob"})
    with serve_in_thread(app) as url:
        root = url.removesuffix("/v1")
        for path in ("/health", "/ready", "/metrics"):
            assert httpx.get(root + path).status_code == 200
        for key in ("none", "sk-mallory"):
            with pytest.raises(APIStatusError) as refused:
                _client(url, key).chat.completions.create(model="tiny", messages=QUESTION)
            assert refused.value.status_code == 401
            assert refused.value.body["code"] == "invalid_api_key"
        assert httpx.get(f"{url}/models").status_code == 401
        reply = _client(url, "sk-alice").chat.completions.create(model="tiny", messages=QUESTION)
        assert reply.choices[0].finish_reason in ("stop", "length")
    assert "sk-alice" not in repr(vars(app.state.tuneline.keys))


def test_rate_limit_is_per_key_with_retry_after(engine):
    app = build_app({"tiny": engine}, _settings(limits={"requests_per_minute": 6, "burst": 2}),
                    environ={"TUNELINE_API_KEYS": "alice:sk-alice,bob:sk-bob"})
    with serve_in_thread(app) as url:
        alice = {"authorization": "Bearer sk-alice"}
        statuses = [httpx.get(f"{url}/models", headers=alice).status_code for _ in range(3)]
        limited = httpx.get(f"{url}/models", headers=alice)
        bob = httpx.get(f"{url}/models", headers={"authorization": "Bearer sk-bob"})
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 11
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert bob.status_code == 200


def test_daily_token_quota_refuses_once_spent(engine):
    app = build_app({"tiny": engine}, _settings(limits={"daily_token_quota": 30}))
    with serve_in_thread(app) as url:
        client = _client(url)
        first = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=8)
        assert first.usage.total_tokens >= 30  # the prompt alone is ~20 tokens
        with pytest.raises(APIStatusError) as spent:
            client.chat.completions.create(model="tiny", messages=QUESTION)
    assert spent.value.status_code == 429 and spent.value.body["code"] == "insufficient_quota"
    assert int(spent.value.response.headers["retry-after"]) > 0


def _held(engine):
    """Hold the engine's decode loop until the returned event is set."""
    release = threading.Event()
    engine.batcher.on_step = lambda size: release.wait(20)
    return release


def test_a_full_queue_answers_429_never_5xx(tiny_model_dir):
    from tuneline.serve.config import BatchingConfig

    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32",
                                     batching=BatchingConfig(max_batch_size=2, max_queue=1))
    settings = _settings(batching={"max_batch_size": 2, "max_queue": 1})

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"model": "tiny", "messages": QUESTION, "max_tokens": 4}
            first = [asyncio.create_task(client.post(f"{url}/chat/completions", json=body))
                     for _ in range(3)]
            await asyncio.sleep(1.0)  # these three fill 2 slots + 1 queue place
            rest = [await client.post(f"{url}/chat/completions", json=body) for _ in range(4)]
            release.set()
            return [*(await asyncio.gather(*first)), *rest]

    try:
        with serve_in_thread(build_app({"tiny": engine}, settings)) as url:
            release = _held(engine)
            responses = asyncio.run(burst(url))
            metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
    finally:
        engine.close()
    assert [r.status_code for r in responses] == [200] * 3 + [429] * 4
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses[3:])
    assert responses[3].json()["error"]["code"] == "server_overloaded"
    assert 'tuneline_rejected_total{reason="queue_full"} 4.0' in metrics


def test_a_request_past_its_timeout_gets_504_and_frees_its_slot(engine):
    app = build_app({"tiny": engine}, _settings(batching={"request_timeout_s": 0.5}))
    with serve_in_thread(app) as url:
        release = _held(engine)
        slow = httpx.post(f"{url}/chat/completions", timeout=30,
                          json={"model": "tiny", "messages": QUESTION, "max_tokens": 50})
        release.set()
        engine.batcher.on_step = None
        deadline = time.time() + 10
        while engine.stats().active and time.time() < deadline:
            time.sleep(0.05)
        after = _client(url).chat.completions.create(model="tiny", messages=QUESTION)
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout"
    assert engine.stats().active == 0 and after.choices


def test_feedback_is_stored_with_the_answer_and_exports_as_chat_data(engine, tmp_path):
    from tuneline.curate.validate import validate_file
    from tuneline.serve.feedback import FeedbackStore

    store = tmp_path / "feedback.db"
    with serve_in_thread(build_app({"tiny": engine}, _settings(), feedback_path=store)) as url:
        reply = _client(url).chat.completions.create(model="tiny", messages=QUESTION,
                                                     max_tokens=20, temperature=0.9, seed=7)
        assert reply.choices[0].message.content
        good = httpx.post(f"{url}/feedback", json={"response_id": reply.id, "rating": 5,
                                                   "comment": "right"})
        corrected = httpx.post(f"{url}/feedback", json={
            "response_id": reply.id, "rating": 2, "correction": "The capital is Paris."})
        unknown = httpx.post(f"{url}/feedback", json={"response_id": "chatcmpl-x", "rating": 1})
        bad = httpx.post(f"{url}/feedback", json={"response_id": reply.id, "rating": 9})
    assert good.status_code == 200 and good.json()["matched_response"] is True
    assert corrected.status_code == 200
    assert unknown.json()["matched_response"] is False
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"
    out = tmp_path / "feedback.jsonl"
    counts = FeedbackStore(store).export(out, min_rating=4)
    assert counts["written"] == 1
    example = json.loads(out.read_text())
    assert example["messages"][0] == QUESTION[0]
    assert example["messages"][-1] == {"role": "assistant",  # the latest rating: corrected
                                       "content": "The capital is Paris."}
    assert validate_file(out).problems == []


def test_metrics_count_requests_tokens_and_first_token_latency(engine):
    from prometheus_client.parser import text_string_to_metric_families

    with serve_in_thread(build_app({"tiny": engine}, _settings())) as url:
        client = _client(url)
        replies = [client.chat.completions.create(model="tiny", messages=QUESTION)
                   for _ in range(3)]
        with pytest.raises(APIStatusError):
            client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=10**6)
        text = httpx.get(url.removesuffix("/v1") + "/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("tuneline_requests_total", (("model", "tiny"), ("status", "200")))] == 3
    completion = sum(r.usage.completion_tokens for r in replies)
    assert samples[("tuneline_completion_tokens_total", (("model", "tiny"),))] == completion
    assert samples[("tuneline_time_to_first_token_seconds_count", (("model", "tiny"),))] == 3
    assert samples[("tuneline_request_latency_seconds_count", (("model", "tiny"),))] == 3
    steps = sum(r.usage.completion_tokens - 1 for r in replies)  # the first comes from prefill
    assert samples[("tuneline_batch_size_count", ())] == steps


def test_prompts_stay_out_of_the_logs_unless_enabled(tiny_model_dir, caplog):
    secret = [{"role": "user", "content": "My card is 4111 1111 1111 1111, capital of Peru?"}]
    for log_prompts in (False, True):
        caplog.clear()
        logging.getLogger("tuneline.serve").propagate = True
        engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
        app = build_app({"tiny": engine}, _settings(log_prompts=log_prompts))
        with caplog.at_level(logging.INFO, logger="tuneline.serve"), serve_in_thread(app) as url:
            _client(url).chat.completions.create(model="tiny", messages=secret)
        records = [r for r in caplog.records if r.getMessage() == "generation"]
        assert len(records) == 1 and records[0].fields["status"] == 200
        assert ("4111 1111" in json.dumps(records[0].fields)) is log_prompts


class _SlowEngine:
    """The real engine behind an injected delay: a candidate that got slower."""

    def __init__(self, engine, delay_s: float):
        self._engine, self._delay_s = engine, delay_s
        self.context_length, self.adapters = engine.context_length, engine.adapters

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def submit(self, request, sink):
        time.sleep(self._delay_s)
        return self._engine.submit(request, sink)


def _ask(url: str, user: str) -> str:
    """One request for the canary's name as `user`; the arm that answered."""
    reply = httpx.post(f"{url}/chat/completions", headers={"x-user-id": user},
                       json={"model": "m", "messages": QUESTION, "max_tokens": 2})
    assert reply.status_code == 200
    return reply.headers["x-tuneline-model"]


def test_canary_splits_traffic_and_keeps_each_user_on_one_arm(engine):
    routes = {"m@champion": Route(engine), "m@candidate": Route(engine)}
    settings = _settings(canary={"percent": 50, "max_p95_factor": 1000,
                                 "max_error_rate_factor": 1000})
    with serve_in_thread(build_app(routes, settings, canary_name="m")) as url:
        users = [f"user-{i}" for i in range(16)]
        arms = {user: _ask(url, user) for user in users}
        again = {user: _ask(url, user) for user in users}
        models = {m.id for m in _client(url).models.list()}
    assert set(arms.values()) == {"m@champion", "m@candidate"}
    assert again == arms
    assert "m" in models


def test_canary_rolls_back_a_slow_candidate(engine):
    routes = {"m@champion": Route(engine), "m@candidate": Route(_SlowEngine(engine, 0.6))}
    settings = _settings(canary={"percent": 50, "window": 10, "min_requests": 4,
                                 "max_p95_factor": 2.0})
    with serve_in_thread(build_app(routes, settings, canary_name="m")) as url:
        users = [f"user-{i}" for i in range(16)]
        before = [_ask(url, user) for user in users]
        health = httpx.get(url.removesuffix("/v1") + "/health").json()
        after = {_ask(url, user) for user in users}
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
    assert before.count("m@candidate") >= 4
    assert health["canary"]["rolled_back"] is True and "p95" in health["canary"]["reason"]
    assert after == {"m@champion"}
    assert "tuneline_canary_rollbacks_total 1.0" in metrics


def test_a_draining_server_is_not_ready_and_takes_no_new_work(engine):
    app = build_app({"tiny": engine}, _settings())
    with serve_in_thread(app) as url:
        root = url.removesuffix("/v1")
        assert httpx.get(f"{root}/ready").json()["ready"] is True
        app.state.tuneline.draining = True  # what SIGTERM sets (tuneline serve)
        ready = httpx.get(f"{root}/ready")
        refused = httpx.post(f"{url}/chat/completions",
                             json={"model": "tiny", "messages": QUESTION})
    assert ready.status_code == 503 and ready.json()["reason"] == "draining"
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"


def test_tracing_records_a_span_per_request_and_generation(engine):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with serve_in_thread(build_app({"tiny": engine}, _settings(tracing=True))) as url:
        reply = _client(url).chat.completions.create(model="tiny", messages=QUESTION)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["POST /v1/chat/completions"].attributes["http.response.status_code"] == 200
    generation = spans["generation"].attributes
    assert generation["tuneline.model"] == "tiny" and generation["tuneline.status"] == 200
    assert generation["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert spans["generation"].end_time > spans["generation"].start_time
