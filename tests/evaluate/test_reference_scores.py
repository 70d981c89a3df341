"""Free-text replies graded against the reference: ROUGE-L, embedding similarity, token F1;
padding an answer with everything it might say does not pay; the gate reads the scores."""

from __future__ import annotations

import pytest

from tuneline.evaluate.config import GateConfig
from tuneline.evaluate.free_text import rouge_l, score_references, summarize_scores
from tuneline.evaluate.gate import check_gate

pytest.importorskip("rouge_score")

REFERENCE = "Hold the reset button for 15 seconds until the light blinks amber."
ITEM = {"reference": REFERENCE, "template": "tickets"}


def test_rouge_l_orders_answers_by_overlap():
    exact, paraphrase, unrelated = rouge_l(
        [REFERENCE, "Press and hold reset for 15 seconds, until the light blinks.",
         "Our office opens at nine on weekdays."], [REFERENCE] * 3)
    assert exact == pytest.approx(1.0)
    assert 0.4 < paraphrase < 1.0
    assert unrelated < 0.1


def test_padding_an_answer_with_every_candidate_scores_lower():
    padded = (f"{REFERENCE} Or update the firmware from the app. Or return it within 30 days "
              "for a refund. Or change the Wi-Fi channel to 36. Or call us at any time.")
    [plain, hedged] = score_references([REFERENCE, padded], [ITEM, ITEM], None)
    assert hedged["rouge_l"] < 0.6 < plain["rouge_l"]
    assert hedged["token_f1"] < plain["token_f1"]


def test_a_decline_is_counted_and_scores_low():
    [row] = score_references(["I don't know."], [ITEM], None)
    assert row["abstention_rate"] == 1.0 and row["rouge_l"] < 0.1
    assert "similarity" not in row


def test_similarity_comes_from_the_given_function_and_is_summarized():
    rows = score_references(["a", "b"], [ITEM, {**ITEM, "template": "faq"}],
                            lambda answers, refs: [0.9, 0.5])
    summary = summarize_scores(rows, [ITEM, {**ITEM, "template": "faq"}])
    assert summary["similarity"] == pytest.approx(0.7)
    assert summary["n"] == 2 and set(summary["ci95"]) >= {"rouge_l", "similarity", "token_f1"}
    assert set(summary["by_category"]) == {"faq", "tickets"}


def test_embedding_similarity_with_the_bundled_minilm():
    pytest.importorskip("sentence_transformers")
    from tuneline.evaluate.free_text import embedding_similarity
    from tuneline.index.config import EMBEDDED_EMBEDDER

    close, far = embedding_similarity(EMBEDDED_EMBEDDER)(
        ["Press the reset button for fifteen seconds.", "The weather in Paris is mild."],
        [REFERENCE, REFERENCE])
    assert close > 0.6 > far


def _metrics(tuned, base):
    def scores(rouge):
        return {"reference": {"n": 10, "rouge_l": rouge, "similarity": rouge + 0.3,
                              "token_f1": rouge}}
    return {"tuned": scores(tuned), "base": scores(base)}


def test_gate_min_score_and_min_gain():
    gate = GateConfig(min_score={"reference": {"rouge_l": 0.3, "similarity": 0.6}},
                      min_gain={"reference": {"rouge_l": 0.1}})
    assert check_gate(gate, _metrics(0.4, 0.2)).passed
    failed = check_gate(gate, _metrics(0.25, 0.2))
    assert [c.name for c in failed.failures] == ["min_score.reference.rouge_l",
                                                 "min_score.reference.similarity",
                                                 "min_gain.reference.rouge_l"]
    assert "a gain of 0.050, required >= 0.100" in failed.failures[-1].message


def test_gate_names_a_missing_set_and_refuses_unknown_scores():
    result = check_gate(GateConfig(min_score={"reference": {"rouge_l": 0.1}}),
                        {"tuned": {"recall": {"accuracy": 1.0, "n": 3}}})
    assert not result.passed and "no 'reference' set" in result.checks[0].message
    with pytest.raises(ValueError, match="not a score"):
        GateConfig(min_score={"reference": {"hallucination_rate": 0.1}})
