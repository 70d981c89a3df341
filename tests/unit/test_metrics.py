from tuneline.evaluation.metrics import accuracy, contains_fact


def test_fact_matching_ignores_case_accents_and_punctuation():
    assert contains_fact("It was LÉON Marchand!", "Léon Marchand")
    assert contains_fact("Marchand, Leon won", "Marchand Leon")
    assert not contains_fact("Leon Marchandise", "Leon Marchand")
    assert not contains_fact("anything", "")


def test_accuracy():
    assert accuracy([True, False, True, True]) == (0.75, 4)
    assert accuracy([]) == (0.0, 0)
