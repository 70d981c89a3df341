"""Out-of-data questions about real entities: absent attributes, other qualifiers, variant
names (issue #19), built from the templates of any table."""

from __future__ import annotations

import random
from pathlib import Path

from tuneline.ingest.sources import read_csv
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.out_of_data import (
    ABSENT_ATTRIBUTE,
    OTHER_QUALIFIER,
    VARIANT_NAME,
    absent_attribute_facts,
    absent_attributes,
    is_person_key,
    other_qualifier_facts,
    variant_name_facts,
)
from tuneline.synthesize.templates import facts_from_records

PARIS = Path(__file__).parents[2] / "examples" / "paris2024" / "data"
ATHLETE = TemplateConfig(
    name="athlete_country", source="medallists", key="{name}",
    questions=["Which country did {name} represent at Paris 2024?",
               "For which nation did {name} compete in 2024?"],
    answer="{name} represented {country}.", fact="{country}")
EVENT = TemplateConfig(
    name="event_champion", source="medallists", key="{discipline} | {event}",
    where={"medal_type": "Gold Medal"},
    questions=["Who won {discipline}, {event}?", "Name the champion of {event} ({discipline})."],
    answer="{name} won {event}.", fact="{name}")
ABSTAIN = "I don't know."


def _facts(template: TemplateConfig):
    records = list(read_csv("medallists", PARIS / "medallists.csv"))
    return facts_from_records(template, records)[0], records


def test_attributes_the_schema_holds_are_not_asked():
    columns = ["name", "country", "birth_date", "height_cm", "discipline", "event"]
    person = dict(absent_attributes(ATHLETE, columns))
    assert is_person_key(ATHLETE) and not is_person_key(EVENT)
    assert "coach" in person and "height" not in person  # height_cm is a column
    thing = dict(absent_attributes(EVENT, ["venue_name", *columns], ["Who sponsored {event}?"]))
    assert "venue" not in thing and "score" in thing
    assert thing["configured-0"] == "Who sponsored {event}?"


def test_an_attribute_a_column_holds_under_another_word_is_not_asked():
    """msleep's `bodywt` holds a weight, starwars' `mass` too, and a `capital` or `city` column
    answers "In which town …": asked as absent, their gold decline would be wrong."""
    def asked(columns):
        return dict(absent_attributes(ATHLETE, ["name", *columns]))
    assert "weight" not in asked(["sleep_total", "brainwt", "bodywt"])
    starwars = asked(["height", "mass", "homeworld"])
    assert "weight" not in starwars and "birthplace" not in starwars
    assert "birthplace" not in asked(["capital", "statehood_year"])
    assert "birthplace" not in asked(["iata", "city", "state"])
    assert "venue" not in dict(absent_attributes(EVENT, ["event", "city"]))
    kept = asked(["medal_type", "birth_date", "team", "country"])  # the demo's medallists
    assert {"weight", "birthplace", "height", "club"} <= set(kept)
    for columns in (["body_wt"], ["body_mass_g"], ["HomeWorld"], ["place_of_birth"]):
        assert len(asked(columns)) < len(kept), columns
    # other words ending the same way hold nothing
    assert set(kept) <= set(asked(["capacity", "capital_gains", "finishing_place"]))


def test_another_tables_column_does_not_hold_an_attribute_under_another_name():
    everything = ["name", "country", "iata", "city", "bodywt"]
    asked = dict(absent_attributes(ATHLETE, everything, (), ["name", "country"]))
    assert {"birthplace", "weight"} <= set(asked)
    assert "height" not in dict(absent_attributes(ATHLETE, [*everything, "height_cm"], (),
                                                  ["name", "country"]))  # its own word: any table


def test_absent_attribute_questions_name_the_real_entity_and_expect_a_decline():
    facts, _ = _facts(ATHLETE)
    attributes = absent_attributes(ATHLETE, ["name", "country"], ["Who coached {name}?"])
    probes = absent_attribute_facts(ATHLETE, facts[:20], attributes, ABSTAIN, random.Random(0))
    assert len(probes) == 20 and {p.kind for p in probes} == {ABSENT_ATTRIBUTE}
    for probe, origin in zip(probes, facts[:20], strict=True):
        assert origin.key in probe.questions[0] and "{" not in probe.questions[0]
        assert probe.answer == ABSTAIN and probe.fact == ""
        assert probe.source["origin"] == origin.fact_id and probe.entity == origin.entity
    assert len({p.source["probe"] for p in probes}) > 5  # attributes dealt in turn


def test_other_qualifiers_change_every_phrasing():
    facts, _ = _facts(EVENT)
    shifted = other_qualifier_facts(EVENT, facts[:5], ABSTAIN, random.Random(0))
    assert shifted == []  # no year and nothing configured: no such question for this template
    probes = other_qualifier_facts(ATHLETE, _facts(ATHLETE)[0][:10], ABSTAIN, random.Random(0),
                                   {"Paris 2024": ["Tokyo 2020"]})
    assert len(probes) == 10 and {p.kind for p in probes} == {OTHER_QUALIFIER}
    for probe in probes:
        first, second = probe.questions
        assert first.endswith("at Tokyo 2020?") and "Paris 2024" not in first
        assert "in 2024" not in second and any(f"in {y}?" in second for y in (2020, 2016, 2028))


def test_variant_names_are_answerable_and_name_one_person():
    facts, records = _facts(ATHLETE)
    names = [r.data["name"].strip() for r in records]
    probes = variant_name_facts(ATHLETE, facts[:40], names, random.Random(0))
    assert probes and {p.kind for p in probes} == {VARIANT_NAME}
    assert variant_name_facts(EVENT, _facts(EVENT)[0][:5], names, random.Random(0)) == []
    for probe in probes:
        origin = next(f for f in facts if f.fact_id == probe.source["origin"])
        assert probe.fact == origin.fact and probe.answer == origin.answer
        assert origin.key not in probe.questions[0]
        if probe.source["probe"] == "one word":
            word = probe.questions[0].split()[3]
            holders = [n for n in set(names) if word.casefold() in n.casefold().split()]
            assert holders == [origin.key]
