"""Pairwise LLM judge: verdict parsing, order combination, win rate, and judging over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import free_port, serve_in_thread
from fakes.judge_llm import fake_judge as _fake_judge
from fakes.judge_llm import judge_config as _cfg
from tuneline.errors import ConfigError, LlmEndpointError
from tuneline.evaluate.config import JudgeConfig
from tuneline.evaluate.judge import (
    JudgePair,
    combine,
    fill_rubric,
    judge_pairs,
    load_rubric,
    parse_verdict,
    win_rate,
)


@pytest.mark.parametrize(("reply", "verdict", "reason"), [
    ("VERDICT: A\nREASON: It matches the reference.", "A", "It matches the reference."),
    ("verdict: b\nreason: B is right.", "B", "B is right."),
    ("VERDICT: TIE\nREASON: Both are wrong.", "tie", "Both are wrong."),
    ("**Verdict:** **A**\n**Reason:** closer to the reference", "A", "closer to the reference"),
    ("Verdict - B\nReason - invented a date", "B", "invented a date"),
    ("Let me think.\nBoth answers...\nFinal verdict: Tie", "tie", ""),
    ("Verdict: Answer B is better", "B", "is better"),
    ("The verdict: a tie, neither is right", "tie", "neither is right"),
])
def test_parse_verdict_tolerates_formatting(reply, verdict, reason):
    assert parse_verdict(reply) == (verdict, reason)


@pytest.mark.parametrize("reply", [None, "", "A is better.", "VERDICT: C\nREASON: none"])
def test_parse_verdict_without_a_verdict_is_invalid(reply):
    verdict, reason = parse_verdict(reply)
    assert verdict == "invalid" and reason


@pytest.mark.parametrize(("first", "second", "outcome"), [
    ("A", "B", "win"),        # challenger preferred in both orders
    ("B", "A", "loss"),       # champion preferred in both orders
    ("A", "A", "tie"),        # always the first answer: position bias cancels out
    ("B", "B", "tie"),        # always the second answer
    ("A", "tie", "win"), ("tie", "B", "win"),
    ("B", "tie", "loss"), ("tie", "A", "loss"),
    ("tie", "tie", "tie"),
    ("invalid", "B", "win"), ("A", "invalid", "win"),
    ("invalid", "A", "loss"), ("B", "invalid", "loss"),
    ("invalid", "tie", "tie"), ("tie", "invalid", "tie"),
    ("invalid", "invalid", "invalid"),
])
def test_combine_maps_both_orders_to_the_challenger(first, second, outcome):
    assert combine(first, second) == outcome


def test_win_rate_counts_ties_half_and_skips_invalid():
    outcomes = ["win"] * 6 + ["loss"] * 2 + ["tie"] * 2 + ["invalid"] * 3
    summary = win_rate(outcomes)
    assert summary["win_rate"] == pytest.approx(7 / 10)
    assert (summary["wins"], summary["losses"], summary["ties"], summary["invalid"],
            summary["n"]) == (6, 2, 2, 3, 13)
    lo, hi = summary["ci95"]
    assert 0 <= lo < summary["win_rate"] < hi <= 1
    assert win_rate(outcomes, seed=0) == summary  # seeded: repeatable


def test_win_rate_edge_cases():
    assert win_rate(["tie", "tie"])["win_rate"] == 0.5
    assert win_rate(["win"])["ci95"] == [1.0, 1.0]
    empty = win_rate(["invalid", "invalid"])
    assert empty["win_rate"] is None and empty["ci95"] is None and empty["n"] == 2
    assert win_rate([])["win_rate"] is None


def test_rubric_is_packaged_and_filled_without_touching_braces_in_texts(tmp_path):
    rubric = load_rubric(None)
    for name in ("question", "reference", "answer_a", "answer_b"):
        assert f"{{{name}}}" in rubric
    assert "VERDICT: TIE" in rubric and "REASON:" in rubric
    prompt = fill_rubric(rubric, "What is {x}? {answer_b}", "ref {}", "a {0}", "b")
    assert "What is {x}? {answer_b}" in prompt and "ref {}" in prompt and "a {0}" in prompt
    assert "{question}" not in prompt and "{answer_a}" not in prompt


def test_user_rubric_must_keep_the_placeholders(tmp_path):
    good = tmp_path / "good.md"
    good.write_text("Q {question} R {reference} A {answer_a} B {answer_b}", encoding="utf-8")
    assert load_rubric(good).startswith("Q {question}")
    bad = tmp_path / "bad.md"
    bad.write_text("Q {question} A {answer_a}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\{reference\}, \{answer_b\}"):
        load_rubric(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_rubric(tmp_path / "missing.md")


def _prefers_paris(prompt: str) -> str:
    a = re.search(r"Answer A:\n(.*?)\n\nAnswer B:", prompt, re.S).group(1)
    b = re.search(r"Answer B:\n(.*?)\n\nReply with", prompt, re.S).group(1)
    if ("Paris" in a) == ("Paris" in b):
        return "VERDICT: TIE\nREASON: Both answers agree on Paris or neither does."
    return f"VERDICT: {'A' if 'Paris' in a else 'B'}\nREASON: It names Paris."


def _pairs(*answers: tuple[str, str]) -> list[JudgePair]:
    return [JudgePair("What is the capital of France?", "Paris.", tuned, base, {"set": "recall"})
            for tuned, base in answers]


def test_a_judge_that_always_picks_a_gives_ties():
    pytest.importorskip("fastapi")
    app = _fake_judge(lambda _: "VERDICT: A\nREASON: The first one.")
    with serve_in_thread(app) as url:
        outcome = judge_pairs(_cfg(url), _pairs(("Paris", "Lyon"), ("Lyon", "Paris")))
    assert [j["verdict"] for j in outcome.judgments] == ["tie", "tie"]
    assert outcome.summary["win_rate"] == 0.5 and outcome.summary["ties"] == 2
    assert len(app.state.bodies) == 4


def test_the_challenger_is_shown_in_both_positions(tmp_path):
    pytest.importorskip("fastapi")
    app = _fake_judge(_prefers_paris)
    # distinct answers: identical prompts would be answered from the cache mid-run
    pairs = _pairs(("It is Paris.", "It is Lyon."), ("Lyon.", "Paris."), ("Paris", "Paris, France"))
    with serve_in_thread(app) as url:
        cfg = _cfg(url, {"max_tokens": 32}, concurrency=3)
        outcome = judge_pairs(cfg, pairs, challenger="v2", champion="v1", cache_dir=tmp_path)
        again = judge_pairs(cfg, pairs, challenger="v2", champion="v1", cache_dir=tmp_path)
    first = outcome.judgments[0]
    assert (first["verdict_challenger_first"], first["verdict_challenger_second"]) == ("A", "B")
    assert first["reasons"] == ["It names Paris.", "It names Paris."]
    assert first["meta"] == {"set": "recall"} and first["challenger_answer"] == "It is Paris."
    assert [j["verdict"] for j in outcome.judgments] == ["win", "loss", "tie"]
    assert outcome.summary["win_rate"] == 0.5
    assert {k: outcome.summary[k] for k in ("challenger", "champion", "judge_model")} == {
        "challenger": "v2", "champion": "v1", "judge_model": "judge"}
    assert len(app.state.bodies) == 6  # the rerun came from the cache
    assert again.usage["cached"] == 6 and again.judgments == outcome.judgments
    assert {(b["temperature"], b["max_tokens"]) for b in app.state.bodies} == {(0.0, 32)}
    assert outcome.to_json()["summary"] == outcome.summary


def test_max_pairs_limits_the_questions_judged():
    pytest.importorskip("fastapi")
    app = _fake_judge(_prefers_paris)
    with serve_in_thread(app) as url:
        outcome = judge_pairs(_cfg(url, {"max_pairs": 1}),
                              _pairs(("Paris", "Lyon"), ("Lyon", "Paris")))
    assert outcome.summary["n"] == 1 and len(app.state.bodies) == 2


def test_failed_requests_are_invalid_until_every_one_fails():
    pytest.importorskip("fastapi")
    app = _fake_judge(lambda prompt: None if "Lyon" in prompt else _prefers_paris(prompt))
    with serve_in_thread(app) as url:
        outcome = judge_pairs(_cfg(url), _pairs(("Paris", "Paris"), ("Paris", "Lyon")))
        with pytest.raises(LlmEndpointError, match=rf"{url}: every one of the 2 .*http_400"):
            judge_pairs(_cfg(url), _pairs(("Lyon", "Paris")))
    bad = outcome.judgments[1]
    assert bad["verdict"] == "invalid"
    assert bad["reasons"] == ["request failed: http_400: prompt refused"] * 2
    assert outcome.summary["invalid"] == 1 and outcome.summary["win_rate"] == 0.5


def test_an_unreachable_endpoint_names_its_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LlmEndpointError, match=re.escape(url)):
        judge_pairs(_cfg(url, timeout_s=2), _pairs(("Paris", "Lyon")))


def test_a_judge_without_endpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="endpoint"):
        judge_pairs(JudgeConfig(), _pairs(("Paris", "Lyon")))


def test_judging_through_our_own_server(tiny_model_dir: Path):
    """Our server over a tiny random model: its replies are noise, so verdicts are mostly
    invalid, but both orders of every pair must reach it and be recorded."""
    pytest.importorskip("fastapi")
    from tuneline.serve.app import build_app
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    app = build_app({"tiny": engine})
    hits = []

    @app.middleware("http")
    async def count(request, call_next):
        hits.append(request.url.path)
        return await call_next(request)

    pairs = _pairs(("Paris.", "Lyon."), ("I don't know.", "Paris."), ("Paris", "Paris, France"))
    with serve_in_thread(app) as url:
        cfg = _cfg(url, {"max_tokens": 12}, model="tiny", cache=False, concurrency=2)
        outcome = judge_pairs(cfg, pairs)
    assert hits == ["/v1/chat/completions"] * 6
    assert outcome.usage["requests"] == 6 and outcome.usage["failed"] == 0
    assert outcome.usage["completion_tokens"] > 0
    for judgment in outcome.judgments:
        raw = [judgment["verdict_challenger_first"], judgment["verdict_challenger_second"]]
        assert set(raw) <= {"A", "B", "tie", "invalid"}
        assert judgment["verdict"] in {"win", "loss", "tie", "invalid"}
        assert len(judgment["reasons"]) == 2
        for verdict, reason in zip(raw, judgment["reasons"], strict=True):
            assert isinstance(reason, str) and (reason or verdict != "invalid")
    s = outcome.summary
    assert s["wins"] + s["losses"] + s["ties"] + s["invalid"] == s["n"] == 3
    assert s["judge_model"] == "tiny" and s["base_url"] == url
