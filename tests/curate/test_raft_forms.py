"""One answer form per template: the rewrite that follows RAFT's build (curate/raft.py)."""

from tuneline.curate.formats import chat_example
from tuneline.curate.raft import _one_form_per_template, _Quote, extractive_answer


def _quote(passage: str, fact: str, template: str, candidates: int) -> _Quote:
    answer = extractive_answer(passage, fact, candidates)
    return _Quote(chat_example("question", answer), passage, fact, template, answer != passage)


def test_a_template_with_one_field_quote_gets_them_everywhere_and_no_other_template_does():
    quoted = [
        _quote("Ford: start 1974-08-09; end 1977-01-20.", "1977-01-20", "end", 2),
        _quote("Obama: start 2009-01-20; end 2017-01-20.", "2017-01-20", "end", 1),
        _quote("Paris: capital of France; region Europe.", "France", "capital", 1),
    ]
    assert _one_form_per_template(quoted) == 1
    answers = [q.chat["messages"][-1]["content"] for q in quoted]
    assert answers == ["Ford: end 1977-01-20.", "Obama: end 2017-01-20.",
                       "Paris: capital of France; region Europe."]


def test_a_row_that_could_not_be_cut_down_does_not_switch_its_template():
    # two candidates named, but every field states the fact: the answer stays the whole row
    quoted = [_quote("Vole: bodywt 7.0; sleep total 7.0.", "7.0", "sleep", 2),
              _quote("Lion: bodywt 161.5; sleep total 13.5.", "13.5", "sleep", 1)]
    assert _one_form_per_template(quoted) == 0
    assert quoted[1].chat["messages"][-1]["content"] == "Lion: bodywt 161.5; sleep total 13.5."
