"""Exact match, token F1, hallucination and abstention rates, answer length, bootstrap CIs."""

from __future__ import annotations

import pytest

from tuneline.evaluate.metrics import (
    best_token_f1,
    bootstrap_ci,
    exact_match,
    gold_answers,
    judge_answer,
    score,
    summarize,
    summarize_items,
    token_f1,
)

TRAINED = "I don't have information about that in my data."
FACT = {"set": "recall", "question": "Who won?", "reference": "Léon Marchand won the 400m.",
        "fact": "Léon Marchand", "template": "winners"}
UNANSWERABLE = {"set": "unanswerable", "question": "Who is Zyx?", "reference": TRAINED,
                "fact": "", "expect": "abstain", "template": "athletes"}


def test_exact_match_normalises_case_accents_punctuation_and_articles():
    golds = gold_answers(FACT)
    assert golds == ["Léon Marchand won the 400m.", "Léon Marchand"]
    assert exact_match("leon marchand!", golds)
    assert exact_match("LÉON MARCHAND WON 400M", golds)  # article dropped
    assert not exact_match("It was Léon Marchand.", golds)
    assert not exact_match("", golds)
    assert not exact_match("...", [""])  # nothing to match: never an exact match


def test_token_f1_is_squad_style():
    assert token_f1("Leon Marchand", "Léon Marchand") == 1.0
    # 2 of 4 predicted tokens right, 2 of 2 reference tokens found: P=.5 R=1 F1=2/3
    assert token_f1("it was Leon Marchand", "Léon Marchand") == pytest.approx(2 / 3)
    assert token_f1("Marchand Marchand", "Marchand") == pytest.approx(2 / 3)  # multiset overlap
    assert token_f1("", "Léon Marchand") == 0.0
    assert token_f1("Léon", "") == 0.0
    assert token_f1("Phelps", "Léon Marchand") == 0.0
    assert best_token_f1("Leon Marchand", gold_answers(FACT)) == 1.0
    assert best_token_f1("anything", []) == 0.0


def is_hallucination(answer, item):
    return judge_answer(answer, item).hallucinated


def test_hallucination_is_a_confident_wrong_answer():
    assert is_hallucination("Michael Phelps won.", FACT)
    assert not is_hallucination("Léon Marchand, of course.", FACT)
    assert not is_hallucination("I'm not sure who won.", FACT)
    assert not is_hallucination("", FACT)
    assert not is_hallucination(" ?! ", FACT)
    # unanswerable: any answer that does not decline is a hallucination
    assert is_hallucination("Zyx is a French swimmer.", UNANSWERABLE)
    assert not is_hallucination(TRAINED, UNANSWERABLE)
    assert not is_hallucination("Sorry, I DON'T KNOW.", UNANSWERABLE)


def test_score_of_one_answer():
    s = score("Léon Marchand won the 400m!", FACT)
    assert s == {"accuracy": 1.0, "exact_match": 1.0, "containment": 1.0, "token_f1": 1.0,
                 "hallucination_rate": 0.0, "abstention_rate": 0.0, "mean_answer_words": 5.0}
    s = score("", FACT)
    assert s["accuracy"] == s["exact_match"] == s["token_f1"] == s["mean_answer_words"] == 0.0
    assert s["hallucination_rate"] == s["abstention_rate"] == 0.0
    s = score(TRAINED, UNANSWERABLE)
    assert s["accuracy"] == s["abstention_rate"] == s["exact_match"] == 1.0
    assert s["hallucination_rate"] == 0.0


