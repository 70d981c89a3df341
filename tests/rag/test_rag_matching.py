"""Matching retrieved passages with what the question names (index.retrieval.match_question):
the rules on hand-made medal rows, without a store."""

from __future__ import annotations

from tuneline.rag.matching import FIELD_PREFIX, FieldValues, field_values, matching_hits, words
from tuneline.rag.passages import Hit, Passage


def _row(line: int, name: str, discipline: str, event: str, medal: str) -> Passage:
    fields = {"name": name, "discipline": discipline, "event": event, "medal_type": medal}
    return Passage(id=f"medallists:L{line}", text=f"{medal} in {discipline}, {event}: {name}.",
                   source="medallists",
                   metadata={"line": str(line),
                             **{FIELD_PREFIX + key: value for key, value in fields.items()}})


ROWS = [
    _row(1, "LYLES Noah", "Athletics", "Men's 100m", "Gold Medal"),
    _row(2, "THOMPSON Kishane", "Athletics", "Men's 100m", "Silver Medal"),
    _row(3, "LYLES Noah", "Athletics", "Men's 200m", "Bronze Medal"),
    _row(4, "MARCHAND Leon", "Swimming", "Men's 200m Individual Medley", "Gold Medal"),
    _row(5, "ALFRED Julien", "Athletics", "Women's 100m", "Gold Medal"),
    _row(6, "SMITH Anna", "Athletics", "Women's 4 x 100m Relay", "Gold Medal"),
    _row(7, "RINER Teddy", "Judo", "Men +100 kg", "Gold Medal"),
    _row(8, "NGAYAP HAMBOU Maxime", "Judo", "Men -100 kg", "Gold Medal"),
]
KNOWN = FieldValues(field_values(ROWS))


def _kept(question: str, rows: list[Passage] = ROWS, known: FieldValues | None = KNOWN
          ) -> list[int]:
    hits = [Hit(p, 1.0) for p in rows]
    return [int(h.passage.metadata["line"]) for h in matching_hits(question, hits, known)]


def test_words_fold_case_and_accents_keep_signs_and_drop_stop_words():
    assert words("Léon MARCHAND of the Men -100 kg") == {"leon", "marchand", "men", "-100", "kg"}
    assert words("Cross-country, 4 x 100m") == {"cross", "country", "4", "100m"}


def test_an_athlete_question_keeps_every_row_of_that_athlete_only():
    assert _kept("Which country did LYLES Noah represent at Paris 2024?") == [1, 3]


def test_an_invented_name_sharing_words_with_real_ones_keeps_nothing():
    assert _kept("Which country did LYLES Leon represent?") == []
    assert _kept("Which country did MARCHAND Noah represent?") == []


def test_naming_the_medal_keeps_the_champion_only():
    assert _kept("Who won the gold medal in Athletics, Men's 100m?") == [1]
    # Without the medal named, the event's medallists stay: the model has to read them.
    assert _kept("Name the champion of Athletics Men's 100m.") == [1, 2]


def test_the_longest_named_value_wins():
    # "Women's 100m" is named too, word for word, but the relay is what is asked.
    assert _kept("Who won the Women's 4 x 100m Relay in Athletics?") == [6]


def test_a_signed_number_tells_two_events_apart():
    assert _kept("Who won gold in Judo, Men -100 kg?") == [8]
    assert _kept("Who won gold in Judo, Men +100 kg?") == [7]


def test_an_event_recombined_with_another_discipline_keeps_nothing():
    assert _kept("Who won the gold medal in Swimming, Men's 100m?") == []
    # The swimming rows are not among the candidates: the index's values still rule them out.
    only_athletics = [ROWS[0], ROWS[1]]
    assert _kept("Who won the gold medal in Swimming, Men's 100m?", only_athletics) == []
    # Judged by the candidates alone, nothing names "Swimming": that is why KNOWN exists.
    assert _kept("Who won the gold medal in Swimming, Men's 100m?", only_athletics,
                 known=None) == [1]


