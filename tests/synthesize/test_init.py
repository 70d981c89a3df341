"""`tuneline init`: a config for tables nobody configured, which loads and synthesizes as is."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_suggest import ELEMENT_COLUMNS, ELEMENTS

from tuneline.cli.main import cli
from tuneline.config import load_config


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _init(*args: str):
    return CliRunner().invoke(cli, ["init", *args])


def test_init_writes_a_config_that_loads_and_synthesizes_with_no_edits(tmp_path, monkeypatch):
    data = _write_csv(tmp_path / "data" / "elements.csv", ELEMENT_COLUMNS, ELEMENTS)
    config = tmp_path / "project" / "tuneline.yaml"
    result = _init(str(data), "-o", str(config))
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert "path: ../data/elements.csv" in text  # relative to the config, as the loader reads
    cfg = load_config(config)
    assert cfg.ingest.sources[0].path.resolve() == data.resolve()
    columns = set(ELEMENT_COLUMNS)
    for template in cfg.synthesize.templates:
        assert template.key == "{name}"  # never the prose column
        placeholders = set(re.findall(r"{(\w+)}", " ".join(
            [*template.questions, template.answer, template.fact])))
        assert placeholders <= columns and "name" in placeholders
    (passage,) = cfg.index.templates.values()
    assert passage.startswith("{name}: ")
    assert cfg.index.match_fields == {"elements": ["name"]}
    assert "left out to keep the run short" in text
    assert cfg.run.budget_minutes == 10  # sized to the machine it runs on

    monkeypatch.chdir(tmp_path)
    synthesized = CliRunner().invoke(cli, ["synthesize", str(config),
                                           f"run.runs_dir={tmp_path / 'runs'}"])
    assert synthesized.exit_code == 0, synthesized.output
    questions = (tmp_path / "runs" / "elements" / "synthesize" / "facts.jsonl").read_text()
    assert "What is the atomic number of Hydrogen?" in questions


@pytest.mark.parametrize(("header", "rows", "expected"), [
    (["name", "symbol"], [], "the table is empty"),
    (["name"], [("Hydrogen",), ("Helium",)], "one column only"),
    (["value", "other"], [("1", "1"), ("1", "1"), ("1", "1")], "init found nothing to ask"),
])
def test_bad_tables_get_a_clear_message_and_no_config(tmp_path, header, rows, expected):
    data = _write_csv(tmp_path / "t.csv", header, rows)
    result = _init(str(data), "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code != 0 and expected in str(result.exception or result.output)
    assert not (tmp_path / "out.yaml").exists()


def test_unknown_format_and_existing_output_are_refused(tmp_path):
    (tmp_path / "notes.docx").write_text("x")
    result = _init(str(tmp_path / "notes.docx"), "-o", str(tmp_path / "out.yaml"))
    assert "unknown format '.docx'" in str(result.exception)
    assert not (tmp_path / "out.yaml").exists()
    data = _write_csv(tmp_path / "e.csv", ELEMENT_COLUMNS, ELEMENTS)
    (tmp_path / "out.yaml").write_text("mine")
    result = _init(str(data), "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code != 0 and "--force" in result.output
    assert (tmp_path / "out.yaml").read_text() == "mine"
