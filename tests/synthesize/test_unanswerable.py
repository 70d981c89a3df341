"""Unanswerable questions: invented entities that look real but match no row."""

from __future__ import annotations

import random
from pathlib import Path

from tuneline.evaluate.metrics import normalize
from tuneline.ingest.sources import read_csv
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.unanswerable import unanswerable_facts

PARIS = Path(__file__).parents[2] / "examples" / "paris2024" / "data"


def _medallists():
    return list(read_csv("medallists", PARIS / "medallists.csv"))


def _event_template() -> TemplateConfig:
    return TemplateConfig(
        name="event_champion", source="medallists", key="{discipline} | {event}",
        questions=["Who won {discipline}, {event}?", "Name the champion of {discipline} {event}."],
        answer="{name} won.", fact="{name}")


def test_invented_athletes_are_absent_from_the_whole_table():
    records = _medallists()
    template = TemplateConfig(
        name="athlete_country", source="medallists", key="{name}",
        questions=["Which country did {name} represent?", "For which nation did {name} compete?"],
        answer="{name} represented {country}.", fact="{country}")
    facts = unanswerable_facts(template, records, 25, "I don't know.", random.Random(0))
    real_names = {normalize(r.data["name"]) for r in records}
    assert len(facts) == 25 and len({f.key for f in facts}) == 25
    for fact in facts:
        assert normalize(fact.key) not in real_names
        assert fact.kind == "unanswerable" and fact.answer == "I don't know." and fact.fact == ""
        assert fact.questions[0] == f"Which country did {fact.key} represent?"


def test_composite_keys_recombine_into_unseen_pairs():
    records = _medallists()
    template = TemplateConfig(
        name="event_champion", source="medallists", key="{discipline} | {event}",
        where={"medal_type": "Gold Medal"},
        questions=["Who won {discipline}, {event}?", "Name the champion of {discipline} {event}."],
        answer="{name} won.", fact="{name}")
    facts = unanswerable_facts(template, records, 10, "No data.", random.Random(1))
    real = {normalize(f"{r.data['discipline']} | {r.data['event']}") for r in records}
    assert len(facts) == 10 and not {normalize(f.key) for f in facts} & real


def test_invented_events_stay_in_a_discipline_that_has_real_facts():
    records = _medallists()
    template = _event_template()
    sampled = [r for r in records if r.data["discipline"] in {"Athletics", "Swimming"}]
    facts = unanswerable_facts(template, records, 12, "No data.", random.Random(2), sampled)
    assert len(facts) == 12
    events_of = {}
    for r in sampled:
        events_of.setdefault(r.data["discipline"], set()).add(r.data["event"])
    for fact in facts:
        discipline, event = fact.entity
        assert discipline in events_of  # only disciplines the sampled facts come from
        assert event not in events_of[discipline]  # and an event that discipline never held
        # made of two of that discipline's own event names, not of another sport's
        words = set(event.split())
        assert words <= {w for e in events_of[discipline] for w in e.split()}


def test_an_invented_event_never_repeats_a_real_one_word_for_word():
    records = _medallists()
    template = _event_template()
    facts = unanswerable_facts(template, records, 200, "No data.", random.Random(3))
    real = {frozenset(normalize(f"{r.data['discipline']} {r.data['event']}").split())
            for r in records}
    assert len(facts) == 200  # "Men's 100m 100m Breaststroke" is the real event, asked oddly
    assert not {frozenset(normalize(" ".join(f.entity)).split()) for f in facts} & real


def test_same_seed_same_questions_and_zero_means_none():
    records = _medallists()
    template = TemplateConfig(name="t", source="medallists", key="{name}",
                              questions=["Who is {name}?", "Tell me about {name}."],
                              answer="{name}.", fact="{name}")
    first = unanswerable_facts(template, records, 5, "x", random.Random(3))
    second = unanswerable_facts(template, records, 5, "x", random.Random(3))
    assert [f.key for f in first] == [f.key for f in second]
    assert unanswerable_facts(template, records, 0, "x", random.Random(3)) == []


def test_curate_trains_on_some_abstentions_and_holds_out_the_rest(tmp_path):
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.curate.stage import load_chat, load_eval_set
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tmp_path)
    data["synthesize"]["unanswerable"] = {"per_template": 10, "answer": "No idea, sorry.",
                                          "out_of_data": False}  # invented entities only
    data["curate"]["unanswerable_train_fraction"] = 0.4
    result = run_pipeline(PipelineConfig.model_validate(data), until="curate")
    curated = result.artifacts["curate"]
    counts = curated.manifest["counts"]
    assert result.artifacts["synthesize"].manifest["counts"]["unanswerable:capital"] == 10
    # 6 held out for the test set, 1 for the dev set (curate.dev_fraction 0.1), 3 trained
    assert counts["facts_unanswerable_train"] == 3 and counts["facts_unanswerable_eval"] == 6
    assert counts["facts_unanswerable_dev"] == 1
    held = load_eval_set(curated, "unanswerable")
    dev = load_eval_set(curated, "unanswerable", "dev")
    assert len(held) == 6 and all(i["expect"] == "abstain" for i in held)
    assert len(dev) == 1 and {i["fact_id"] for i in dev}.isdisjoint(i["fact_id"] for i in held)
    trained = [ex["messages"] for ex in load_chat(curated, "train")]
    abstentions = [m for m in trained if m[1]["content"] == "No idea, sorry."]
    assert len(abstentions) == 3 * 2  # two trained phrasings each, the third probes
    trained_questions = {m[0]["content"] for m in trained}
    assert not any(i["question"] in trained_questions for i in held + dev)
    assert all(i["fact"] for i in load_eval_set(curated, "recall"))


def test_curate_asks_real_entities_what_the_data_cannot_answer(tmp_path):
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.curate.stage import load_chat, load_eval_set
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tmp_path)
    data["synthesize"]["unanswerable"] = {"per_template": 4, "answer": "No idea, sorry."}
    result = run_pipeline(PipelineConfig.model_validate(data), until="curate")
    curated = result.artifacts["curate"]
    asked = load_eval_set(curated, "absent_attribute") + load_eval_set(curated, "absent_attribute",
                                                                       "dev")
    assert asked and all(i["expect"] == "abstain" for i in asked)
    trained = {m["messages"][0]["content"]: m["messages"][1]["content"]
               for m in load_chat(curated, "train")}
    countries = {i["entity"][0] for i in asked}
    declined = [q for q, a in trained.items() if a == "No idea, sorry."
                and any(c in q for c in countries)]
    assert not declined  # entities asked about are never the ones trained to decline
    assert load_eval_set(curated, "other_qualifier") == []  # no year in the capital questions
