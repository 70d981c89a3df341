import json
import sqlite3

import pytest

from tuneline.config import load_config
from tuneline.errors import ConfigError, DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.sources import read_source, source_fingerprint


def _source(**kwargs):
    return SourceConfig.model_validate({"name": "t", **kwargs})


def _rows(source):
    return [r.data for r in read_source(source)]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed(tmp_path, delimiter):
    path = tmp_path / "t.csv"
    path.write_text(f"name{delimiter}city\nAna{delimiter}Lima, Peru\n".replace(
        "Lima, Peru", '"Lima, Peru"' if delimiter == "," else "Lima, Peru"), encoding="utf-8")
    assert _rows(_source(path=str(path))) == [{"name": "Ana", "city": "Lima, Peru"}]


def test_tsv_by_extension_and_utf8_bom(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes("\ufeffname\tcity\nZoë\tSão Paulo\n".encode())
    source = _source(path=str(path))
    assert source.format == "tsv"
    assert _rows(source) == [{"name": "Zoë", "city": "São Paulo"}]


def test_non_utf8_encoding_is_detected(tmp_path):
    path = tmp_path / "t.csv"
    text = "nom;ville\n" + "".join(f"Zoé{i};Besançon à l'été\n" for i in range(50))
    path.write_bytes(text.encode("cp1252"))
    rows = _rows(_source(path=str(path)))
    assert rows[0] == {"nom": "Zoé0", "ville": "Besançon à l'été"}


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DataError, match="binary file"):
        list(read_source(_source(path=str(path))))


def test_jsonl_records_keep_line_numbers_and_flatten_values(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1, "b": null}\n\n{"a": 2, "b": {"x": [1]}}\n', encoding="utf-8")
    records = list(read_source(_source(path=str(path))))
    assert [r.line for r in records] == [1, 3]
    assert records[1].data == {"a": "2", "b": '{"x": [1]}'}
    assert records[0].data["b"] == ""


@pytest.mark.parametrize(("content", "message"), [
    ('{"a": 1}\n{"a": \n', r"t\.jsonl:2: invalid JSON"),
    ('{"a": 1}\n[1, 2]\n', r"t\.jsonl:2: expected a JSON object"),
])
def test_bad_jsonl(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        list(read_source(_source(path=str(path))))


def test_json_array_or_wrapped_array(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"meta": {"v": 1}, "rows": [{"a": "x"}, {"a": "y"}]}))
    assert _rows(_source(path=str(path))) == [{"a": "x"}, {"a": "y"}]
    path.write_text(json.dumps({"one": [], "two": []}))
    with pytest.raises(DataError, match="exactly one array; found 2"):
        list(read_source(_source(path=str(path))))
    path.write_text('[{"a": 1},\n {"a": }]')
    with pytest.raises(DataError, match=r"t\.json:2: invalid JSON"):
        list(read_source(_source(path=str(path))))


def test_key_column_becomes_provenance(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,name\nA7,Ana\n", encoding="utf-8")
    (record,) = read_source(_source(path=str(path), key="id"))
    assert record.key == "A7" and record.line == 2
    with pytest.raises(DataError, match="key column 'code' of source 't' is missing"):
        list(read_source(_source(path=str(path), key="code")))


@pytest.fixture
def sqlite_db(tmp_path):
    pytest.importorskip("sqlalchemy")
    path = tmp_path / "olympics.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE medals (code TEXT, country TEXT, gold INTEGER)")
        db.executemany("INSERT INTO medals VALUES (?, ?, ?)",
                       [("USA", "United States", 40), ("CHN", "China", 40), ("FRA", "France", 16)])
    return path


def test_sqlite_table_and_query(sqlite_db):
    url = f"sqlite:///{sqlite_db}"
    rows = _rows(_source(url=url, table="medals"))
    assert rows[2] == {"code": "FRA", "country": "France", "gold": "16"}
    records = list(read_source(_source(url=url, query="SELECT code, gold FROM medals "
                                                      "WHERE gold >= 40 ORDER BY code",
                                       key="code")))
    assert [(r.key, r.line) for r in records] == [("CHN", 1), ("USA", 2)]
    assert "olympics.db (query)" in records[0].file


