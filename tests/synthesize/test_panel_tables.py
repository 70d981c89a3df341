"""`tuneline init` + synthesize on excerpts of real public tables (tests/synthesize/panel/):
the key a person would choose, no float-rendered integers, every placeholder a real column,
every question names its entity."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tuneline.cli.main import cli
from tuneline.config import load_config

PANEL = Path(__file__).parent / "panel"
KEYS = {"starwars": {"{name}"}, "us_states": {"{name}"},
        "gapminder": {"{country} | {year}"}, "countries": {"{name}"}}
FLOAT_INTEGER = re.compile(r"\b\d+\.0\b")


@pytest.mark.parametrize("table", sorted(KEYS))
def test_init_and_synthesize_read_a_public_table_as_a_person_would(tmp_path, monkeypatch,
                                                                    table):
    data = PANEL / f"{table}.csv"
    with data.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    # Columns of whole numbers, however the file writes them (1850.0): never rendered 1850.0.
    whole = {c for c in columns
             if all(re.fullmatch(r"\d+(\.0+)?", r[c]) for r in rows if r[c])
             and any(r[c] for r in rows)}
    config = tmp_path / "tuneline.yaml"
    made = CliRunner().invoke(cli, ["init", str(data), "-o", str(config), "--name", table])
    assert made.exit_code == 0, made.output
    cfg = load_config(config)
    assert {t.key for t in cfg.synthesize.templates} == KEYS[table]
    for template in cfg.synthesize.templates:
        texts = [*template.questions, template.answer, template.fact, template.key or ""]
        assert set(re.findall(r"{(\w+)}", " ".join(texts))) <= columns

    monkeypatch.chdir(tmp_path)
    synthesized = CliRunner().invoke(cli, ["synthesize", str(config),
                                           f"run.runs_dir={tmp_path / 'runs'}"])
    assert synthesized.exit_code == 0, synthesized.output
    facts = [json.loads(line) for line in (tmp_path / "runs" / table / "synthesize"
                                           / "facts.jsonl").read_text().splitlines()]
    asked = [f for f in facts if f["kind"] == "qa"]
    assert len(asked) >= 10
    fact_column = {t.name: t.fact.strip("{}") for t in cfg.synthesize.templates}
    assert any(fact_column[f["template"]] in whole for f in asked) or table == "countries"
    for fact in asked:
        if fact_column[fact["template"]] in whole:
            assert not FLOAT_INTEGER.search(fact["answer"] + " " + fact["fact"]), fact
        assert not any(FLOAT_INTEGER.fullmatch(value) for value in fact["entity"]), fact
        for question in fact["questions"]:
            assert all(value in question for value in fact["entity"]), (question, fact)
