"""A CSV column of whole numbers written as floats (pandas' integer column with a gap) is read
as integers; a column of real decimals, or of floats mixed with text, is left as written."""

from __future__ import annotations

from tuneline.ingest.sources import read_csv


def test_whole_float_columns_read_as_integers_and_others_as_written(tmp_path):
    path = tmp_path / "states.csv"
    path.write_text("name,statehood_year,area,version\n"
                    "California,1850.0,423967.5,2.0\n"
                    "Guam,,549.0,beta\n"
                    "Texas,1845.0,695662.0,3.0\n", encoding="utf-8")
    rows = [r.data for r in read_csv("states", path)]
    assert [r["statehood_year"] for r in rows] == ["1850", "", "1845"]
    assert [r["area"] for r in rows] == ["423967.5", "549.0", "695662.0"]  # real decimals
    assert [r["version"] for r in rows] == ["2.0", "beta", "3.0"]  # not all numbers
    assert [r.line for r in read_csv("states", path)] == [2, 3, 4]  # provenance kept
