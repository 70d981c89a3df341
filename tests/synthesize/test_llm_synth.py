"""LLM synthesis: strict parsing, grounding, the HTTP client's retries/cache, and our own server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import tiny_pipeline_config, tuneline_serve
from tuneline.errors import LlmEndpointError
from tuneline.ingest.records import Record
from tuneline.llm.client import LlmClient
from tuneline.llm.config import LlmEndpointConfig
from tuneline.synthesize.config import LlmSynthesisConfig
from tuneline.synthesize.llm_synth import (
    SynthesisReport,
    build_messages,
    generate_facts,
    ground_pair,
    matches_cell,
    parse_pairs,
)

ROWS = [
    Record("medallists", "m.csv", 2, {"name": "Léon Marchand", "event": "400m Individual Medley",
                                      "medal": "Gold", "date": "2024-07-28"}),
    Record("medallists", "m.csv", 3, {"name": "Summer McIntosh", "event": "200m Butterfly",
                                      "medal": "Gold", "date": "2024-08-01"}),
    Record("medallists", "m.csv", 4, {"name": "Pan Zhanle", "event": "100m Freestyle",
                                      "medal": "Gold", "date": "2024-07-31"}),
]


def _pair(**overrides):
    pair = {"row": 1,
            "questions": ["Who won the 400m Individual Medley?",
                          "Which swimmer took gold in the 400m Individual Medley?",
                          "Name the 400m Individual Medley champion."],
            "answer": "Léon Marchand won the 400m Individual Medley.",
            "fact": "Léon Marchand"}
    return {**pair, **overrides}


def test_parse_pairs_counts_every_bad_line_and_skips_fences():
    reply = "\n".join([
        "```json",
        json.dumps(_pair()),
        "Sure! Here are your pairs:",
        json.dumps(["a list"]),
        json.dumps(_pair(fact="")),
        json.dumps(_pair(questions=[1, 2])),
        json.dumps({"question": "Who won the 100m Freestyle?", "answer": "Pan Zhanle did.",
                    "fact": "Pan Zhanle"}) + ",",
        "```",
    ])
    report = SynthesisReport()
    pairs = parse_pairs(reply, report)
    assert len(pairs) == 2 and pairs[1]["questions"] == ["Who won the 100m Freestyle?"]
    assert report.bad_lines == {"not_json": 1, "not_an_object": 1, "missing_fact": 1,
                                "bad_questions": 1}


def test_grounded_pair_becomes_a_fact_with_provenance():
    fact, reason = ground_pair(_pair(), ROWS, 0.9, 2)
    assert reason is None
    assert fact.fact == "Léon Marchand" and len(fact.questions) == 3
    assert fact.source == {"source": "medallists", "file": "m.csv", "line": 2}
    assert fact.template == "llm:medallists" and "400m Individual Medley" in fact.key


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"fact": "Michael Phelps", "answer": "Michael Phelps won it."}, "fact_not_in_row"),
    ({"row": 2}, "fact_not_in_row"),  # the fact belongs to another row
    ({"row": 9}, "row_out_of_range"),
    ({"row": True}, "row_out_of_range"),
    ({"answer": "A French swimmer won it."}, "fact_not_in_answer"),
    ({"questions": ["Who won?", "Who was the winner?"]}, "entity_not_in_question"),
    ({"questions": ["Who won the 400m Individual Medley?"]}, "too_few_phrasings"),
    ({"questions": ["Did Léon Marchand win the 400m Individual Medley?",
                    "Was Léon Marchand the 400m Individual Medley champion?"]},
     "too_few_phrasings"),  # questions that give the answer away are not kept
])
def test_unsupported_pairs_are_rejected_with_a_reason(overrides, reason):
    fact, got = ground_pair(_pair(**overrides), ROWS, 0.9, 2)
    assert fact is None and got == reason


def test_grounding_tolerates_formatting_but_not_other_values():
    assert matches_cell("leon marchand", "Léon Marchand", 0.9)
    assert matches_cell("12", "12.0", 0.9)
    assert matches_cell("2024-07-28.", "2024-07-28", 0.9)
    assert not matches_cell("13", "12.0", 0.9)
    assert not matches_cell("Pan Zhanle", "Léon Marchand", 0.9)


def test_pair_without_row_number_is_matched_to_the_one_row_holding_its_fact():
    pair = _pair(fact="Pan Zhanle", answer="Pan Zhanle won the 100m Freestyle.",
                 questions=["Who won the 100m Freestyle?", "Who is the 100m Freestyle champion?"])
    del pair["row"]
    fact, reason = ground_pair(pair, ROWS, 0.9, 2)
    assert reason is None and fact.source["line"] == 4


def test_prompt_numbers_rows_and_asks_for_json_lines():
    messages = build_messages("medallists", ROWS, pairs=6, phrasings=3)
    assert "6 question-answer pairs" in messages[0]["content"]
    assert 'Row 2: {"name": "Summer McIntosh"' in messages[1]["content"]


class _FakeProvider:
    """A cloud provider's chat endpoint (which we cannot reach): scripted statuses, then 200."""

    def __init__(self, statuses: list[int], reply=lambda body: f"echo {body['model']}"):
        self.statuses, self.hits = list(statuses), 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                provider.hits += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = provider.statuses.pop(0) if provider.statuses else 200
                payload = {"choices": [{"message": {"role": "assistant",
                                                    "content": reply(body)}}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}
                if status != 200:
                    payload = {"error": {"message": f"status {status}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def _client(url: str, cache_dir: Path | None = None, **overrides) -> LlmClient:
    settings = {"base_url": url, "model": "gpt-test", "max_retries": 3,
                "input_price_per_mtok": 2.0, "output_price_per_mtok": 8.0, **overrides}
    endpoint = LlmEndpointConfig(**settings)
    return LlmClient(endpoint, cache_dir, sleep=lambda _: None)


def test_client_retries_429_and_5xx_then_caches_the_answer(tmp_path):
    provider = _FakeProvider([429, 503])
    client = _client(provider.url, tmp_path)
    messages = [{"role": "user", "content": "hi"}]
    first = client.chat(messages)
    assert first.text == "echo gpt-test" and provider.hits == 3
    assert client.totals.retries == 2 and client.totals.cost_usd == pytest.approx(0.006)
    again = client.chat(messages)
    assert again.cached and again.text == first.text and provider.hits == 3
    assert client.totals.cost_usd == pytest.approx(0.006) and client.totals.cached == 1


def test_client_gives_up_after_max_retries_without_raising():
    provider = _FakeProvider([500] * 10)
    client = _client(provider.url)
    result = client.chat([{"role": "user", "content": "hi"}])
    assert result.text is None and result.error == "http_500"
    assert provider.hits == 4 and client.totals.failed == 1


def test_client_stops_the_run_on_a_refused_key_or_an_unreachable_server():
    provider = _FakeProvider([401])
    with pytest.raises(LlmEndpointError, match="HTTP 401.*API key was refused"):
        _client(provider.url).chat([{"role": "user", "content": "hi"}])
    with pytest.raises(LlmEndpointError, match="cannot reach"):
        _client("http://127.0.0.1:9/v1").chat([{"role": "user", "content": "hi"}])


def test_client_sends_the_key_from_the_named_env_var(monkeypatch):
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["auth"] = self.headers.get("Authorization")
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MY_KEY", "sk-secret")
    _client(f"http://127.0.0.1:{server.server_address[1]}/v1", api_key_env="MY_KEY",
            max_retries=0).chat([{"role": "user", "content": "hi"}])
    assert seen["auth"] == "Bearer sk-secret"


def _answer_about_first_row(body: dict) -> str:
    """What a capable model would write: one grounded pair, one invented one, one bad line."""
    first = json.loads(body["messages"][1]["content"].split("Row 1: ")[1].split("\n")[0])
    good = {"row": 1, "questions": [f"Who won the {first['event']}?",
                                    f"Who took gold in the {first['event']}?"],
            "answer": f"{first['name']} won the {first['event']}.", "fact": first["name"]}
    invented = {**good, "fact": "Mark Spitz", "answer": "Mark Spitz won it."}
    return "\n".join([json.dumps(good), json.dumps(invented), "{truncated"])


def test_generate_facts_keeps_grounded_pairs_across_concurrent_prompts(tmp_path):
    provider = _FakeProvider([], reply=_answer_about_first_row)
    cfg = LlmSynthesisConfig(enabled=True, rows_per_prompt=1, pairs_per_prompt=3,
                             endpoint={"base_url": provider.url, "model": "m", "concurrency": 3})
    facts, report, usage = generate_facts(cfg, {"medallists": ROWS}, 2, 0, tmp_path)
    assert sorted(f.fact for f in facts) == ["Léon Marchand", "Pan Zhanle", "Summer McIntosh"]
    assert report.rejected == {"fact_not_in_row": 3} and report.bad_lines == {"not_json": 3}
    assert usage.requests == 3 and provider.hits == 3


def test_a_run_where_every_request_fails_names_the_first_error():
    provider = _FakeProvider([400] * 5)
    cfg = LlmSynthesisConfig(enabled=True, rows_per_prompt=2,
                             endpoint={"base_url": provider.url, "model": "m"})
    with pytest.raises(LlmEndpointError, match="every one of the 2 .*http_400: status 400"):
        generate_facts(cfg, {"medallists": ROWS}, 2, 0, None)


def test_synthesize_stage_against_our_own_server(tiny_model_dir, tmp_path, monkeypatch):
    """`tuneline serve --base` (a real process) on a tiny random model: its replies are noise, so
    every line must be counted as bad (never crash), usage comes from the server, and a rerun of
    the stage is served from the response cache."""
    pytest.importorskip("fastapi")
    from tuneline.artifacts import load_artifact
    from tuneline.config import PipelineConfig
    from tuneline.pipeline import run_pipeline

    monkeypatch.setenv("TUNELINE_CACHE", str(tmp_path / "cache"))
    with tuneline_serve(f"model.base={tiny_model_dir}", "train.precision=fp32",
                        "--base", str(tiny_model_dir)) as base_url:
        data = tiny_pipeline_config(tmp_path, tiny_model_dir)
        data["synthesize"]["llm"] = {
            "enabled": True, "rows_per_prompt": 4, "pairs_per_prompt": 2, "max_prompts": 3,
            "endpoint": {"base_url": base_url, "model": str(tiny_model_dir), "max_tokens": 24,
                         "concurrency": 3, "output_price_per_mtok": 1.0}}
        data["synthesize"]["paraphrase"] = {"per_template": 2}
        cfg = PipelineConfig.model_validate(data)
        first = run_pipeline(cfg, until="synthesize").artifacts["synthesize"]
        llm = first.manifest["details"]["llm"]
        assert llm["usage"]["requests"] == 3 and llm["usage"]["failed"] == 0, str(llm["usage"])
        assert llm["usage"]["completion_tokens"] > 0 and llm["usage"]["cost_usd"] > 0
        assert llm["accepted"] + sum(llm["rejected"].values()) == llm["pairs"]
        assert first.manifest["counts"]["facts:llm"] == llm["accepted"]
        assert first.manifest["counts"]["facts:capital"] > 0  # templates still run alongside
        paraphrase = first.manifest["details"]["paraphrase"]
        assert paraphrase["usage"]["requests"] == 1 and "capital" in paraphrase["added"]
        again = run_pipeline(cfg, until="synthesize", force=frozenset({"synthesize"}))
        usage = again.artifacts["synthesize"].manifest["details"]["llm"]["usage"]
        assert usage["cached"] == 3 and usage["cost_usd"] == 0
        assert again.artifacts["synthesize"].manifest["details"]["paraphrase"]["usage"][
            "cached"] == 1
        assert load_artifact("synthesize", first.path) is not None


def test_paraphrases_keep_placeholders_and_sit_before_the_recall_phrasing():
    from collections import Counter

    from tuneline.synthesize.config import TemplateConfig
    from tuneline.synthesize.paraphrase import accept_paraphrases, paraphrase_templates

    template = TemplateConfig(name="champion", source="medallists", key="{event}",
                              questions=["Who won the {event}?", "Name the {event} champion."],
                              answer="{name} won the {event}.", fact="{name}")
    reply = "\n".join(["1. Which athlete won the {event}?", "- Who was the winner of {event}?",
                       "Who won the {evnt}?", "Who won the {event}?", "{event}?",
                       "Who won the {event?", "Which athlete won the {event}?"])
    rejected: Counter[str] = Counter()
    kept = accept_paraphrases(template, reply, 5, rejected)
    assert kept == ["Which athlete won the {event}?", "Who was the winner of {event}?"]
    assert rejected == {"placeholders_changed": 1, "duplicate": 2, "bad_length": 1,
                        "broken_braces": 1}

    provider = _FakeProvider([], reply=lambda body: reply)
    endpoint = LlmEndpointConfig(base_url=provider.url, model="m")
    (out,), report = paraphrase_templates([template], 1, endpoint, None, keep_last=1)
    assert out.questions == ["Who won the {event}?", "Which athlete won the {event}?",
                             "Name the {event} champion."]
    assert report["added"] == {"champion": 1} and report["usage"]["requests"] == 1
