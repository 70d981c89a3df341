import json
import threading

import pytest
import yaml
from click.testing import CliRunner

from tuneline.cli.main import cli
from tuneline.config import load_config
from tuneline.curate.validate import validate_file
from tuneline.errors import DataError
from tuneline.serve.feedback import FeedbackStore, ResponseLog, feedback_db_path

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}]


def _response(response_id, completion="Paris.", model="m"):
    return {"response_id": response_id, "model": model, "messages": PROMPT,
            "completion": completion}


def test_response_log_evicts_least_recently_used():
    log = ResponseLog(capacity=2)
    log.remember("a", "m", PROMPT, "A")
    log.remember("b", "m", PROMPT, "B")
    assert log.get("a")["completion"] == "A"  # touching "a" makes "b" the oldest
    log.remember("c", "m", PROMPT, "C")
    assert log.get("b") is None
    assert log.get("a") is not None and log.get("c") is not None
    assert len(log) == 2


def test_response_log_returns_copies():
    log = ResponseLog()
    messages = [dict(m) for m in PROMPT]
    log.remember("a", "m", messages, "A")
    messages[0]["content"] = "changed"
    log.get("a")["messages"][1]["content"] = "changed too"
    assert log.get("a")["messages"] == PROMPT


def test_add_rows_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "sub" / "fb.db")
    first = store.add("chatcmpl-1", 5, "great", _response("chatcmpl-1"), key_name="alice")
    second = store.add("chatcmpl-2", 2, None, None)
    assert first.startswith("fb-") and first != second
    assert store.count() == 2
    rows = store.rows()
    assert [r["id"] for r in rows] == [first, second]
    assert rows[0] | {"created": None} == {
        "id": first, "created": None, "response_id": "chatcmpl-1", "rating": 5,
        "comment": "great", "key_name": "alice", "model": "m", "messages": PROMPT,
        "completion": "Paris.", "has_text": True, "correction": None}
    assert rows[1]["has_text"] is False and rows[1]["messages"] is None
    assert [r["id"] for r in store.rows(limit=1)] == [second]
    reopened = FeedbackStore(tmp_path / "sub" / "fb.db")
    assert reopened.count() == 2  # a second handle on the same file


def test_store_uses_wal(tmp_path):
    import sqlite3

    store = FeedbackStore(tmp_path / "fb.db")
    store.count()
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize("rating", [0, 6, 4.5, True, "5"])
def test_bad_rating_is_refused(tmp_path, rating):
    with pytest.raises(DataError, match="1 to 5"):
        FeedbackStore(tmp_path / "fb.db").add("r", rating, None, None)


