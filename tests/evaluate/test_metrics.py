from tuneline.evaluate.metrics import accuracy, contains_fact


def test_fact_matching_ignores_case_accents_and_punctuation():
    assert contains_fact("It was LÉON Marchand!", "Léon Marchand")
    assert contains_fact("Marchand, Leon won", "Marchand Leon")
    assert not contains_fact("Leon Marchandise", "Leon Marchand")
    assert not contains_fact("anything", "")


def test_accuracy():
    assert accuracy([True, False, True, True]) == (0.75, 4)
    assert accuracy([]) == (0.0, 0)


def test_abstentions_are_recognised_and_scored_for_unanswerable_items():
    from tuneline.evaluate.metrics import contains_reference as is_correct
    from tuneline.evaluate.metrics import is_abstention

    trained = "I don't have information about that in my data."
    assert is_abstention("Sorry, I don't know who that is.")
    assert is_abstention("There is NO RECORD of such an event.")
    assert is_abstention(trained)
    assert not is_abstention("Léon Marchand of France won it.")
    assert not is_abstention("I know: Marchand won.")
    abstain_item = {"expect": "abstain", "reference": trained, "fact": ""}
    assert is_correct("I don't have information about that in my data.", abstain_item)
    assert not is_correct("PAN Akram represented China.", abstain_item)
    fact_item = {"fact": "Léon Marchand", "reference": "..."}
    assert is_correct("leon marchand won", fact_item)
    assert not is_correct("I don't know.", fact_item)
