"""The leak guard: when does a training text state an evaluated fact (issue #19, item 1)."""

from __future__ import annotations

from tuneline.leakage import GuardedFact, LeakGuard, message_text

# The review's case: heldout "Canoe Slalom | Women's Kayak Single" -> FOX Jessica.
KAYAK = GuardedFact("kayak", "event_champion", "FOX Jessica",
                    ("Canoe Slalom", "Women's Kayak Single"))
# A country answer: shared by many rows, leaks only together with its athlete.
COUNTRY = GuardedFact("pan", "athlete_country", "China", ("PAN Zhanle",))
ROWS = {"event_champion": {"FOX Jessica": 2}, "athlete_country": {"China": 91}}


def guard() -> LeakGuard:
    return LeakGuard([KAYAK, COUNTRY], ROWS)


def test_an_identifying_answer_leaks_anywhere():
    # The reading fact that trained the heldout answer in the demo (another event, same name).
    assert guard().stated("Gold Medal in Canoe Slalom, Women's Canoe Single, at Paris 2024: "
                          "FOX Jessica of Australia.") == "kayak"
    assert guard().stated("fox   JESSICA won twice") == "kayak"
    assert guard().stated("FOX Jessicas") is None  # word boundaries


def test_a_shared_answer_leaks_only_with_its_entity():
    assert guard().stated("ZHANG Yufei represented China.") is None
    assert guard().stated("PAN Zhanle swam the 100m freestyle.") is None
    assert guard().stated("Gold in Swimming, Men's 100m Freestyle: PAN Zhanle of China.") == "pan"


def test_a_code_that_reads_as_a_function_word_leaks_only_with_its_entity():
    iceland = LeakGuard([GuardedFact("is", "alpha_2", "IS", ("Iceland",))], {"alpha_2": {"IS": 1}})
    assert iceland.stated("The alpha 2 of Ireland is IE.") is None
    assert iceland.stated("The alpha 2 of Iceland is IS.") == "is"


def test_a_value_without_row_counts_leaks_only_with_its_entity():
    plain = LeakGuard([KAYAK])  # no rows known: not identifying
    assert plain.stated("FOX Jessica won the Women's Canoe Single.") is None
    assert plain.stated("Canoe Slalom, Women's Kayak Single: FOX Jessica") == "kayak"


def test_facts_without_an_answer_value_guard_nothing():
    assert len(LeakGuard([GuardedFact("x", "t", "", ("Zyx",))])) == 0


def test_message_text_joins_every_message():
    example = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                            {"role": "assistant", "content": "A"}]}
    assert message_text(example) == "S\nQ\nA"