def test_a_question_naming_another_year_than_the_passages_keeps_nothing():
    dated = [Passage(id=p.id, text=p.text.replace(":", " at Paris 2024:"), source=p.source,
                     metadata=p.metadata) for p in ROWS]
    assert _kept("Which country did LYLES Noah represent at Paris 2024?", dated) == [1, 3]
    assert _kept("Which country did LYLES Noah represent at the Tokyo 2020 Games?", dated) == []
    assert _kept("Who won the 2021 Tokyo Games Men's 100m in Athletics?", dated) == []
    # passages that state no year say nothing against the one asked
    assert _kept("Which country did LYLES Noah represent at the Tokyo 2020 Games?") == [1, 3]
    assert _kept("Who won the gold medal in Judo, Men +100 kg, in 2024?", dated) == [7]


def test_a_distance_the_row_does_not_have_rules_the_row_out():
    # an invented event that holds a real one's words in full, and another distance
    assert _kept("Who won the gold medal in Athletics, Women's 200m 100m?") == []
    assert _kept("Who won the gold medal in Athletics, Women's 100m?") == [5]
    # the relay's "4" and "100m" are both in the question: it stays
    assert _kept("Who won the Women's 4 x 100m Relay in Athletics?") == [6]


def test_an_event_no_row_has_rules_out_its_discipline_rows_too():
    # the discipline is named in full, the event words belong to two different events
    assert _kept("Who won the gold medal in Athletics, Individual Relay?") == []
    # a spliced weight class: each row lacks one of the two numbers
    assert _kept("Who won the gold medal in Judo, Men -100 +100 kg?") == []
    assert _kept("Who won the gold medal in Judo, Men -100 kg?") == [8]


def test_passages_without_match_fields_are_kept():
    chunk = Passage(id="handbook:c1", text="Medal ceremonies start at noon.", source="handbook")
    hits = [Hit(chunk, 2.0), *(Hit(p, 1.0) for p in ROWS)]
    kept = matching_hits("Who won the gold medal in Swimming, Men's 100m?", hits, KNOWN)
    assert [h.passage.id for h in kept] == ["handbook:c1"]


def test_field_values_lists_each_distinct_value_once():
    values = field_values(ROWS)
    assert values["name"].count("LYLES Noah") == 1
    assert values["medal_type"] == ["Bronze Medal", "Gold Medal", "Silver Medal"]


def _mammal(line: int, name: str) -> Passage:
    return Passage(id=f"msleep:L{line}", text=f"{name}: sleep total 10.", source="msleep",
                   metadata={"line": str(line), FIELD_PREFIX + "name": name})


# Sentence-case names, as in R's msleep (bench/panel.py): the words that go on naming are
# written in lower case.
MAMMALS = [_mammal(1, "Owl monkey"), _mammal(2, "Deer mouse"), _mammal(3, "Arctic fox"),
           _mammal(4, "Arctic ground squirrel"), _mammal(5, "Three-toed sloth"),
           _mammal(6, "Brazilian tapir"), _mammal(7, "North American Opossum")]
MAMMAL_VALUES = FieldValues(field_values(MAMMALS))


def test_a_name_named_with_a_word_that_goes_on_naming_another_keeps_nothing():
    def kept(question: str) -> list[int]:
        return _kept(question, MAMMALS, MAMMAL_VALUES)

    assert kept("Give the sleep total of Owl monkey.") == [1]
    assert kept("How long does the Owl sleep?") == [1]  # named in part, nothing else
    # spliced from real names: a lower-case word of another name goes on naming
    assert kept("Give the sleep total of Owl mouse.") == []
    assert kept("Give the bodywt of Three-toed tapir.") == []
    assert kept("Give the bodywt of Arctic ground fox.") == []  # "Arctic fox" in full, too
    # a capitalised word no name holds: a name the index lacks
    assert kept("Give the bodywt of North Amerinet.") == []
    assert kept("Give the bodywt of North American Opossum.") == [7]


def test_words_around_a_name_that_no_name_writes_in_lower_case_do_not_count():
    # "won" is a word of no name here; "did" and "represent" neither: the athlete is named
    assert _kept("Which country did LYLES Noah represent?") == [1, 3]
    assert _kept("MARCHAND won a medal at Paris. Which country does he represent?") == [4]
