import json

import pytest

from tuneline.curate.validate import check_example, validate_file
from tuneline.errors import DataError

GOOD = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Capital of Peru?"},
                     {"role": "assistant", "content": "Lima.", "weight": 1}]}


def _rules(example):
    return [rule for rule, _ in check_example(example)]


def test_a_valid_example_passes():
    assert check_example(GOOD) == []


@pytest.mark.parametrize(
    ("example", "rule"),
    [
        ([1, 2], "data_type"),
        ("text", "data_type"),
        ({}, "missing_messages_list"),
        ({"messages": "hi"}, "missing_messages_list"),
        ({"messages": []}, "empty_messages"),
        ({"messages": ["hi", {"role": "assistant", "content": "x"}]}, "message_not_dict"),
        ({"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]},
         "message_missing_key"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]},
         "message_missing_key"),
        ({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},
         "unrecognized_role"),
        ({"messages": [{"role": "user", "content": "x", "lang": "en"},
                       {"role": "assistant", "content": "y"}]}, "message_unrecognized_key"),
        ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]},
         "missing_content"),
        ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
         "missing_content"),
        ({"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "y"}]},
         "missing_content"),
        ({"messages": [{"role": "user", "content": "x"}]}, "example_missing_assistant_message"),
        ({**GOOD, "id": 7}, "unknown_key"),
        ({"messages": [{"role": "user", "content": "x"},
                       {"role": "assistant", "content": "y", "weight": 0.5}]}, "invalid_weight"),
        ({"messages": [{"role": "user", "content": "x", "weight": 1},
                       {"role": "assistant", "content": "y"}]}, "invalid_weight"),
    ],
)
def test_each_openai_rule(example, rule):
    assert rule in _rules(example)


def test_tool_calls_may_omit_content():
    example = {"messages": [{"role": "user", "content": "weather?"},
                            {"role": "assistant", "tool_calls": [{"id": "1"}]},
                            {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                            {"role": "assistant", "content": "Sunny."}]}
    assert check_example(example) == []


def test_token_limit_uses_the_given_counter():
    rules = check_example(GOOD, count_tokens=lambda msgs: 40, max_tokens=32)
    assert rules == [("token_limit", "40 tokens > limit 32; the example would be truncated")]
    assert check_example(GOOD, count_tokens=lambda msgs: 40, max_tokens=40) == []


def test_file_report_names_lines_and_counts_rules(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), "{oops", "", json.dumps({"messages": []})]) + "\n")
    report = validate_file(path)
    assert report.examples == 3
    assert [p.render("d.jsonl") for p in report.problems] == [
        "d.jsonl:2: invalid_json: Expecting property name enclosed in double quotes at column 2",
        "d.jsonl:4: empty_messages: 'messages' is an empty list",
    ]
    assert report.counts == {"invalid_json": 1, "empty_messages": 1}


@pytest.mark.parametrize(("content", "message"), [
    (b"\x00\x01binary", "looks binary"),
    (b'{"messages": []}\n\xff\xfe', r"d\.jsonl:2: bytes at offset 17 are not valid UTF-8"),
])
def test_unreadable_files_are_data_errors(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        validate_file(path)


def test_empty_file_is_a_problem(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    assert validate_file(path).counts == {"empty_file": 1}
