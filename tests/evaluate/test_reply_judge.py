"""Reference-guided grading of free-text replies through a judge LLM (an external service,
faked over real HTTP): both orders asked, a position-following judge cannot raise a score,
groundedness against the passages."""

from __future__ import annotations

import re

import pytest

from conftest import serve_in_thread
from fakes.judge_llm import fake_judge as _fake_judge
from fakes.judge_llm import judge_config as _cfg
from tuneline.evaluate.reply_judge import (
    CORRECTNESS,
    GradeItem,
    combine_grades,
    grade,
    parse_grade,
    summarize_grades,
)

REFERENCE = "Hold RESET for 15 seconds."


def _texts(prompt: str) -> dict[str, str]:
    """{label: text} of the two texts of a rubric prompt."""
    found = re.findall(r"\n(REFERENCE|CANDIDATE|PASSAGES|ANSWER):\n(.*?)(?=\n\n)", prompt, re.S)
    return dict(found)


def _grader(prompt: str) -> str:
    """Correct when the candidate says 15 seconds; grounded when the answer's number is in the
    passages."""
    texts = _texts(prompt)
    if "CANDIDATE" in texts:
        verdict = "CORRECT" if "15 seconds" in texts["CANDIDATE"] else "INCORRECT"
    else:
        number = re.search(r"\d+", texts["ANSWER"])
        verdict = ("GROUNDED" if number and number.group() in texts["PASSAGES"]
                   else "UNGROUNDED")
    return f"VERDICT: {verdict}\nREASON: checked."


@pytest.mark.parametrize(("reply", "verdict"), [
    ("VERDICT: CORRECT\nREASON: same.", "correct"),
    ("**Verdict:** partly\nReason: half.", "partly"),
    ("VERDICT: INCORRECT", "incorrect"),
    ("VERDICT: GROUNDED", "invalid"),  # not a correctness verdict
    ("I think it is right.", "invalid"),
])
def test_parse_grade(reply, verdict):
    assert parse_grade(reply, CORRECTNESS)[0] == verdict


def test_two_orders_that_disagree_give_the_lower_grade():
    assert combine_grades("correct", "incorrect", CORRECTNESS) == "incorrect"
    assert combine_grades("partly", "correct", CORRECTNESS) == "partly"
    assert combine_grades("invalid", "correct", CORRECTNESS) == "correct"
    assert combine_grades("invalid", "invalid", CORRECTNESS) == "invalid"


def test_correctness_over_http_in_both_orders():
    pytest.importorskip("fastapi")
    app = _fake_judge(_grader)
    items = [GradeItem("How do I reset it?", REFERENCE, answer, {"variant": "tuned"})
             for answer in ("Press reset for 15 seconds.", "Unplug it.",
                            "Maybe 5, 10 or 20 seconds.")]
    with serve_in_thread(app) as url:
        records, usage = grade(_cfg(url), "correctness", items)
    assert [r["verdict"] for r in records] == ["correct", "incorrect", "incorrect"]
    assert len(app.state.bodies) == 6 and usage["requests"] == 6
    for item in items:  # each reply shown once after the reference, once before it
        prompts = [b["messages"][-1]["content"] for b in app.state.bodies
                   if item.answer in b["messages"][-1]["content"]]
        orders = sorted(p.index("REFERENCE:") < p.index("CANDIDATE:") for p in prompts)
        assert orders == [False, True]
    summary = summarize_grades(records, "correctness")
    assert summary["score"] == pytest.approx(1 / 3) and summary["correct"] == 1
    assert summary["n"] == 3 and summary["invalid"] == 0


def test_a_judge_that_follows_the_position_cannot_raise_a_score():
    pytest.importorskip("fastapi")
    # CORRECT whenever the candidate is shown second, whatever it says
    app = _fake_judge(lambda p: "VERDICT: CORRECT" if p.index("CANDIDATE:") > p.index(
        "REFERENCE:") else "VERDICT: INCORRECT")
    with serve_in_thread(app) as url:
        records, _ = grade(_cfg(url), "correctness",
                           [GradeItem("q?", REFERENCE, "Unplug it.")])
    assert records[0]["verdicts"] == ["correct", "incorrect"]
    assert records[0]["verdict"] == "incorrect"


def test_groundedness_against_the_passages():
    pytest.importorskip("fastapi")
    app = _fake_judge(_grader)
    passages = "Device FAQ > Reset\nHold RESET for 15 seconds."
    items = [GradeItem("How long?", passages, answer) for answer in
             ("Hold it for 15 seconds.", "Hold it for 30 seconds.")]
    with serve_in_thread(app) as url:
        records, _ = grade(_cfg(url), "groundedness", items)
    assert [r["verdict"] for r in records] == ["grounded", "ungrounded"]
    assert summarize_grades(records, "groundedness")["score"] == 0.5


def test_evaluate_adds_judged_scores_per_variant_and_set(tmp_path):
    pytest.importorskip("fastapi")
    from tuneline.config import PipelineConfig
    from tuneline.evaluate.stage import _grade_replies
    from tuneline.report.results import parse_results

    app = _fake_judge(_grader)
    base = {"set": "reference", "question": "How do I reset it?", "reference": REFERENCE,
            "tuned_answer": "Press reset for 15 seconds.", "base_answer": "Unplug it.",
            "tuned+rag_answer": "Hold it 15 seconds.",
            "passages": ["Hold RESET for 15 seconds."]}
    predictions = [{**base, "id": "r1"}, {**base, "id": "r2", "tuned_answer": "Call us."},
                   {"set": "recall", "id": "f1", "question": "x?", "tuned_answer": "y"}]
    metrics = {v: {"reference": {"n": 2, "rouge_l": 0.5, "ci95": {}}}
               for v in ("base", "tuned", "tuned+rag")}
    with serve_in_thread(app) as url:
        cfg = PipelineConfig.model_validate({"evaluate": {"judge": {"endpoint": {
            "base_url": url, "model": "judge", "max_retries": 0, "api_key_env": None}}}})
        usage = _grade_replies(cfg, predictions, ["base", "tuned", "tuned+rag"], metrics,
                               tmp_path)
    assert metrics["tuned"]["reference"]["judge_correctness"] == 0.5
    assert metrics["base"]["reference"]["judge_correctness"] == 0.0
    assert metrics["tuned+rag"]["reference"]["groundedness"] == 1.0
    assert "groundedness" not in metrics["tuned"]["reference"]
    assert set(usage) == {"correctness", "groundedness"}
    judged = (tmp_path / "reply_judgments.jsonl").read_text().splitlines()
    assert len(judged) == 3 * 2 + 2  # three variants' correctness, tuned+rag's groundedness
    scores = parse_results(metrics).scores("tuned", "reference")
    assert scores.judge_correctness == 0.5
