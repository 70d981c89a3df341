"""The one reader of evaluate's metrics.json: typed results, and errors naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneline.errors import DataError
from tuneline.report.results import (
    EvalResults,
    JudgeScores,
    SetScores,
    parse_results,
    read_results,
)

SUMMARY = {"accuracy": 0.5, "exact_match": 0.25, "token_f1": 0.4, "hallucination_rate": 0.125,
           "abstention_rate": 0.0, "mean_answer_words": 7, "n": 8,
           "ci95": {"accuracy": [0.25, 0.75], "token_f1": [0.3, 0.5]},
           "by_category": {"athlete_country": {"accuracy": 1.0, "n": 2}}}
METRICS = {
    "base": {"recall": {"accuracy": 0.125, "n": 8}, "general": {"accuracy": 0.9, "n": 10}},
    "tuned": {"recall": SUMMARY, "heldout": {"accuracy": 0.2, "n": 5}},
    "retrieval": {"heldout": {"k": 5, "n": 5, "no_passage": 0.2, "recall_at_k": 0.8, "mrr": 0.7,
                              "ci95": {"recall_at_k": [0.4, 1.0], "mrr": [0.3, 1.0]}},
                  "unanswerable": {"k": 5, "n": 3, "no_passage": 1.0}},
    "judge": {"win_rate": 0.6, "ci95": [0.4, 0.8], "wins": 5, "losses": 3, "ties": 2,
              "invalid": 0, "n": 10, "challenger": "tuned", "champion": "champion",
              "judge_model": "judge-7b", "base_url": "http://127.0.0.1:8000/v1"},
}


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_reads_every_part_of_metrics_json(tmp_path: Path) -> None:
    results = read_results(_write(tmp_path / "metrics.json", METRICS))
    assert list(results.variants) == ["base", "tuned"]  # judge and retrieval are not variants
    assert results.sets == ["recall", "general", "heldout"]  # in the order first listed
    tuned = results.scores("tuned", "recall")
    assert isinstance(tuned, SetScores)
    assert (tuned.accuracy, tuned.n, tuned.mean_answer_words) == (0.5, 8, 7.0)
    assert tuned.ci95 == {"accuracy": (0.25, 0.75), "token_f1": (0.3, 0.5)}
    assert tuned.rate("hallucination_rate") == 0.125 and tuned.rate("n") is None
    assert tuned.by_category["athlete_country"].accuracy == 1.0
    assert results.scores("base", "heldout") is None
    assert results.scores("champion", "recall") is None
    assert results.retrieval["heldout"].recall_at_k == 0.8
    unanswerable = results.retrieval["unanswerable"]
    assert (unanswerable.no_passage, unanswerable.recall_at_k, unanswerable.ci95) == (1.0, None, {})
    assert results.judge == JudgeScores(**{**METRICS["judge"], "ci95": (0.4, 0.8)})


def test_the_evaluate_folder_is_read_too(tmp_path: Path) -> None:
    _write(tmp_path / "evaluate" / "metrics.json", METRICS)
    assert read_results(tmp_path / "evaluate") == read_results(tmp_path / "evaluate/metrics.json")


def test_absent_parts_are_none_or_empty() -> None:
    results = parse_results({"tuned": {"recall": {"accuracy": 0.5}}})
    scores = results.scores("tuned", "recall")
    assert scores is not None and scores.n is None and scores.token_f1 is None
    assert scores.ci95 == {} and scores.by_category == {}
    assert results.retrieval == {} and results.judge is None
    assert parse_results({}) == EvalResults()
    # A judge without a valid verdict has no win rate and no interval.
    judge = parse_results({"judge": {"win_rate": None, "ci95": None, "invalid": 4, "n": 4}}).judge
    assert judge is not None and judge.win_rate is None and judge.invalid == 4
    assert (judge.challenger, judge.champion) == ("tuned", "base")


def test_a_rate_reported_with_its_interval_reads_as_its_value() -> None:
    results = parse_results({"tuned": {"recall": {"accuracy": {"value": 0.9, "ci": [0.8, 1.0]}}}})
    assert results.scores("tuned", "recall").accuracy == 0.9  # type: ignore[union-attr]


def test_unknown_keys_are_ignored() -> None:
    results = parse_results({"tuned": {"recall": {"accuracy": 0.5, "median_words": 3}}})
    assert results.scores("tuned", "recall") == SetScores(accuracy=0.5)


def test_results_are_frozen() -> None:
    scores = SetScores(accuracy=0.5)
    with pytest.raises(ValueError, match="frozen"):
        scores.accuracy = 1.0  # type: ignore[misc]


def test_a_missing_file_says_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"metrics\.json: no such file; run `tuneline evaluate`"):
        read_results(tmp_path / "evaluate")


def test_broken_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"tuned": {"recall":\n  {"accuracy": 0.5,}}}', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:2:\d+: not valid JSON"):
        read_results(path)


def test_every_malformed_field_is_named_with_its_path(tmp_path: Path) -> None:
    bad = {"tuned": {"recall": {"accuracy": "0.5", "n": True, "ci95": {"accuracy": [0.1]},
                                "by_category": {"x": {"token_f1": [1]}}},
                     "heldout": 3},
           "retrieval": {"heldout": {"k": "five"}},
           "judge": {"win_rate": False}}
    path = _write(tmp_path / "metrics.json", bad)
    with pytest.raises(DataError) as caught:
        read_results(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 7 malformed field(s):")
    for field, value in (("tuned.recall.accuracy", "'0.5'"), ("tuned.recall.n", "True"),
                         ("tuned.recall.ci95.accuracy.1", "[0.1]"),
                         ("tuned.recall.by_category.x.token_f1", "[1]"),
                         ("tuned.heldout", "3"), ("retrieval.heldout.k", "'five'"),
                         ("judge.win_rate", "False")):
        assert f"  - {field}: " in message and f"(got {value})" in message, field
    assert "rerun `tuneline evaluate --force`" in message


def test_not_an_object_is_an_error() -> None:
    with pytest.raises(DataError, match="metrics.json: expected a JSON object of variants, got "
                                        "list"):
        parse_results([1, 2])
