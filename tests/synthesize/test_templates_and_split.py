import pytest

from tuneline.curate.split import split_by_fact
from tuneline.errors import DataError
from tuneline.ingest.records import Record
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.templates import check_columns, facts_from_records

TEMPLATE = TemplateConfig(
    name="capital", source="t", key="{country}",
    questions=["Capital of {country}?", "Which city is the capital of {country}?"],
    answer="The capital of {country} is {capital}.", fact="{capital}",
)


def _records(rows):
    return [Record("t", "t.csv", i + 2, dict(zip(("country", "capital"), row, strict=True)))
            for i, row in enumerate(rows)]


def test_facts_render_every_phrasing_and_keep_provenance():
    facts, report = facts_from_records(TEMPLATE, _records([("France", "Paris")]))
    (fact,) = facts
    assert fact.questions == ["Capital of France?", "Which city is the capital of France?"]
    assert fact.answer == "The capital of France is Paris." and fact.fact == "Paris"
    assert fact.source == {"source": "t", "file": "t.csv", "line": 2}
    assert report.facts == 1


def test_empty_duplicate_and_ambiguous_rows_are_dropped_and_counted():
    rows = [("France", "Paris"), ("France", "Paris"), ("Spain", ""),
            ("Chad", "N'Djamena"), ("Chad", "Abeche")]
    facts, report = facts_from_records(TEMPLATE, _records(rows))
    assert [f.key for f in facts] == ["France"]
    assert dict(report.skipped) == {"empty_field": 1, "duplicate_row": 1, "ambiguous_key": 2}
    # The duplicate row states the same fact: retrieving it retrieves the answer.
    assert facts[0].source == {"source": "t", "file": "t.csv", "line": 2, "same_fact_lines": [3]}


def test_missing_columns_are_named():
    with pytest.raises(DataError, match=r"column\(s\) \['capital'\] not in source 't'"):
        check_columns(TEMPLATE, ["country", "region"])


def test_split_keeps_all_phrasings_of_a_fact_on_one_side():
    rows = [(f"Country{i}", f"City{i}") for i in range(60)]
    facts, _ = facts_from_records(TEMPLATE, _records(rows))
    split = split_by_fact(facts, heldout_fraction=0.2, val_fraction=0.1, seed=3)
    ids = [{f.fact_id for f in part} for part in (split.train, split.val, split.heldout)]
    assert (len(ids[0]), len(ids[1]), len(ids[2])) == (42, 6, 12)
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split_by_fact(facts, 0.2, 0.1, seed=3)
    assert [f.fact_id for f in again.heldout] == [f.fact_id for f in split.heldout]