def test_sql_fingerprint_follows_the_data(sqlite_db):
    source = _source(url=f"sqlite:///{sqlite_db}", table="medals")
    before = source_fingerprint(source)
    assert source_fingerprint(source) == before
    with sqlite3.connect(sqlite_db) as db:
        db.execute("UPDATE medals SET gold = 17 WHERE code = 'FRA'")
    assert source_fingerprint(source) != before


def test_sql_errors_name_the_source_and_hide_passwords(sqlite_db, monkeypatch):
    with pytest.raises(DataError, match=r"source 't' .*no such table: nope"):
        list(read_source(_source(url=f"sqlite:///{sqlite_db}", table="nope")))
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    with pytest.raises(DataError) as caught:
        list(read_source(_source(url="postgresql+psycopg://u:${DB_PASSWORD}@127.0.0.1:1/db",
                                 table="x")))
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    monkeypatch.delenv("DB_PASSWORD")
    with pytest.raises(DataError, match=r"\$\{DB_PASSWORD\} but that environment variable"):
        list(read_source(_source(url="sqlite:///${DB_PASSWORD}.db", table="x")))


@pytest.mark.parametrize(("source", "message"), [
    ({"name": "t"}, "needs `path`"),
    ({"name": "t", "url": "sqlite://"}, "exactly one of `query` or `table`"),
    ({"name": "t", "url": "sqlite://", "table": "a", "query": "b"}, "exactly one"),
    ({"name": "t", "format": "sql", "table": "a"}, "needs a `url`"),
    ({"name": "t", "path": "data.xlsx"}, "cannot tell the format of 'data.xlsx'"),
])
def test_source_config_problems(tmp_path, source, message):
    if "path" in source:
        (tmp_path / source["path"]).write_bytes(b"x")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"ingest": {"sources": [source]}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_parquet_rows_stream_with_row_numbers(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table({"code": ["USA", "FRA"], "gold": [40, 16], "note": [None, "host"]})
    pq.write_table(table, path)
    records = list(read_source(_source(path=str(path), key="code")))
    assert [r.data for r in records] == [{"code": "USA", "gold": "40", "note": ""},
                                         {"code": "FRA", "gold": "16", "note": "host"}]
    assert [(r.line, r.key) for r in records] == [(1, "USA"), (2, "FRA")]
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"t\.parquet: not a readable Parquet file"):
        list(read_source(_source(path=str(path))))


def test_utf8_check_spans_chunk_boundaries(tmp_path):
    from tuneline.ingest.records import resolve_encoding

    path = tmp_path / "big.csv"
    path.write_bytes(("a\n" + "é€\n" * 400_000).encode("utf-8"))  # multi-byte chars cross 1 MiB
    assert resolve_encoding(path, "auto") == "utf-8-sig"
    path.write_bytes(("a\n" + "é€\n" * 400_000).encode("utf-8") + b"\xff\n")
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 2400002\)"):
        resolve_encoding(path, "auto")


def test_whole_floats_read_as_integers_and_nan_as_blank(tmp_path):
    """A year column stored as floats because one year is missing (what pandas writes) reads
    as years, not '1766.0'; the missing one is blank, not 'nan'."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "elements.parquet"
    pq.write_table(pa.table({"name": ["Hydrogen", "Carbon", "Iron"],
                             "year": [1766.0, float("nan"), -3500.0],
                             "weight": [1.008, 12.0, 55.845]}), path)
    rows = [r.data for r in read_source(_source(path=str(path), key="name"))]
    assert [r["year"] for r in rows] == ["1766", "", "-3500"]
    assert [r["weight"] for r in rows] == ["1.008", "12", "55.845"]
    jsonl = tmp_path / "elements.jsonl"
    jsonl.write_text('{"name": "Hydrogen", "year": 1766.0}\n{"name": "Gold", "year": NaN}\n')
    assert [r.data["year"] for r in read_source(_source(path=str(jsonl), key="name"))] == [
        "1766", ""]