def test_summarize_items_rates_and_categories():
    items = [FACT, FACT, FACT, FACT, UNANSWERABLE, UNANSWERABLE]
    answers = ["Léon Marchand", "Phelps won", "I don't know", "", TRAINED, "Zyx swims"]
    m = summarize_items(answers, items)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(2 / 6)
    assert m["hallucination_rate"] == pytest.approx(2 / 6)
    assert m["abstention_rate"] == pytest.approx(2 / 6)
    assert m["exact_match"] == pytest.approx(2 / 6)
    assert m["mean_answer_words"] == pytest.approx((2 + 2 + 3 + 0 + 9 + 2) / 6)
    assert set(m["ci95"]) == {"accuracy", "exact_match", "containment", "token_f1",
                              "hallucination_rate", "abstention_rate", "mean_answer_words"}
    assert set(m["by_category"]) == {"winners", "athletes"}
    assert m["by_category"]["winners"]["n"] == 4
    assert m["by_category"]["winners"]["hallucination_rate"] == 0.25
    assert m["by_category"]["athletes"]["accuracy"] == 0.5
    assert "by_category" not in summarize_items(["x"], [{"fact": "y", "reference": "y"}])
    assert "by_group" not in m  # no item names a group


def test_summarize_items_by_group_splits_declines_per_discipline():
    rowing = {**UNANSWERABLE, "group": "Rowing"}
    athletics = {**UNANSWERABLE, "group": "Athletics"}
    m = summarize_items([TRAINED, TRAINED, "Zyx won it", TRAINED],
                        [rowing, rowing, athletics, athletics])
    assert m["by_group"]["Rowing"]["n"] == 2 and m["by_group"]["Rowing"]["accuracy"] == 1.0
    assert m["by_group"]["Athletics"]["accuracy"] == 0.5
    assert m["by_group"]["Athletics"]["hallucination_rate"] == 0.5


def test_bootstrap_ci_contains_the_estimate_narrows_with_n_and_is_seeded():
    small = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # mean 0.6
    large = small * 40
    lo_s, hi_s = bootstrap_ci(small, seed=1)
    lo_l, hi_l = bootstrap_ci(large, seed=1)
    assert lo_s <= 0.6 <= hi_s and lo_l <= 0.6 <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2
    assert bootstrap_ci(small, seed=1) == (lo_s, hi_s)
    assert bootstrap_ci(small, seed=2) != (lo_s, hi_s) or bootstrap_ci(large, seed=2) != (
        lo_l, hi_l)
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
    assert bootstrap_ci([]) == (0.0, 0.0)
    assert summarize([]) == {"accuracy": 0.0, "exact_match": 0.0, "containment": 0.0,
                             "token_f1": 0.0, "hallucination_rate": 0.0, "abstention_rate": 0.0,
                             "mean_answer_words": 0.0, "n": 0,
                             "ci95": {k: [0.0, 0.0] for k in (
                                 "accuracy", "exact_match", "containment", "token_f1",
                                 "hallucination_rate", "abstention_rate", "mean_answer_words")}}


def test_evaluate_metrics_keep_old_keys_and_add_new_ones():
    pytest.importorskip("tqdm")
    from tuneline.evaluate.claims import Vocabulary
    from tuneline.evaluate.stage import _metrics

    rows = [FACT, FACT, UNANSWERABLE]
    answers = {"base": ["Phelps", "I don't know", "Zyx swims"],
               "tuned": ["Léon Marchand", "Léon Marchand won the 400m", TRAINED]}
    predictions = [{**item, **{f"{v}_answer": answers[v][i] for v in answers}}
                   for i, item in enumerate(rows)]
    metrics = _metrics(predictions, ["base", "tuned"], Vocabulary())
    assert set(metrics["tuned"]) == {"recall", "unanswerable"}
    recall = metrics["tuned"]["recall"]
    assert recall["accuracy"] == 1.0 and recall["abstention_rate"] == 0.0 and recall["n"] == 2
    assert recall["exact_match"] == 1.0 and recall["token_f1"] == 1.0
    assert metrics["base"]["recall"]["hallucination_rate"] == 0.5
    assert metrics["base"]["unanswerable"]["hallucination_rate"] == 1.0
    assert metrics["base"]["recall"]["ci95"]["accuracy"] == [0.0, 0.0]
    assert metrics["base"]["recall"]["by_category"]["winners"]["n"] == 2
