"""Ingest from a real PostgreSQL server holding the Paris 2024 tables (started per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[2] / "examples" / "paris2024" / "data"


@pytest.fixture(scope="session")
def paris_db(postgres_url):
    import csv

    import psycopg

    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        for table in ("medallists", "medals_total"):
            with (DATA / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
                columns = next(csv.reader(handle))
                handle.seek(0)
                ddl = ", ".join(f'"{c}" text' for c in columns)
                conn.execute(f"CREATE TABLE {table} ({ddl})")
                with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv, "
                                        "HEADER true)") as copy:
                    copy.write(handle.read())
    return postgres_url


def _config(tmp_path, sources):
    import json

    from tuneline.config import load_config

    return load_config(None, [f"run.runs_dir={tmp_path}", f"ingest.sources={json.dumps(sources)}"])


def test_ingest_from_postgres_matches_the_csv(paris_db, tmp_path):
    from tuneline.ingest import stage as ingest

    from_db = ingest.run(_config(tmp_path / "db", [
        {"name": "medallists", "url": paris_db, "table": "medallists", "key": "code"}]),
        tmp_path / "db" / "ingest")
    from_csv = ingest.run(_config(tmp_path / "csv", [
        {"name": "medallists", "path": str(DATA / "medallists.csv"), "key": "code"}]),
        tmp_path / "csv" / "ingest")
    assert from_db.manifest["counts"]["records"] == from_csv.manifest["counts"]["records"] == 1486
    db_rows = (from_db.path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert "tuneline@127.0.0.1" in db_rows[0] and "***" not in db_rows[0]
    again = ingest.run(_config(tmp_path / "db", [
        {"name": "medallists", "url": paris_db, "table": "medallists", "key": "code"}]),
        tmp_path / "db" / "ingest")
    assert again.skipped


def test_a_join_query_feeds_templates(paris_db, tmp_path):
    from tuneline.artifacts import read_jsonl
    from tuneline.ingest import stage as ingest

    query = ('SELECT m.name, m.country, t."Gold Medal" AS country_golds FROM medallists m '
             "JOIN medals_total t ON t.country_code = m.country_code "
             "WHERE m.medal_type = 'Gold Medal' ORDER BY m.name LIMIT 5")
    artifact = ingest.run(_config(tmp_path, [{"name": "golds", "url": paris_db, "query": query}]),
                          tmp_path / "ingest")
    rows = read_jsonl(artifact.path / "records.jsonl")
    assert len(rows) == 5
    assert set(rows[0]["data"]) == {"name", "country", "country_golds"}
    assert all(r["data"]["country_golds"].isdigit() for r in rows)
