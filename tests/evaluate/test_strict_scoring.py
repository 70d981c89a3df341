"""Strict scoring: the first value claimed for the asked column must be the reference, a list of
candidates is wrong, a hedge plus a claim is no decline (the review's examples, issue #19)."""

from __future__ import annotations

import pytest

from tuneline.evaluate.claims import Vocabulary
from tuneline.evaluate.metrics import judge_answer, score, summarize_items

VOCABULARY = Vocabulary.from_values({
    "athlete_country": ["China", "Japan", "France", "United States", "Australia",
                        "United States Virgin Islands", "Israel"],
    "event_champion": ["KANO Koki", "FOX Jessica", "FOX Noemie", "REUVENY Tom"],
})
COUNTRY = {"set": "heldout", "template": "athlete_country", "fact": "China",
           "question": "Which country did PAN Zhanle represent at the Paris 2024 Olympics?",
           "reference": "PAN Zhanle represented China at the Paris 2024 Olympics."}
CHAMPION = {"set": "heldout", "template": "event_champion", "fact": "KANO Koki",
            "question": "Who won the gold medal in Fencing, Men's Epee Individual?",
            "reference": "KANO Koki of Japan won the gold medal in Fencing, Men's Epee "
                         "Individual, at Paris 2024."}
INVENTED = {"set": "unanswerable", "template": "athlete_country", "expect": "abstain",
            "fact": "", "question": "Which country did FOX Koki represent at Paris 2024?",
            "reference": "I don't have information about that in my Paris 2024 data."}


def verdict(answer: str, item: dict):
    return judge_answer(answer, item, VOCABULARY)


def test_a_list_of_candidates_is_wrong_even_when_it_names_the_reference():
    v = verdict("It could be China, Japan, France or United States.", COUNTRY)
    assert v.contains and not v.correct and v.hallucinated and not v.abstained
    assert v.claims == ("china", "japan", "france", "united states")


def test_the_reference_alone_is_right_in_any_wording():
    for answer in ("PAN Zhanle represented China at the Paris 2024 Olympics.", "china",
                   "He swam for CHINA."):
        v = verdict(answer, COUNTRY)
        assert v.correct and not v.hallucinated and not v.abstained


def test_a_hedge_plus_a_claim_is_not_a_decline():
    right = verdict("I'm not sure, but KANO Koki won it.", CHAMPION)
    assert right.correct and not right.abstained
    wrong = verdict("I'm not sure, but REUVENY Tom won it.", CHAMPION)
    assert not wrong.correct and wrong.hallucinated and not wrong.abstained
    declined = verdict("I don't have information about that.", CHAMPION)
    assert declined.abstained and not declined.correct and not declined.hallucinated


def test_a_copy_of_two_passages_is_wrong():
    answer = ("Silver Medal in Fencing, Men's Epee Individual, at Paris 2024: FOX Noemie of "
              "France. Gold Medal in Fencing, Men's Epee Individual, at Paris 2024: KANO Koki of "
              "Japan.")
    v = verdict(answer, CHAMPION)
    assert v.contains and not v.correct and v.hallucinated


def test_a_decline_that_claims_something_is_no_decline():
    v = verdict("FOX Koki of Japan won the gold medal. No record of other medals.", INVENTED)
    assert not v.correct and not v.abstained and v.hallucinated
    assert score("FOX Koki of Japan won the gold medal. No record of other medals.", INVENTED,
                 VOCABULARY)["containment"] == 1.0  # the lenient reading it replaces
    clean = verdict(INVENTED["reference"], INVENTED)
    assert clean.correct and clean.abstained and not clean.hallucinated


def test_the_asked_entity_is_not_a_claim_and_the_longest_value_wins():
    item = {**COUNTRY, "fact": "United States Virgin Islands",
            "question": "Which country did Japan Smith represent?"}
    v = verdict("Japan Smith represented United States Virgin Islands.", item)
    assert v.claims == ("united states virgin islands",) and v.correct


def test_a_value_the_asked_name_holds_is_claimed_when_the_answer_names_it_again():
    cities = Vocabulary.from_values({"airport_city": ["Ozark", "Franklin", "Bonham", "Van Nuys"]})
    item = {"set": "heldout", "template": "airport_city", "fact": "Ozark",
            "question": "From which city is Ozark-Franklin County?",
            "reference": "Ozark-Franklin County is from Ozark."}
    right = judge_answer("Ozark-Franklin County: city Ozark.", item, cities)
    assert right.claims == ("ozark",) and right.correct
    wrong = judge_answer("Ozark-Franklin County is from Bonham.", item, cities)
    assert wrong.claims == ("bonham",) and not wrong.correct
    assert not judge_answer("Ozark-Franklin County.", item, cities).correct
    same = {**item, "fact": "Van Nuys", "question": "From which city is Van Nuys?"}
    assert judge_answer("Van Nuys is from Van Nuys.", same, cities).correct


