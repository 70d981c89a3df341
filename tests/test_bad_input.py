"""Bad input through the real stages: one clear error naming the place, and no stage folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tuneline.config import load_config
from tuneline.errors import ConfigError, DataError, TunelineError
from tuneline.pipeline import run_pipeline

GOOD_CSV = "country,capital\nFrance,Paris\nSpain,Madrid\nItaly,Rome\nPeru,Lima\n"
TEMPLATE = {"name": "capital", "source": "t", "key": "{country}", "fact": "{capital}",
            "questions": ["Capital of {country}?", "Which city is the capital of {country}?"],
            "answer": "The capital of {country} is {capital}."}


def _write(path: Path, content: bytes | str) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def _sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE capitals (country TEXT, capital TEXT)")
    return path


# (file name, file content, source overrides, template overrides, error type, message pattern)
CASES = {
    "ragged_row": ("t.csv", "country,capital\nFrance,Paris\nSpain\n", {}, {}, DataError,
                   r"t\.csv:3: expected 2 fields"),
    "undecodable": ("t.csv", b"country,capital\nFrance,Par\xe9s\n", {"encoding": "utf-8"}, {},
                    DataError, r"t\.csv: bytes at offset 26 are not valid utf-8"),
    "empty_file": ("t.csv", b"", {}, {}, DataError, r"t\.csv:1: empty file"),
    "binary_file": ("t.csv", b"PK\x03\x04\x00\x00\x00binary\x00", {}, {}, DataError,
                    r"t\.csv.*binary file"),
    "huge_field": ("t.csv", 'country,capital\nFrance,"' + "x" * (17 * 1024 * 1024) + '"\n', {},
                   {}, DataError, r"t\.csv:\d+: malformed CSV: field larger .*unclosed quote"),
    "unclosed_quote": ("t.csv", 'country,capital\nFrance,"Paris\n', {}, {}, DataError,
                       r"t\.csv:\d+: malformed CSV"),
    "duplicate_header": ("t.csv", "country,country\nFrance,Paris\n", {}, {}, DataError,
                         r"t\.csv:1: column name 'country' appears twice"),
    "empty_header_name": ("t.csv", "country,,x\nFrance,Paris,1\n", {}, {}, DataError,
                          r"t\.csv:1: column 2 has an empty name"),
    "template_column_missing": ("t.csv", GOOD_CSV, {}, {"fact": "{captal}"}, DataError,
                                r"template 'capital': column\(s\) \['captal'\] not in source 't'"),
    "where_column_missing": ("t.csv", GOOD_CSV, {}, {"where": {"region": "Europe"}}, DataError,
                             r"column\(s\) \['region'\] not in source 't'"),
    "template_unknown_source": ("t.csv", GOOD_CSV, {}, {"source": "nope"}, ConfigError,
                                r"synthesize\.templates\.0\.source: 'nope' is not an ingest"),
    "jsonl_bad_line": ("t.jsonl", '{"country": "France", "capital": "Paris"}\n{"country": \n',
                       {}, {}, DataError, r"t\.jsonl:2: invalid JSON"),
    "jsonl_not_object": ("t.jsonl", '{"country": "France", "capital": "Paris"}\n[1, 2]\n', {}, {},
                         DataError, r"t\.jsonl:2: .*object"),
    "json_not_records": ("t.json", '{"country": "France"}', {}, {}, DataError, r"t\.json"),
    "parquet_corrupt": ("t.parquet", b"PAR1 this is not parquet", {}, {}, DataError,
                        r"t\.parquet"),
    "missing_file": ("absent.csv", None, {}, {}, ConfigError,
                     r"ingest\.sources\.0\.path: .*file not found"),
    "unknown_extension": ("t.xlsx", GOOD_CSV, {}, {}, ConfigError, r"cannot tell the format"),
    "sql_unknown_table": ("t.db", "sqlite", {"table": "nope"}, {}, DataError, r"nope"),
    "join_missing_column": ("t.csv", GOOD_CSV, {"join": [{"source": "t2", "on": "code"}]}, {},
                            DataError, r"code"),
    "markdown_undecodable": ("t.md", b"# Title\n\ncaf\xe9 text\n", {"encoding": "utf-8"}, {},
                             DataError, r"t\.md: bytes at offset \d+"),
    "bad_delimiter_guess": ("t.csv", "country;capital\nFrance;Paris\nSpain\n", {}, {},
                            DataError, r"t\.csv:3: expected 2 fields"),
}


def _config(tmp_path: Path, case: str) -> Path:
    name, content, source_extra, template_extra, _, _ = CASES[case]
    if content == "sqlite":
        source = {"name": "t", "url": f"sqlite:///{_sqlite(tmp_path / name)}"}
    else:
        if content is not None:
            _write(tmp_path / name, content)
        source = {"name": "t", "path": name}
    source.update(source_extra)
    sources = [source]
    if "join" in source_extra:
        _write(tmp_path / "t2.csv", "iso,capital_population\nFR,2100000\n")
        sources.append({"name": "t2", "path": "t2.csv"})
    config = {"run": {"runs_dir": str(tmp_path / "runs"), "name": "bad"},
              "ingest": {"sources": sources},
              "synthesize": {"templates": [{**TEMPLATE, **template_extra}]}}
    path = tmp_path / "tuneline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_with_one_clear_error_and_writes_no_stage(tmp_path, case):
    if case == "parquet_corrupt":
        pytest.importorskip("pyarrow")
    if case == "sql_unknown_table":
        pytest.importorskip("sqlalchemy")
    _, _, _, _, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern) as raised:
        cfg = load_config(_config(tmp_path, case))
        run_pipeline(cfg, until="synthesize")
    assert isinstance(raised.value, TunelineError)
    run_dir = tmp_path / "runs" / "bad"
    written = [p.name for p in run_dir.iterdir()] if run_dir.exists() else []
    assert set(written) <= {"config.yaml", "ingest"}, written
    if "ingest" in written:  # a synthesize-time error: ingest finished, synthesize left nothing
        assert json.loads((run_dir / "ingest" / "manifest.json").read_text())["counts"]
    assert not list(tmp_path.rglob("*.tmp")) and not list(run_dir.rglob(".tmp*"))


def test_undecodable_byte_deep_in_a_large_file_is_reported_at_its_file_offset(tmp_path):
    from tuneline.ingest.sources import read_csv

    head = b"country,capital\n" + b"France,Paris\n" * 200_000  # ~2.6 MB, past the 1 MiB chunks
    path = _write(tmp_path / "big.csv", head + b"Spain,Madr\xe9d\n")
    with pytest.raises(DataError, match=rf"big\.csv: bytes at offset {len(head) + 10} "):
        list(read_csv("big", path, encoding="utf-8"))