def test_concurrent_adds_are_all_stored(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    ids: list[str] = []

    def worker(n):
        for i in range(25):
            ids.append(store.add(f"r-{n}-{i}", 1 + i % 5, None, _response(f"r-{n}-{i}")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 200
    assert sorted(r["id"] for r in store.rows()) == sorted(ids)


def _filled_store(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    store.add("r1", 5, None, _response("r1", "Paris."))
    store.add("r2", 2, "wrong", _response("r2", "Lyon."))
    store.add("r3", 5, None, None)  # response unknown: no text to export
    store.add("r4", 3, None, _response("r4", "Maybe Paris."))
    store.add("r4", 4, "on reflection", _response("r4", "Maybe Paris."))  # latest wins
    store.add("r5", 5, None, _response("r5", "Nice."))
    store.add("r5", 1, None, _response("r5", "Nice."))  # latest wins, now too low
    store.add("r6", 5, None, _response("r6", "   "))  # would fail validation
    return store


def test_export_filters_and_dedups(tmp_path):
    out = tmp_path / "out" / "feedback.jsonl"
    counts = _filled_store(tmp_path).export(out, min_rating=4)
    assert counts == {"written": 2, "corrected": 0, "skipped_low_rating": 2,
                      "skipped_no_text": 1, "skipped_invalid": 1}
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["messages"][-1] for e in examples] == [
        {"role": "assistant", "content": "Paris."},
        {"role": "assistant", "content": "Maybe Paris."}]
    assert examples[0]["messages"][:-1] == PROMPT


def test_a_correction_is_trained_instead_of_the_answer_whatever_the_rating(tmp_path):
    store = _filled_store(tmp_path)
    store.add("r2", 1, "it is Paris", _response("r2", "Lyon."), correction="Paris.")
    examples, counts = store.examples()
    assert counts["written"] == 3 and counts["corrected"] == 1
    assert {"role": "assistant", "content": "Paris."} in [e["messages"][-1] for e in examples]
    assert all(e["messages"][-1]["content"] != "Lyon." for e in examples)


def test_a_store_written_before_corrections_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE feedback (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT "
                     "NOT NULL UNIQUE, created TEXT NOT NULL, response_id TEXT NOT NULL, "
                     "rating INTEGER NOT NULL, comment TEXT, key_name TEXT, model TEXT, "
                     "messages TEXT, completion TEXT, has_text INTEGER NOT NULL)")
        conn.execute("INSERT INTO feedback (id, created, response_id, rating, has_text, "
                     "messages, completion) VALUES ('fb-1', '2026-12-01', 'r0', 5, 1, ?, "
                     "'Madrid.')", (json.dumps(PROMPT),))
    store = FeedbackStore(path)
    store.add("r1", 2, None, _response("r1", "Lyon."), correction="Paris.")
    answers = [e["messages"][-1]["content"] for e in store.examples()[0]]
    assert answers == ["Madrid.", "Paris."]


def test_export_passes_the_validator(tmp_path):
    store = _filled_store(tmp_path)
    extra = dict(_response("r7"), messages=[{"role": "user", "content": "Hi", "x-extra": 1}])
    store.add("r7", 5, None, extra)
    out = tmp_path / "feedback.jsonl"
    assert store.export(out)["written"] == 3
    report = validate_file(out)
    assert report.ok, report.problems
    assert report.examples == 3


def test_export_with_nothing_to_write_leaves_no_file(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    store.add("r1", 1, None, _response("r1"))
    out = tmp_path / "feedback.jsonl"
    assert store.export(out)["written"] == 0
    assert not out.exists()


@pytest.mark.parametrize("existing", [None, "old content\n"])
def test_export_is_atomic(tmp_path, monkeypatch, existing):
    import tuneline.artifacts

    out = tmp_path / "exports" / "feedback.jsonl"
    out.parent.mkdir()
    if existing is not None:
        out.write_text(existing)
    store = _filled_store(tmp_path)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tuneline.artifacts.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.export(out)
    if existing is None:
        assert not out.exists()
    else:
        assert out.read_text() == existing
    assert [p.name for p in out.parent.iterdir()] == ([] if existing is None else [out.name])


def test_db_path_default_and_override(tmp_path):
    cfg = load_config(None, [f"run.runs_dir={tmp_path}", "run.name=demo"])
    assert feedback_db_path(cfg) == tmp_path / "demo" / "feedback.db"
    cfg = load_config(None, [f"serve.feedback_path={tmp_path / 'x.db'}"])
    assert feedback_db_path(cfg) == tmp_path / "x.db"


def _config(tmp_path):
    path = tmp_path / "tuneline.yaml"
    path.write_text(yaml.safe_dump({"run": {"name": "demo", "runs_dir": str(tmp_path / "runs")}}),
                    encoding="utf-8")
    return path


def test_cli_export_and_list(tmp_path):
    config = _config(tmp_path)
    store = FeedbackStore(tmp_path / "runs" / "demo" / "feedback.db")
    store.add("r1", 5, "spot on", _response("r1"))
    store.add("r2", 3, None, _response("r2", "Lyon."))
    out = tmp_path / "feedback.jsonl"
    runner = CliRunner()
    result = runner.invoke(cli, ["feedback", "export", str(config), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 examples" in result.output and "1 rated below 4" in result.output
    assert validate_file(out).ok
    result = runner.invoke(cli, ["feedback", "export", str(config), "-o", str(out),
                                 "--min-rating", "3"])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 2
    result = runner.invoke(cli, ["feedback", "list", str(config), "--last", "1"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "r2" in result.output and "spot on" not in result.output
    assert "2 ratings" in result.output


def test_cli_export_nothing_qualifies_fails(tmp_path):
    config = _config(tmp_path)
    FeedbackStore(tmp_path / "runs" / "demo" / "feedback.db").add("r1", 1, None, None)
    out = tmp_path / "feedback.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", str(config), "--output", str(out)])
    assert result.exit_code == 1
    assert "nothing to export" in result.output and not out.exists()


def test_cli_missing_store_names_the_path(tmp_path):
    config = _config(tmp_path)
    result = CliRunner().invoke(cli, ["feedback", "export", str(config), "--output",
                                           str(tmp_path / "o.jsonl")])
    assert isinstance(result.exception, DataError)
    assert str(tmp_path / "runs" / "demo" / "feedback.db") in str(result.exception)
    assert not (tmp_path / "runs" / "demo" / "feedback.db").exists()