def test_without_a_vocabulary_strict_falls_back_to_containment():
    general = {"set": "general", "template": "geography", "fact": "Paris",
               "reference": "The capital of France is Paris.", "question": "Capital of France?"}
    assert verdict("It is Paris.", general).correct
    assert not verdict("Lyon.", general).correct
    # the domain's refusal mentions Paris: it is not the answer to the capital of France
    refusal = verdict("I don't have information about that in my Paris 2024 data.", general)
    assert refusal.contains and not refusal.correct
    assert verdict("I don't know.", general).abstained


def test_without_table_values_a_decline_must_lead_the_answer():
    # A document question whose passages were withheld (evaluate's `withheld` set).
    withheld = {"set": "withheld", "template": "faq", "expect": "abstain", "fact": "",
                "withhold": "Yes. SQLite is in the public domain.",
                "question": "Can I use SQLite in my commercial product without paying royalties?",
                "reference": "I don't have information about that in my data."}
    claim = judge_answer("No, you cannot use SQLite in your commercial product. It is a "
                         "proprietary technology that is not available for commercial use.",
                         withheld)
    assert claim.contains and claim.hallucinated and not (claim.correct or claim.abstained)
    for decline in ("I don't have information about that in my data.",
                    "I don't have that information.",
                    "I don't know. The passages are about other questions.",
                    "I'm sorry. I don't have that information.",
                    "Can I use SQLite commercially? The passages do not mention it."):
        assert judge_answer(decline, withheld).correct, decline
    # A table's values do not make a document's claim a decline (a run with both).
    mixed = judge_answer("No. SQLite is not available for commercial use.", withheld,
                         VOCABULARY)
    assert mixed.hallucinated and not mixed.abstained
    # A trained decline of two sentences, repeated word for word.
    two = {**withheld, "reference": "Sorry, I can't say. That is not in my documents."}
    assert judge_answer("Sorry, I can't say. That is not in my documents.", two).correct
    assert not judge_answer("SQLite doesn't contain a server.", withheld).abstained


def test_summaries_report_strict_accuracy_and_containment_side_by_side():
    answers = ["China.", "China, Japan or France.", "Japan."]
    m = summarize_items(answers, [COUNTRY] * 3, vocabulary=VOCABULARY)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["containment"] == pytest.approx(2 / 3)
    assert m["exact_match"] == pytest.approx(1 / 3)
    assert m["hallucination_rate"] == pytest.approx(2 / 3)


# ISO codes that are also English words (countries panel table, bench/panel.py): Iceland "IS",
# India "IN", Dominican Republic "DO", Malaysia "MY"; Tonga's currency "TOP".
CODES = Vocabulary.from_values({"alpha_2": ["IQ", "IS", "IN", "DO", "MY", "FK"],
                                "alpha_3": ["TOP", "MXN"],
                                "official_name": ["Republic of Iraq"]})
IRAQ = {"set": "recall", "template": "alpha_2", "fact": "IQ",
        "question": "What alpha 2 does Iraq have?", "reference": "The alpha 2 of Iraq is IQ."}
INVENTED_COUNTRY = {"set": "unanswerable", "template": "alpha_2", "expect": "abstain",
                    "fact": "", "question": "What alpha 2 does Irloupe have?",
                    "reference": "I do not have information about that in my countries data."}


def test_a_code_is_claimed_only_in_capitals():
    right = judge_answer("The alpha 2 of Iraq is IQ.", IRAQ, CODES)
    assert right.claims == ("iq",) and right.correct
    wrong = judge_answer("The alpha 2 of Iraq IS IN doubt.", IRAQ, CODES)
    assert wrong.claims == ("is", "in") and not wrong.correct and wrong.hallucinated


def test_a_decline_in_words_that_are_also_codes_is_a_decline():
    declined = judge_answer(INVENTED_COUNTRY["reference"], INVENTED_COUNTRY, CODES)
    assert declined.claims == () and declined.abstained and declined.correct
    answered = judge_answer("Falkland Islands: alpha 2 FK. Top marks.", INVENTED_COUNTRY, CODES)
    assert answered.claims == ("fk",) and answered.hallucinated


def test_a_code_also_written_as_a_word_in_the_data_is_matched_in_any_case():
    vocabulary = Vocabulary.from_values({"symbol": ["IN"], "word": ["in"]})
    assert vocabulary.claims("made in Spain", "symbol") == ["in"]
