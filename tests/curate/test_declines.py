"""The decline budget: declines thinned per format, in proportion across their routes."""

from __future__ import annotations

from tuneline.curate.declines import within_decline_budget
from tuneline.rag.passages import Passage
from tuneline.rag.prompt import rag_user_message

REFUSAL = "I don't have information about that in my Paris 2024 data."
BOTH_QUARTER = {"plain": 0.25, "rag": 0.25}


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def plain(n: int, answer: str, tag: str) -> list[dict]:
    return [chat(f"{tag} question {i}?", answer) for i in range(n)]


ROW = Passage("medallists:L2", "Gold Medal in Athletics, Men's 100m: LYLES Noah.", "medallists",
              {})


def with_passages(n: int, answer: str, tag: str) -> list[dict]:
    return [chat(rag_user_message(f"{tag} question {i}?", [ROW]), answer) for i in range(n)]


def without_a_passage(n: int, answer: str, tag: str) -> list[dict]:
    return [chat(rag_user_message(f"{tag} question {i}?", []), answer) for i in range(n)]


def test_declines_are_thinned_per_format_in_proportion_across_routes():
    routes = {"qa": plain(60, "LYLES Noah won it.", "qa"),
              "unanswerable": plain(40, REFUSAL, "invented"),
              "other_qualifier": plain(20, REFUSAL, "tokyo"),
              "rag": with_passages(30, "Gold Medal in Athletics: LYLES Noah.", "rag"),
              "rag_unanswerable": with_passages(10, REFUSAL, "rag-invented")}
    kept, counts = within_decline_budget(routes, {"plain": 1 / 3, "rag": 1 / 3}, REFUSAL,
                                         seed=0)
    # plain: 60 answers allow 30 declines of 60 -> 20 of 40 invented and 10 of 20 kept
    assert counts == {"dropped:decline_budget:unanswerable": 20,
                      "dropped:decline_budget:other_qualifier": 10}
    assert len(kept["unanswerable"]) == 20 and len(kept["other_qualifier"]) == 10
    assert kept["qa"] == routes["qa"]  # answers are never dropped
    # with passages: 10 declines to 30 answers is within the budget
    assert kept["rag_unanswerable"] == routes["rag_unanswerable"]
    share = (20 + 10) / (60 + 20 + 10)
    assert abs(share - 1 / 3) < 1e-9


def test_the_budget_is_seeded_and_one_keeps_everything():
    routes = {"qa": plain(10, "Paris.", "qa"), "unanswerable": plain(30, REFUSAL, "x")}
    first, _ = within_decline_budget(routes, BOTH_QUARTER, REFUSAL, seed=3)
    second, _ = within_decline_budget(routes, BOTH_QUARTER, REFUSAL, seed=3)
    assert first == second and len(first["unanswerable"]) == 3
    assert within_decline_budget(routes, {"plain": 1.0, "rag": 1.0}, REFUSAL,
                                 seed=3) == (routes, {})


def test_bare_questions_may_have_their_own_limit():
    routes = {"qa": plain(90, "LYLES Noah won it.", "qa"),
              "unanswerable": plain(40, REFUSAL, "invented"),
              "rag": with_passages(30, "Gold Medal in Athletics: LYLES Noah.", "rag"),
              "rag_unanswerable": with_passages(15, REFUSAL, "rag-invented")}
    kept, counts = within_decline_budget(routes, {"plain": 0.1, "rag": 1 / 3}, REFUSAL, seed=0)
    # 90 bare answers allow 10 bare declines; 30 answers with passages allow 15 declines
    assert len(kept["unanswerable"]) == 10 and kept["rag_unanswerable"] == routes[
        "rag_unanswerable"]
    assert counts == {"dropped:decline_budget:unanswerable": 30}


def test_a_decline_where_no_passage_was_found_is_never_thinned():
    routes = {"rag": with_passages(12, "Gold Medal in Athletics: LYLES Noah.", "rag"),
              "rag_unanswerable": (without_a_passage(40, REFUSAL, "invented")
                                   + with_passages(10, REFUSAL, "absent"))}
    kept, counts = within_decline_budget(routes, BOTH_QUARTER, REFUSAL, seed=0)
    # 12 answers with passages allow 4 declines with passages; the 40 without any all stay
    assert counts == {"dropped:decline_budget:rag_unanswerable": 6}
    left = kept["rag_unanswerable"]
    assert sum("(no passage found)" in c["messages"][0]["content"] for c in left) == 40
    assert len(left) == 44


def test_declines_where_no_passage_was_found_never_outnumber_the_passage_answers():
    routes = {"rag": (with_passages(12, "Gold Medal in Athletics: LYLES Noah.", "rag")
                      + without_a_passage(10, REFUSAL, "removed")),
              "rag_unanswerable": without_a_passage(30, REFUSAL, "invented")}
    kept, counts = within_decline_budget(routes, {"plain": 1.0, "rag": 1.0}, REFUSAL, seed=0,
                                         no_passage_per_answer=1.0)
    # 12 answers with passages allow 12 declines without one, thinned 10 : 30 across routes
    assert counts == {"dropped:decline_budget:rag": 7,
                      "dropped:decline_budget:rag_unanswerable": 21}
    assert sum("(no passage found)" in c["messages"][0]["content"]
               for chats in kept.values() for c in chats) == 12
    assert len([c for c in kept["rag"] if "LYLES" in c["messages"][1]["content"]]) == 12
    half, _ = within_decline_budget(routes, {"plain": 1.0, "rag": 1.0}, REFUSAL, seed=0,
                                    no_passage_per_answer=0.5)
    assert len(half["rag"]) + len(half["rag_unanswerable"]) == 12 + 6
