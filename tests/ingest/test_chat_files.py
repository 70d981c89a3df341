"""Conversation files: every supported shape reads to the same OpenAI messages; malformed
records get a located error and nothing is ingested."""

from __future__ import annotations

import json

import pytest

from tuneline.errors import DataError
from tuneline.ingest.chat_files import MESSAGES
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.sources import read_source

EXCHANGE = [{"role": "user", "content": "How do I reset it?"},
            {"role": "assistant", "content": "Hold RESET for 15 seconds."}]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path, **kwargs):
    source = SourceConfig.model_validate({"name": "chats", "path": str(path), "format": "chat",
                                          **kwargs})
    return list(read_source(source))


def _messages(records):
    return [json.loads(r.data[MESSAGES]) for r in records]


@pytest.mark.parametrize("row", [
    {"messages": EXCHANGE},
    {"conversations": [{"from": "human", "value": "How do I reset it?"},
                       {"from": "gpt", "value": "Hold RESET for 15 seconds."}]},
    {"instruction": "How do I reset it?", "input": "", "output": "Hold RESET for 15 seconds."},
    {"prompt": "How do I reset it?", "completion": "Hold RESET for 15 seconds."},
    {"prompt": [EXCHANGE[0]], "completion": [EXCHANGE[1]]},
], ids=["openai", "sharegpt", "alpaca", "prompt_completion", "conversational_prompt_completion"])
def test_every_shape_reads_to_openai_messages(tmp_path, row):
    records = _read(_write_jsonl(tmp_path / "c.jsonl", [row, row]))
    assert _messages(records) == [EXCHANGE, EXCHANGE]
    assert [r.line for r in records] == [1, 2]


def test_alpaca_input_and_sharegpt_system_are_kept(tmp_path):
    alpaca = _read(_write_jsonl(tmp_path / "a.jsonl", [
        {"instruction": "Translate.", "input": "bonjour", "output": "hello",
         "system": "Be brief."}]))
    assert _messages(alpaca)[0] == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Translate.\n\nbonjour"},
                                    {"role": "assistant", "content": "hello"}]
    share = _read(_write_jsonl(tmp_path / "s.jsonl", [
        {"system": "Be brief.", "conversations": [{"from": "human", "value": "hi"},
                                                  {"from": "gpt", "value": "hello"}]}]))
    assert _messages(share)[0][0] == {"role": "system", "content": "Be brief."}


def test_json_array_and_id_column_become_the_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"id": "t-7", "messages": EXCHANGE}]), encoding="utf-8")
    [record] = _read(path)
    assert record.key == "t-7" and _messages([record]) == [EXCHANGE]


def test_saved_hugging_face_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    datasets.Dataset.from_list([{"messages": EXCHANGE}] * 3).save_to_disk(str(folder))
    records = _read(folder)
    assert _messages(records) == [EXCHANGE] * 3


def test_a_plain_folder_is_not_a_saved_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="save_to_disk"):
        _read(tmp_path / "folder")


@pytest.mark.parametrize(("row", "message"), [
    ({"messages": [EXCHANGE[1], EXCHANGE[0]]}, "message 1 is 'assistant' where 'user'"),
    ({"messages": [{"role": "user", "content": "  "}, EXCHANGE[1]]}, "message 1 .user. is empty"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "unknown role 'bot'"),
    ({"messages": [EXCHANGE[0]]}, "no assistant turn"),
    ({"messages": [*EXCHANGE, {"role": "user", "content": "and?"}]}, "last turn is the user's"),
    ({"messages": [EXCHANGE[0], {"role": "system", "content": "x"}, EXCHANGE[1]]},
     "system message after"),
    ({"conversations": [{"from": "robot", "value": "x"}]}, "unknown speaker 'robot'"),
    ({"instruction": "x", "output": None}, "output must be text"),
    ({"question": "x", "answer": "y"}, "not a conversation record"),
], ids=["role_order", "empty", "unknown_role", "no_assistant", "ends_with_user",
        "late_system", "sharegpt_speaker", "alpaca_null", "unknown_shape"])
def test_malformed_record_is_located(tmp_path, row, message):
    path = tmp_path / "c.jsonl"
    path.write_text("\n" + json.dumps(row) + "\n", encoding="utf-8")  # the record is line 2
    with pytest.raises(DataError, match=rf"c\.jsonl:2: .*{message}"):
        _read(path)


def test_two_formats_in_one_file_are_refused(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [
        {"messages": EXCHANGE}, {"prompt": "a", "completion": "b"}])
    with pytest.raises(DataError, match=r"c\.jsonl:2: a prompt/completion record.*line 1 is "
                                        r"an OpenAI chat record.*one format per file"):
        _read(path)


def test_every_problem_is_reported_and_nothing_is_ingested(tmp_path):
    from tuneline.config import PipelineConfig
    from tuneline.ingest import stage as ingest

    bad = {"messages": [EXCHANGE[1]]}
    path = _write_jsonl(tmp_path / "c.jsonl", [bad, {"messages": EXCHANGE}, bad])
    cfg = PipelineConfig.model_validate({
        "run": {"name": "r", "runs_dir": str(tmp_path / "runs")},
        "ingest": {"sources": [{"name": "chats", "path": str(path), "format": "chat"}]}})
    with pytest.raises(DataError, match=r"2 malformed conversation record\(s\)") as caught:
        ingest.run(cfg, tmp_path / "runs" / "r" / "ingest")
    assert "c.jsonl:1:" in str(caught.value) and "c.jsonl:3:" in str(caught.value)
    assert not (tmp_path / "runs" / "r" / "ingest" / "records.jsonl").exists()


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": EXCHANGE}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.jsonl:2: invalid JSON"):
        _read(path)
