import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tuneline.config import load_config
from tuneline.errors import ConfigError, DataError
from tuneline.ingest import stage as ingest

PARIS = Path(__file__).parents[2] / "examples" / "paris2024" / "data"
ATHLETES = "id,name,country\n1,Ana,FRA\n2,Bo,XXX\n3,Cy,\n4,Di,USA\n"
COUNTRIES = "code,country,gold\nFRA,France,16\nUSA,United States,40\n"


def _config(tmp_path, sources, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "tuneline.yaml"
    path.write_text(yaml.safe_dump({"ingest": {"sources": sources}}, sort_keys=False))
    return path


def _ingest(tmp_path, sources, **files):
    cfg = load_config(_config(tmp_path, sources, **files))
    artifact = ingest.run(cfg, tmp_path / "out", force=True)
    rows = [json.loads(line) for line in (tmp_path / "out" / ingest.RECORDS).open()]
    tables = json.loads((tmp_path / "out" / ingest.TABLES).read_text(encoding="utf-8"))
    return artifact.manifest["counts"], rows, tables


def _athletes(how="left", **join):
    join = {"source": "countries", "on": {"country": "code"}, "how": how, **join}
    return [{"name": "athletes", "path": "athletes.csv", "key": "id", "join": [join]},
            {"name": "countries", "path": "countries.csv"}]


def test_left_join_keeps_unmatched_rows_blank_and_left_provenance(tmp_path):
    counts, rows, tables = _ingest(tmp_path, _athletes("left"), **{
        "athletes.csv": ATHLETES, "countries.csv": COUNTRIES})
    athletes = [r for r in rows if r["source"] == "athletes"]
    # 'country' is on both sides: the brought one is renamed '<source>_country'
    assert [(r["data"]["name"], r["data"]["country"], r["data"]["countries_country"],
             r["data"]["gold"]) for r in athletes] == [
        ("Ana", "FRA", "France", "16"), ("Bo", "XXX", "", ""), ("Cy", "", "", ""),
        ("Di", "USA", "United States", "40")]
    assert [(r["line"], r["key"]) for r in athletes] == [(2, "1"), (3, "2"), (4, "3"), (5, "4")]
    assert athletes[0]["file"] == str(tmp_path / "athletes.csv")
    assert tables["athletes"]["columns"] == ["id", "name", "country", "countries_country", "gold"]
    assert counts == {"rows:athletes": 4, "unmatched:athletes": 2, "rows:countries": 2,
                      "records": 6}


def test_inner_join_drops_and_counts_unmatched_rows(tmp_path):
    counts, rows, _ = _ingest(tmp_path, _athletes("inner", columns=["gold"], prefix="c_"), **{
        "athletes.csv": ATHLETES, "countries.csv": COUNTRIES})
    athletes = [r["data"] for r in rows if r["source"] == "athletes"]
    assert athletes == [{"id": "1", "name": "Ana", "country": "FRA", "c_gold": "16"},
                        {"id": "4", "name": "Di", "country": "USA", "c_gold": "40"}]
    assert (counts["rows:athletes"], counts["unmatched:athletes"], counts["records"]) == (2, 2, 4)


@pytest.mark.parametrize(("join", "message"), [
    ({"on": {"nation": "code"}}, r"athletes\.csv:2: join column 'nation' is not in source "
                                 r"'athletes'"),
    ({"on": {"country": "iso"}}, r"countries\.csv:2: join column 'iso' is not in source "
                                 r"'countries'"),
    ({"columns": ["silver"]}, r"join columns \['silver'\] are not in source 'countries'"),
])
def test_bad_join_columns_are_named(tmp_path, join, message):
    with pytest.raises(DataError, match=message):
        _ingest(tmp_path, _athletes(**join), **{"athletes.csv": ATHLETES,
                                               "countries.csv": COUNTRIES})


def test_duplicate_right_keys_are_refused(tmp_path):
    countries = COUNTRIES + "FRA,France again,1\n"
    with pytest.raises(DataError, match=r"countries\.csv:4: source 'countries' has "
                                        r"code = 'FRA' more than once"):
        _ingest(tmp_path, _athletes(), **{"athletes.csv": ATHLETES, "countries.csv": countries})


def test_composite_keys_chained_joins_and_a_sql_lookup(tmp_path):
    pytest.importorskip("sqlalchemy")
    with sqlite3.connect(tmp_path / "geo.db") as db:
        db.execute("CREATE TABLE continents (country TEXT, continent TEXT)")
        db.executemany("INSERT INTO continents VALUES (?, ?)",
                       [("France", "Europe"), ("United States", "America")])
    sources = [
        {"name": "results", "path": "results.csv",
         "join": [{"source": "athletes", "on": ["first", "last"]}]},
        {"name": "athletes", "path": "people.csv", "join": [
            {"source": "countries", "on": {"country": "code"}, "prefix": "c_", "how": "inner"}]},
        {"name": "countries", "path": "countries.csv",
         "join": [{"source": "geo", "on": "country", "columns": ["continent"]}]},
        {"name": "geo", "url": f"sqlite:///{tmp_path / 'geo.db'}", "table": "continents"},
    ]
    counts, rows, _ = _ingest(tmp_path, sources, **{
        "results.csv": "first,last,rank\nAna,Lee,1\nAna,Kim,2\n",
        "people.csv": "first,last,country\nAna,Lee,FRA\nAna,Kim,USA\nBo,Lee,XXX\n",
        "countries.csv": COUNTRIES})
    results = [r["data"] for r in rows if r["source"] == "results"]
    assert [(r["rank"], r["country"], r["c_country"], r["c_continent"]) for r in results] == [
        ("1", "FRA", "France", "Europe"), ("2", "USA", "United States", "America")]
    assert counts["unmatched:results"] == 0 and counts["unmatched:athletes"] == 1


def test_paris2024_medallists_look_up_their_country_totals(tmp_path):
    def run(how):
        sources = [
            {"name": "medallists", "path": str(PARIS / "medallists.csv"),
             "join": [{"source": "medals_total", "on": "country_code", "how": how}]},
            {"name": "medals_total", "path": str(PARIS / "medals_total.csv")},
        ]
        return _ingest(tmp_path, sources)

    counts, rows, tables = run("left")
    assert tables["medallists"]["columns"][-4:] == [
        "Gold Medal", "Silver Medal", "Bronze Medal", "Total"]
    french = [r for r in rows if r["source"] == "medallists" and
              r["data"]["country_code"] == "FRA"]
    assert french and {r["data"]["Total"] for r in french} == {"54"}
    # five rows of the real file have no country code: kept blank by 'left', dropped by 'inner'
    assert (counts["rows:medallists"], counts["unmatched:medallists"]) == (1486, 5)
    counts, _, _ = run("inner")
    assert (counts["rows:medallists"], counts["unmatched:medallists"]) == (1481, 5)


def test_paris2024_lookup_into_a_many_rows_table_is_refused(tmp_path):
    sources = [
        {"name": "medals_total", "path": str(PARIS / "medals_total.csv"),
         "join": [{"source": "medallists", "on": "country_code"}]},
        {"name": "medallists", "path": str(PARIS / "medallists.csv")},
    ]
    with pytest.raises(DataError, match=r"source 'medallists' has country_code = '\w+' more "
                                        r"than once"):
        _ingest(tmp_path, sources)


def test_join_config_problems_are_reported_with_the_others(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n", encoding="utf-8")
    path = tmp_path / "tuneline.yaml"
    path.write_text(
        "ingest:\n  sources:\n"
        "    - {name: a, path: a.csv, join: [{source: medal_totals, on: x}, {source: b, on: x}]}\n"
        "    - {name: b, path: a.csv, join: [{source: a, on: {x: x}}]}\n"
        "    - {name: c, path: missing.csv, join: [{source: c, on: x}]}\n"
        "    - {name: a, path: a.csv, join: [{source: b, on: ''}]}\n"
        "train: {epochs: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert ("ingest.sources.0.join.0.source: not an ingest source; declared: a, b, c "
            "(got 'medal_totals')") in problems
    assert any(p.startswith("ingest.sources.0.join.1.source: joins go round in a circle "
                            "(a -> b -> a)") for p in problems)
    assert any(p.startswith("ingest.sources.1.join.0.source: joins go round") for p in problems)
    assert any(p.startswith("ingest.sources.2.join.0.source: joins go round in a circle "
                            "(c -> c)") for p in problems)
    assert any(p.startswith("ingest.sources.2.path:") for p in problems)
    assert any(p.startswith("ingest.sources.3.name: ingest.sources.0 already has this name")
               for p in problems)
    assert any(p.startswith("ingest.sources.3.join.0.on:") for p in problems)
    assert any(p.startswith("train.epochs:") for p in problems)
    assert len(problems) == 8
