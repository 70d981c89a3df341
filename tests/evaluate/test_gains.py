"""Paired gains: a served variant against the base model asked the same way, question by
question, with an interval of the mean difference; the gate and the report read them."""

from __future__ import annotations

import pytest

from tuneline.evaluate.config import GateConfig
from tuneline.evaluate.gains import add_gains, paired_gain
from tuneline.evaluate.gate import check_gate
from tuneline.evaluate.metrics import summarize
from tuneline.report.markdown import render_report


def _rows(set_name: str, base: list[float], tuned: list[float], field: str = "rouge_l"):
    return [{"set": set_name, "base_answer": "b", "tuned_answer": "t",
             f"base_{field}": b, f"tuned_{field}": t} for b, t in zip(base, tuned, strict=True)]


def test_a_steady_gain_is_clear_paired_though_the_separate_intervals_overlap():
    base = [0.05, 0.2, 0.35, 0.5, 0.65, 0.8]
    tuned = [b + 0.1 for b in base]
    gain = paired_gain(_rows("reference", base, tuned), "tuned", "base")
    assert gain["n"] == 6 and gain["rouge_l"] == pytest.approx(0.1)
    assert gain["ci95"]["rouge_l"] == pytest.approx([0.1, 0.1])
    separate = [summarize([{"rouge_l": v} for v in scores])["ci95"]["rouge_l"]
                for scores in (base, tuned)]
    assert separate[1][0] < separate[0][1]  # the two intervals overlap


def test_fact_sets_compare_strict_verdicts_and_only_questions_both_answered():
    rows = [{"set": "recall", "base_answer": "b", "tuned_answer": "t",
             "base_correct": b, "tuned_correct": t}
            for b, t in [(False, True), (False, True), (True, True), (True, False)]]
    rows.append({"set": "recall", "tuned_answer": "t", "tuned_correct": True})
    rows.append({"set": "general", "base_answer": "b", "tuned_answer": "t",
                 "base_correct": True, "tuned_correct": False})
    metrics = {"base": {"recall": {}, "general": {}}, "tuned": {"recall": {}, "general": {}},
               "tuned+rag": {"recall": {}}}
    add_gains(metrics, rows)
    recall = metrics["tuned"]["recall"]["gain"]
    assert (recall["vs"], recall["n"], recall["accuracy"]) == ("base", 4, pytest.approx(0.25))
    lo, hi = recall["ci95"]["accuracy"]
    assert -1.0 <= lo < 0.25 < hi <= 1.0
    assert metrics["tuned"]["general"]["gain"]["accuracy"] == pytest.approx(-1.0)
    assert "gain" not in metrics["tuned+rag"]["recall"]  # base+rag was not asked


def _free_text_metrics(gain_interval):
    scores = {"rouge_l": 0.4, "n": 5, "ci95": {"rouge_l": [0.2, 0.6]}, "abstention_rate": 0.0,
              "mean_answer_words": 12.0}
    return {"base+rag": {"reference": {**scores, "rouge_l": 0.3}},
            "tuned+rag": {"reference": {**scores, "gain": {
                "vs": "base+rag", "n": 5, "rouge_l": 0.1,
                "ci95": {"rouge_l": gain_interval}}}}}


@pytest.mark.parametrize(("interval", "unsettled"), [([-0.05, 0.25], True),
                                                     ([0.02, 0.18], False)])
def test_the_gate_gives_a_gains_paired_interval(interval, unsettled):
    gate = GateConfig.model_validate({"min_gain": {"reference": {"rouge_l": 0.0}}})
    [check] = check_gate(gate, _free_text_metrics(interval), retrieval_only=True).checks
    assert check.passed and check.value == pytest.approx(0.1)
    assert f"paired over n=5, 95% interval [{interval[0]:.3f}, {interval[1]:.3f}]" in check.message
    assert check.unsettled is unsettled


def test_the_report_lists_each_gain_with_its_interval():
    report = render_report(_free_text_metrics([-0.05, 0.25]), [])
    assert "## Gains over the base model asked the same way" in report
    row = "| tuned+rag | reference | base+rag | – | +0.100 [-0.050, +0.250] | – | – | 5 |"
    assert row in report
