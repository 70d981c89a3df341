"""The scope gate (index.retrieval.scope_margin) with the real MiniLM embedder: a question the
table's templates do not ask, about a real entity, is out of scope; a new phrasing of a
template question is in."""

from __future__ import annotations

import pytest

from tuneline.rag.matching import FieldValues
from tuneline.rag.scope import ScopeGate, question_shape, template_shape

pytest.importorskip("sentence_transformers")

KNOWN = FieldValues({"name": ["CROUSER Ryan", "LYLES Noah", "FOX Jessica"],
                     "discipline": ["Athletics", "Canoe Slalom"],
                     "event": ["Men's Shot Put", "Men's 100m", "Women's Kayak Single"]})
TRAINED = [
    "Who won the gold medal in {discipline}, {event}, at the Paris 2024 Olympics?",
    "At Paris 2024, which athlete took gold in the {event} event of {discipline}?",
    "Name the Paris 2024 Olympic champion of {discipline} {event}.",
    "Which country did {name} represent at the Paris 2024 Olympics?",
    "For which nation did {name} win a medal at Paris 2024?",
    "What country was {name} competing for at the 2024 Paris Games?",
]


def test_shapes_mask_the_values_a_question_names():
    assert template_shape(TRAINED[0]) == "Who won the gold medal in X, at the Paris 2024 Olympics?"
    assert question_shape("Who coached CROUSER Ryan?", KNOWN) == "Who coached X?"
    assert question_shape("Which country did Crouser represent?", KNOWN) == (
        "Which country did X represent?")  # named in part
    assert question_shape("Who won Athletics, Men's 100m?", KNOWN) == "Who won X?"


@pytest.fixture(scope="module")
def gate():
    from tuneline.rag.embed import Embedder

    return ScopeGate(Embedder(), TRAINED, KNOWN, margin=0.2)


def test_new_phrasings_of_template_questions_are_in_scope(gate):
    assert all(gate.in_scope([
        "Crouser won a medal at Paris 2024. Which country does this athlete represent?",
        "Who was the Olympic champion in Men's 100m (Athletics) at the 2024 Games in Paris?",
        "Which nation was FOX Jessica representing at the Paris Olympics?",
    ]))


def test_attributes_the_table_does_not_hold_are_out_of_scope(gate):
    asked = ["Who coached CROUSER Ryan?", "How tall is LYLES Noah?",
             "How long did Canoe Slalom, Women's Kayak Single last?",
             "Which company sponsored Athletics, Men's Shot Put?"]
    assert gate.in_scope(asked) == [False] * len(asked)
    # the threshold comes from the templates: a wider margin lets more through
    assert gate.threshold == pytest.approx(
        ScopeGate(gate.embedder, TRAINED, KNOWN, margin=0.0).threshold - 0.2)


def test_one_phrasing_is_not_enough_to_tell_a_shape():
    with pytest.raises(ValueError, match="two template phrasings"):
        ScopeGate(object(), TRAINED[:1], KNOWN, margin=0.2)


def test_lower_case_words_stay_unless_a_value_writes_them_so():
    # an airport called "Capital" beside a state table (bench/panel.py's airports join)
    known = FieldValues({"name": ["Capital", "Oregon", "Owl monkey", "Côte d'Ivoire"]})
    assert question_shape("What capital does Oregon have?", known) == "What capital does X have?"
    assert question_shape("Give the bodywt of Owl monkey.", known) == "Give the bodywt of X."
    assert question_shape("What official name does Côte d'Ivoire have?", known) == (
        "What official name does X have?")
    # typed all in lower case, any word may be a name
    assert question_shape("what capital does oregon have?", known) == "what X does X have?"


def test_one_lonely_phrasing_does_not_lower_the_threshold(gate):
    # countries' templates (bench/panel.py): the fourth phrasing is far from the other three
    lonely = [*TRAINED, "Which official name is listed for the country {name}?"]
    widened = ScopeGate(gate.embedder, lonely, KNOWN, margin=0.2)
    assert widened.threshold > gate.threshold - 0.05
    assert widened.in_scope(["What was CROUSER Ryan's winning score?",
                             "Which company sponsors LYLES Noah?"]) == [False, False]
