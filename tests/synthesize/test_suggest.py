"""Templates suggested from the schema of tables nobody wrote templates for."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tuneline.cli.main import cli
from tuneline.config import load_config
from tuneline.ingest.records import Record
from tuneline.ingest.sources import read_csv
from tuneline.synthesize import suggest
from tuneline.synthesize.config import SynthesizeConfig
from tuneline.synthesize.suggest import auto_templates_for, humanize, plan_templates
from tuneline.synthesize.templates import check_columns, facts_from_records

PARIS = Path(__file__).resolve().parents[2] / "examples" / "paris2024"


def _read(path: Path) -> list[Record]:
    return list(read_csv(path.stem, path))


def _plan(path: Path, max_templates: int | None = None):
    records = _read(path)
    return plan_templates(path.stem, list(records[0].data), [r.data for r in records],
                          max_templates)


def _by_name(suggestion):
    return {t.name: t for t in suggestion.templates}


@pytest.fixture
def products_csv(tmp_path: Path) -> Path:
    """A table designed by nobody here: ids, names, prices, dates, categories, flags, prose."""
    rng = random.Random(7)
    path = tmp_path / "products.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price_usd", "launchDate", "category", "in_stock",
                         "description", "weight_kg", "units_sold"])
        for i in range(30):
            day = f"20{rng.randint(15, 24)}-0{rng.randint(1, 9)}-2{i % 9}"
            writer.writerow([
                f"SKU-{i:04d}", f"{rng.choice(['Nova', 'Zen', 'Aero'])} {i + 1}",
                f"{rng.uniform(9, 999):.2f}", day,
                rng.choice(["Audio", "Cameras", "Laptops"]), rng.choice(["true", "false"]),
                f"Model {i} is a {rng.choice(['light', 'sturdy', 'quiet'])} device that many "
                f"reviewers praised for battery life, build quality and value, in {2000 + i}.",
                f"{rng.uniform(0.1, 3):.2f}", rng.randint(0, 5000),
            ])
    return path


def test_bundled_tables_without_templates_get_a_key_and_reasons(products_csv):
    configured = load_config(PARIS / "tuneline.yaml", check_paths=False)
    unseen = {s.name for s in configured.ingest.sources} - {
        t.source for t in configured.synthesize.templates}
    assert unseen == {"events", "medals_total"}

    events = _plan(PARIS / "data" / "events.csv")
    assert events.key == ("event",)
    assert list(_by_name(events)) == ["events_sport"]
    assert events.skipped["sport_url"] == "URLs"
    assert events.skipped["tag"].startswith("identifier or code")
    # A letter code is a fact worth asking, but this one only renames the sport.
    assert events.skipped["sport_code"] == "one-to-one with 'sport': the same fact in other words"

    medals = _plan(PARIS / "data" / "medals_total.csv")
    assert medals.key == ("country_code",)
    gold = _by_name(medals)["medals_total_gold_medal"]
    assert gold.key == "{country_code}" and gold.fact == "{Gold Medal}"
    assert "How many gold medals does {country_code} have?" in gold.questions
    assert gold.answer == "{country_code} has a gold medal count of {Gold Medal}."


def test_medallists_get_the_key_that_makes_each_attribute_a_function():
    plan = _plan(PARIS / "data" / "medallists.csv")
    templates = _by_name(plan)
    assert plan.key == ("name",)
    assert templates["medallists_country"].key == "{name}"
    assert templates["medallists_birth_date"].questions[0] == "When was {name} born?"
    # An athlete can win several medals, so the medal needs the event too.
    assert templates["medallists_medal_type"].key == "{name} | {event}"
    assert plan.skipped["nationality"].startswith("repeats 'country'")
    assert plan.skipped["event"] == "part of the key name + event"
    assert plan.skipped["code"].startswith("identifier or code")


@pytest.mark.parametrize("table", ["events", "medals_total", "medallists"])
def test_suggested_templates_render_facts_with_few_ambiguity_drops(table):
    path = PARIS / "data" / f"{table}.csv"
    records = _read(path)
    plan = plan_templates(table, list(records[0].data), [r.data for r in records])
    assert plan.templates
    for template in plan.templates:
        check_columns(template, records[0].data)
        assert template.source == table and template.name.startswith(f"{table}_")
        assert len(template.questions) >= 4 and len(set(template.questions)) == len(
            template.questions)
        assert template.fact in template.answer and template.answer.endswith(".")
        facts, report = facts_from_records(template, records)
        assert facts
        # Only events_sport has an ambiguous key ("Men's Individual" is in several sports).
        limit = 0.2 if template.name == "events_sport" else 0.01
        assert report.skipped.get("ambiguous_key", 0) <= limit * report.rows, template.name
        assert all("{" not in q for q in facts[0].questions)


def test_a_synthetic_table_gets_natural_questions(products_csv):
    records = _read(products_csv)
    plan = plan_templates("products", list(records[0].data), [r.data for r in records])
    templates = _by_name(plan)
    assert plan.key == ("name",)
    assert plan.skipped["sku"].startswith("identifier or code")
    assert plan.skipped["in_stock"].startswith("yes/no flag")
    assert plan.skipped["description"].startswith("long free text")
    assert set(templates) == {"products_price", "products_launch_date", "products_category",
                              "products_weight", "products_units_sold"}
    price = templates["products_price"]
    assert price.questions[0] == "How much does {name} cost?"
    assert price.answer == "The price of {name} is {price_usd} USD."
    assert "When was {name} launched?" in templates["products_launch_date"].questions
    assert "Which category does {name} belong to?" in templates["products_category"].questions
    assert "How heavy is {name}?" in templates["products_weight"].questions
    for template in plan.templates:
        facts, report = facts_from_records(template, records)
        assert len(facts) == 30 and not report.skipped.get("ambiguous_key")
    fact = facts_from_records(price, records)[0][0]
    assert fact.answer.startswith(f"The price of {fact.key} is ") and fact.fact in fact.answer


def test_events_a_thing_does_are_asked_in_the_active_voice():
    rows = [{"name": f"Ruler{chr(65 + i)}son", "start": f"19{50 + i}-01-20",
             "end": f"19{60 + i}-01-20", "death_year": str(1990 + i),
             "launch_date": f"200{i % 10}-03-{10 + i}",
             "construction_start": f"18{50 + i}-05-01"} for i in range(12)]
    templates = _by_name(plan_templates("rulers", list(rows[0]), rows))
    assert templates["rulers_end"].questions[0] == "When did {name} end?"
    assert templates["rulers_end"].answer == "{name} ended on {end}."
    assert "What is the start date of {name}?" in templates["rulers_start"].questions
    assert templates["rulers_death_year"].questions[0] == "In what year did {name} die?"
    assert templates["rulers_death_year"].answer == "{name} died in {death_year}."
    assert "When was {name} launched?" in templates["rulers_launch_date"].questions  # passive
    # a qualified event keeps its qualifier: not "When did {name} start?" for two columns
    assert "When was {name} built?" in templates["rulers_construction_start"].questions


def test_a_composite_key_names_rows_no_single_column_identifies():
    rows = [("Athletics", "Men's 100m", "Noah Lyles"), ("Swimming", "Men's 100m", "Pan Zhanle"),
            ("Badminton", "Men's Singles", "Viktor Axelsen"),
            ("Tennis", "Men's Singles", "Novak Djokovic"),
            ("Badminton", "Women's Singles", "An Se-young"),
            ("Tennis", "Women's Singles", "Zheng Qinwen")] * 2
    data = [dict(zip(("discipline", "event", "winner"), row, strict=True)) for row in rows]
    plan = plan_templates("champions", ["discipline", "event", "winner"], data)
    (template,) = plan.templates
    assert plan.key == ("event", "discipline")
    assert template.key == "{event} | {discipline}" and template.fact == "{winner}"
    assert template.questions[0] == "Who is the winner of {event} ({discipline})?"
    records = [Record("champions", "c.csv", i, row) for i, row in enumerate(data)]
    facts, report = facts_from_records(template, records)
    assert len(facts) == 6 and report.skipped["duplicate_row"] == 6


def test_max_templates_keeps_the_most_useful_and_says_why_others_went():
    plan = _plan(PARIS / "data" / "medallists.csv", max_templates=2)
    assert [t.name for t in plan.templates] == ["medallists_birth_date", "medallists_country"]
    assert plan.skipped["gender"] == "ranked below the top 2"


def test_column_names_become_words_and_units():
    assert humanize("launchDate") == (["launch", "date"], None)
    assert humanize("price_usd") == (["price"], "USD")
    assert humanize("Area (km2)") == (["area"], "km²")
    assert humanize("Gold Medal") == (["gold", "medal"], None)
    assert humanize("dob") == (["date", "of", "birth"], None)


def test_odd_tables_get_reasons_not_errors():
    empty = plan_templates("t", ["a", "b"], [])
    assert not empty.templates and empty.skipped == {"a": "the table has no rows",
                                                     "b": "the table has no rows"}
    rows = [{"id": str(i), "x.y": str(i), "flag": "yes", "note": ""} for i in range(10)]
    odd = plan_templates("t", ["id", "x.y", "flag", "note"], rows)
    assert not odd.templates
    assert odd.skipped["x.y"].startswith("its name cannot be a {placeholder}")
    assert odd.skipped["note"] == "mostly empty (100% blank)"


def test_the_thresholds_table_is_what_the_suggester_reads(monkeypatch):
    rows = [{"name": f"Item {i}", "colour": ["", "blue", "green"][i % 3]} for i in range(30)]
    plan = plan_templates("t", ["name", "colour"], rows)
    assert [t.fact for t in plan.templates] == ["{colour}"]  # a third blank is fine
    with pytest.raises(dataclasses.FrozenInstanceError):
        suggest.THRESHOLDS.max_blank_share = 0.3  # type: ignore[misc]
    stricter = dataclasses.replace(suggest.THRESHOLDS, max_blank_share=0.3)
    monkeypatch.setattr(suggest, "THRESHOLDS", stricter)
    plan = plan_templates("t", ["name", "colour"], rows)
    assert not plan.templates and plan.skipped["colour"] == "mostly empty (33% blank)"


def test_auto_templates_cover_only_tables_no_template_names():
    cfg = load_config(PARIS / "tuneline.yaml")
    tables, records = {}, {}
    for source in cfg.ingest.sources:
        records[source.name] = list(read_csv(source.name, source.path))
        tables[source.name] = {"columns": list(records[source.name][0].data)}
    named = {t.source for t in cfg.synthesize.templates}
    templates = auto_templates_for(tables, records, named, max_templates=3)
    assert {t.source for t in templates} == {"events", "medals_total"}
    assert len(templates) == 4  # events has one attribute worth asking about
    assert SynthesizeConfig().auto_templates is False
    assert SynthesizeConfig(auto_templates=True).auto_templates is True


def _config_without_templates(tmp_path: Path, products_csv: Path) -> Path:
    config = {
        "run": {"name": "suggest", "runs_dir": str(tmp_path / "runs")},
        "ingest": {"sources": [
            {"name": "products", "path": str(products_csv)},
            {"name": "medals_total", "path": str(PARIS / "data" / "medals_total.csv")},
        ]},
    }
    path = tmp_path / "tuneline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_cli_suggest_prints_yaml_that_loads_back_into_a_config(tmp_path, products_csv):
    config = _config_without_templates(tmp_path, products_csv)
    result = CliRunner().invoke(cli, ["synthesize", str(config), "--suggest"])
    assert result.exit_code == 0, result.output
    suggested = yaml.safe_load(result.stdout)
    templates = SynthesizeConfig.model_validate(suggested["synthesize"]).templates
    assert {t.source for t in templates} == {"products", "medals_total"}
    assert result.stdout.startswith("# Templates suggested by `tuneline synthesize")
    assert "Suggested templates" in result.stderr and "sku: identifier" in result.stderr
    merged = yaml.safe_load(config.read_text(encoding="utf-8")) | suggested
    config.write_text(yaml.safe_dump(merged), encoding="utf-8")
    assert len(load_config(config).synthesize.templates) == len(templates)


def test_cli_suggest_writes_output_and_filters_sources(tmp_path, products_csv):
    config = _config_without_templates(tmp_path, products_csv)
    out = tmp_path / "suggested.yaml"
    result = CliRunner().invoke(cli, ["synthesize", str(config), "--suggest", "--source",
                                      "medals_total", "--max", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    templates = yaml.safe_load(out.read_text(encoding="utf-8"))["synthesize"]["templates"]
    assert [t["source"] for t in templates] == ["medals_total", "medals_total"]


def test_cli_suggest_rejects_an_unknown_source_before_ingesting(tmp_path, products_csv):
    config = _config_without_templates(tmp_path, products_csv)
    result = CliRunner().invoke(cli, ["synthesize", str(config), "--suggest", "--source", "nope"])
    assert result.exit_code == 2
    assert "'nope' is not an ingest source" in result.output
    assert "products, medals_total" in result.output
    assert not (tmp_path / "runs").exists()
    plain = CliRunner().invoke(cli, ["synthesize", str(config), "--max", "2"])
    assert plain.exit_code == 2 and "only apply with --suggest" in plain.output


def test_auto_templates_let_a_config_without_templates_synthesize(tmp_path):
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tmp_path)
    data["synthesize"] = {"auto_templates": True}
    synthesized = run_pipeline(PipelineConfig.model_validate(data),
                               until="synthesize").artifacts["synthesize"]
    assert synthesized.manifest["details"]["auto_templates"]
    assert synthesized.manifest["counts"]["facts"] > 0


# Twelve elements with the columns of the table the review tried (#20): the name-origin column
# is unique and its name holds "name", yet its values are prose, never an entity's name.
ELEMENTS = [
    ("1", "H", "Hydrogen", "1.008", "s", "Henry Cavendish", "1766",
     "Greek: hydro (water) and genes (generate)"),
    ("2", "He", "Helium", "4.0026", "s", "Pierre Janssen, Norman Lockyer", "1868",
     "Greek: helios (sun)"),
    ("3", "Li", "Lithium", "6.94", "s", "Johan August Arfwedson", "1817",
     "Greek: lithos (stone)"),
    ("6", "C", "Carbon", "12.011", "p", "Ancient Egyptians", "-3750",
     "Latin: carbo (coal)"),
    ("7", "N", "Nitrogen", "14.007", "p", "Daniel Rutherford", "1772",
     "Greek: nitron and genes (native-soda-forming)"),
    ("8", "O", "Oxygen", "15.999", "p", "Carl Wilhelm Scheele", "1771",
     "Greek: oxy and genes (acid-forming)"),
    ("11", "Na", "Sodium", "22.99", "s", "Humphry Davy", "1807",
     "English (from medieval Latin): soda"),
    ("26", "Fe", "Iron", "55.845", "d", "Ancient Middle East", "-3500",
     "English word (symbol from Latin: ferrum)"),
    ("29", "Cu", "Copper", "63.546", "d", "Middle East", "-9000",
     "English, from Latin cuprum (Cyprus)"),
    ("47", "Ag", "Silver", "107.87", "d", "Ancient Near East", "-5000",
     "English word (symbol from Latin: argentum)"),
    ("79", "Au", "Gold", "196.97", "d", "Ancient Middle East", "-6000",
     "English word (symbol from Latin: aurum)"),
    ("92", "U", "Uranium", "238.03", "f", "Martin Heinrich Klaproth", "1789",
     "After the planet Uranus, itself named after Greek god of the sky"),
]
ELEMENT_COLUMNS = ["atomic_number", "symbol", "name", "atomic_weight", "block", "discoverers",
                   "discovery_year", "name_origin"]


def test_prose_is_never_the_entity_key_even_when_its_column_is_called_a_name():
    data = [dict(zip(ELEMENT_COLUMNS, row, strict=True)) for row in ELEMENTS]
    plan = plan_templates("elements", ELEMENT_COLUMNS, data)
    assert plan.key in (("name",), ("symbol",))

    templates = {t.fact: t for t in plan.templates}
    assert "name_origin" not in plan.key and "{name_origin}" in templates
    # "atomic number" names a number the element carries; it counts nothing
    assert templates["{atomic_number}"].questions[0] == "What is the atomic number of {name}?"
    # a plural column is asked and answered in the plural
    assert templates["{discoverers}"].questions[0] == "Who are the discoverers of {name}?"
    assert templates["{discoverers}"].answer == "The discoverers of {name} are {discoverers}."
