"""Curate's leakage invariant: every training route is checked against every evaluated fact."""

from __future__ import annotations

import pytest

from tuneline.curate.formats import chat_example
from tuneline.curate.leaks import drop_leaking
from tuneline.errors import DataError
from tuneline.leakage import GuardedFact, LeakGuard

HELDOUT = GuardedFact("paris", "capital", "Paris", ("France",))
GUARD = LeakGuard([HELDOUT], {"capital": {"Paris": 1}})
CLEAN = chat_example("What is the capital of Italy?", "The capital of Italy is Rome.")


def test_each_route_that_states_an_evaluated_fact_is_caught_and_counted():
    routes = {
        "qa": [CLEAN, chat_example("Which country has Paris as its capital?", "France.")],
        "unanswerable": [chat_example("Who governs Paris?", "I don't know.")],
        "rag": [chat_example("<passage>The capital of France is Paris.</passage>\nQuestion: "
                             "What is the capital of Spain?", "Madrid."), CLEAN],
        "reading": [chat_example("Question: capital of Peru?", "Lima; Paris is elsewhere.")],
        "replay": [CLEAN],
    }
    kept, check = drop_leaking(routes, GUARD)
    assert kept == [CLEAN, CLEAN, CLEAN]
    assert check.dropped == {"qa": 1, "unanswerable": 1, "rag": 1, "reading": 1, "replay": 0}
    assert check.counts() == {"dropped:leak:qa": 1, "dropped:leak:unanswerable": 1,
                              "dropped:leak:rag": 1, "dropped:leak:reading": 1}
    assert {o["route"] for o in check.offences} == {"qa", "unanswerable", "rag", "reading"}
    assert all(o["fact_id"] == "paris" for o in check.offences)


def test_curate_fails_when_nothing_is_left_to_train():
    with pytest.raises(DataError, match="every training example states"):
        drop_leaking({"qa": [chat_example("Paris?", "Paris.")]}, GUARD)


def test_the_rag_prompt_frame_states_nothing_only_the_data_does():
    """BB8's skin colour is "none", rare enough to identify it alone: the no-passage block's
    source="none" and the instruction's words are the prompt's, not data."""
    from tuneline.rag.passages import Passage
    from tuneline.rag.prompt import rag_user_message

    guard = LeakGuard([GuardedFact("bb8", "skin", "none", ("BB8",)),
                       GuardedFact("info", "skin", "information", ("IG-88",))],
                      {"skin": {"none": 1, "information": 1}})
    decline = chat_example(rag_user_message("What is the skin colour of Rugor?", []),
                           "I do not have that.")
    stating = chat_example(rag_user_message("What is the height of BB8?", [Passage(
        "starwars:L9", "BB8: height 67; skin colour none.", "starwars", {})]), "BB8: height 67.")
    kept, check = drop_leaking({"rag_unanswerable": [decline], "rag": [stating]}, guard)
    assert kept == [decline]
    assert check.dropped == {"rag_unanswerable": 0, "rag": 1}
