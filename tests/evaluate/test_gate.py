"""The quality gate: the pure check over metrics.json, its config, and the pipeline hook."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import read_json, tiny_pipeline_config, write_config
from tuneline.config import load_config
from tuneline.errors import ConfigError, DataError
from tuneline.evaluate.config import GateConfig
from tuneline.evaluate.gate import check_gate

METRICS = {
    "base": {"recall": {"accuracy": 0.1, "abstention_rate": 0.0, "n": 50},
             "unanswerable": {"accuracy": 0.0, "abstention_rate": 0.0, "n": 16},
             "general": {"accuracy": 0.8, "abstention_rate": 0.0, "n": 20}},
    "tuned": {"recall": {"accuracy": 0.52, "abstention_rate": 0.4, "n": 50},
              "unanswerable": {"accuracy": 0.5, "abstention_rate": 0.5,
                               "hallucination_rate": 0.25, "n": 16},
              "general": {"accuracy": 0.7, "abstention_rate": 0.0, "n": 20}},
    "judge": {"win_rate": 0.75},
}


def _gate(**kwargs) -> GateConfig:
    return GateConfig.model_validate(kwargs)


def _only_failure(result):
    assert not result.passed
    failed = result.failures
    assert len(failed) == 1
    return failed[0]


def test_no_thresholds_pass_without_checks():
    result = check_gate(GateConfig(), METRICS)
    assert result.passed and result.checks == []
    assert result.to_dict() == {"passed": True, "checks": []}


def test_every_threshold_met_passes():
    gate = _gate(min_accuracy={"recall": 0.5}, max_hallucination={"unanswerable": 0.3},
                 min_abstention={"unanswerable": 0.5}, max_regression={"general": 0.1},
                 min_win_rate=0.7)
    result = check_gate(gate, METRICS)
    assert result.passed, [c.message for c in result.checks]
    assert [c.name for c in result.checks] == [
        "min_accuracy.recall", "max_hallucination.unanswerable", "min_abstention.unanswerable",
        "max_regression.general", "min_win_rate"]
    assert result.to_dict()["checks"][0] == {
        "name": "min_accuracy.recall", "threshold": 0.5, "value": 0.52, "passed": True,
        "message": "min_accuracy.recall: tuned accuracy 0.520, required >= 0.500 (ok); n=50, "
                   "95% interval [0.385, 0.652], which reaches past the threshold: more "
                   "questions would settle it",
        "unsettled": True}


@pytest.mark.parametrize(("gate", "name", "value", "shown"), [
    ({"min_accuracy": {"recall": 0.6}}, "min_accuracy.recall", 0.52, ("0.520", ">= 0.600")),
    ({"max_hallucination": {"unanswerable": 0.2}}, "max_hallucination.unanswerable", 0.25,
     ("hallucination_rate 0.250", "<= 0.200")),
    ({"min_abstention": {"recall": 0.5}}, "min_abstention.recall", 0.4,
     ("abstention_rate 0.400", ">= 0.500")),
    ({"max_regression": {"general": 0.05}}, "max_regression.general", 0.1,
     ("0.700 vs base 0.800", "drop of 0.100", "<= 0.050")),
    ({"min_win_rate": 0.8}, "min_win_rate", 0.75, ("win rate 0.750", ">= 0.800")),
])
def test_each_threshold_fails_with_value_and_threshold(gate, name, value, shown):
    failed = _only_failure(check_gate(_gate(**gate), METRICS))
    assert failed.name == name
    assert failed.value == pytest.approx(value)
    assert failed.message.startswith(f"{name}: ")
    assert "FAILED" in failed.message
    for text in shown:
        assert text in failed.message


def test_tuned_better_than_base_is_no_regression():
    result = check_gate(_gate(max_regression={"recall": 0.0}), METRICS)
    assert result.passed
    assert result.checks[0].value == pytest.approx(0.1 - 0.52)


@pytest.mark.parametrize(("gate", "missing"), [
    ({"min_accuracy": {"general_v2": 0.5}}, "no 'general_v2' set for tuned"),
    ({"max_hallucination": {"recall": 0.5}}, "no 'hallucination_rate' metric for tuned/recall"),
    ({"min_win_rate": 0.5}, "no 'judge.win_rate' metric"),
])
def test_missing_set_or_metric_is_a_clear_failure(gate, missing):
    metrics = {k: v for k, v in METRICS.items() if k != "judge"}
    failed = _only_failure(check_gate(_gate(**gate), metrics))
    assert failed.value is None
    assert missing in failed.message


def test_regression_without_base_names_the_missing_variant():
    failed = _only_failure(check_gate(_gate(max_regression={"recall": 0.1}),
                                      {"tuned": METRICS["tuned"]}))
    assert "no 'base' variant" in failed.message


def test_rate_reported_with_an_interval_is_read():
    metrics = {"tuned": {"recall": {"accuracy": {"value": 0.9, "ci": [0.8, 0.95]}, "n": 5}}}
    assert check_gate(_gate(min_accuracy={"recall": 0.85}), metrics).passed


@pytest.mark.parametrize(("gate", "scores", "unsettled"), [
    # Four held-out questions of a 21-question FAQ: the mean clears the bound, its interval not.
    ({"min_score": {"reference": {"rouge_l": 0.3}}},
     {"rouge_l": 0.61, "n": 4, "ci95": {"rouge_l": [0.21, 0.93]}}, True),
    ({"min_score": {"reference": {"rouge_l": 0.1}}},
     {"rouge_l": 0.61, "n": 4, "ci95": {"rouge_l": [0.21, 0.93]}}, False),
])
def test_a_bound_says_when_its_interval_reaches_past_the_threshold(gate, scores, unsettled):
    [check] = check_gate(_gate(**gate), {"tuned": {"reference": scores}}).checks
    assert check.passed and check.unsettled is unsettled
    low, high = next(iter(scores["ci95"].values()))
    assert f"n={scores['n']}, 95% interval [{low:.3f}, {high:.3f}]" in check.message
    assert ("more questions would settle it" in check.message) is unsettled


@pytest.mark.parametrize(("rate", "n", "unsettled"), [(1.0, 4, True), (1.0, 60, False),
                                                      (0.25, 16, True), (0.05, 100, False)])
def test_a_share_of_few_questions_is_not_settled_even_when_all_agree(rate, n, unsettled):
    # 4 of 4 correct bootstraps to [1, 1]; Wilson's interval is [0.51, 1].
    gate = _gate(min_accuracy={"recall": 0.9}, max_hallucination={"recall": 0.3})
    metric = "accuracy" if rate > 0.5 else "hallucination_rate"
    scores = {metric: rate, "n": n, "ci95": {metric: [rate, rate]}}
    check = next(c for c in check_gate(gate, {"tuned": {"recall": scores}}).checks
                 if metric in c.message)
    assert check.passed and check.unsettled is unsettled


def test_a_passed_gate_prints_the_checks_its_questions_do_not_settle(capsys):
    from tuneline.cli.output import print_gate

    metrics = {"tuned": {"reference": {"rouge_l": 0.61, "n": 4,
                                       "ci95": {"rouge_l": [0.21, 0.93]}},
                         "recall": {"accuracy": 0.9, "n": 50, "ci95": {"accuracy": [0.8, 0.96]}}}}
    gate = _gate(min_score={"reference": {"rouge_l": 0.3}}, min_accuracy={"recall": 0.5})
    print_gate(check_gate(gate, metrics))
    out = " ".join(capsys.readouterr().out.split())
    assert "quality gate: passed (2 check(s))" in out
    assert "not settled: min_score.reference.rouge_l" in out and "min_accuracy" not in out


def test_config_rejects_rates_outside_0_1(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["gate.min_accuracy.recall=1.5", "gate.min_win_rate=-0.1",
                           "gate.max_regresion.general=0.1"])
    text = str(err.value)
    assert "gate.min_accuracy" in text and "recall=1.5" in text
    assert "gate.min_win_rate" in text
    assert "gate.max_regresion" in text and "unknown key" in text
    assert load_config(None, ["gate.max_regression.general=0.05"]).gate.max_regression == {
        "general": 0.05}


def test_pipeline_gate_blocks_register_then_lets_it_run(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    from tuneline.pipeline import run_pipeline
    from tuneline.registry import open_registry

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["gate"] = {"min_accuracy": {"heldout": 1.0}}
    config_path = write_config(tmp_path / "cfg.yaml", data)
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli.main", "run", str(config_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    run_dir = tmp_path / "runs" / "tiny"
    assert proc.returncode == 7, proc.stderr
    assert "Traceback" not in proc.stderr
    gate = read_json(run_dir / "gate.json")
    assert gate["passed"] is False
    reached = gate["checks"][0]["value"]
    assert reached < 1.0
    assert "quality gate failed" in proc.stderr
    assert f"min_accuracy.heldout: tuned accuracy {reached:.3f}, required >= 1.000" in proc.stderr
    assert (run_dir / "evaluate" / "metrics.json").is_file()
    assert not (run_dir / "register").exists()
    assert (run_dir / "report.html").is_file()
    assert "report.html" in proc.stderr.replace("\n", "")  # rich wraps long lines
    assert "Strict accuracy" in proc.stdout and "report:" in proc.stdout
    # Tracked in MLflow as a failed-gate run, but never registered as a model version.
    cfg = load_config(config_path)
    registry = open_registry(cfg.register)
    assert registry.names() == []
    tracked = read_json(run_dir / "track" / "tracking.json")
    run = registry.client.get_run(tracked["run_id"])
    assert run.data.tags["gate"] == "failed"
    assert run.data.metrics["tuned.heldout.accuracy"] == pytest.approx(reached)

    # Thresholds the model reached: the same run reuses every stage and registers.
    cfg = load_config(config_path, [f"gate.min_accuracy.heldout={reached}",
                                    "gate.max_regression.recall=1.0"])
    result = run_pipeline(cfg)
    assert result.gate is not None and result.gate.passed
    assert all(result.artifacts[s].skipped for s in ("train", "evaluate"))
    assert not result.artifacts["register"].skipped
    assert read_json(run_dir / "gate.json")["passed"] is True
    assert (run_dir / "register").is_dir()
    version = registry.get(f"{cfg.register.name}@candidate")
    assert version.meta["gate"]["passed"] is True
    assert version.meta["run_id"] != tracked["run_id"]  # the passing gate is a new run
    assert (version.adapter_dir / "adapter_config.json").is_file()


def test_regression_also_holds_against_the_champion():
    metrics = {"base": {"general": {"accuracy": 0.5}}, "tuned": {"general": {"accuracy": 0.6}},
               "champion": {"general": {"accuracy": 0.8}}}
    result = check_gate(_gate(max_regression={"general": 0.1}), metrics)
    assert [c.name for c in result.checks] == ["max_regression.general",
                                              "max_regression.general (vs champion)"]
    assert result.checks[0].passed and not result.checks[1].passed
    assert "vs champion 0.800, a drop of 0.200" in result.checks[1].message


def test_win_rate_without_valid_verdicts_says_so():
    metrics = {"judge": {"win_rate": None, "invalid": 4, "n": 4}}
    failed = check_gate(_gate(min_win_rate=0.5), metrics).checks[0]
    assert not failed.passed and "no valid verdict (4 invalid of 4)" in failed.message


def test_the_typed_results_give_the_same_checks_as_the_json(tmp_path):
    from tuneline.report.results import read_results

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(METRICS), encoding="utf-8")
    gate = _gate(min_accuracy={"recall": 0.6, "general_v2": 0.5},
                 max_hallucination={"unanswerable": 0.3}, min_abstention={"recall": 0.5},
                 max_regression={"general": 0.05}, min_win_rate=0.7)
    typed = check_gate(gate, read_results(path))
    assert typed == check_gate(gate, METRICS)
    assert [c.passed for c in typed.checks] == [False, False, True, False, False, True]


def test_a_malformed_metric_is_a_data_error_naming_it():
    metrics = {"tuned": {"recall": {"accuracy": "0.9"}}}
    with pytest.raises(DataError, match=r"tuned\.recall\.accuracy: Input should be a valid number"):
        check_gate(_gate(min_accuracy={"recall": 0.5}), metrics)


def test_gain_is_checked_for_each_served_variant_against_base_asked_the_same_way():
    def sets(recall: float, heldout: float | None = None) -> dict:
        out = {"recall": {"accuracy": recall, "n": 20}}
        return out | ({"heldout": {"accuracy": heldout, "n": 10}} if heldout is not None else {})

    gate = _gate(min_gain={"recall": {"accuracy": 0.1}, "heldout": {"accuracy": 0.1}})
    # reading was already the base model's: tuned+rag adds nothing over base+rag on recall
    metrics = {"base": sets(0.0, 0.0), "tuned": sets(0.6, 0.0),
               "base+rag": sets(0.9, 0.5), "tuned+rag": sets(0.95, 0.9)}
    result = check_gate(gate, metrics)
    assert [(c.name, c.passed) for c in result.checks] == [
        ("min_gain.recall.accuracy", True), ("min_gain.heldout.accuracy", False),
        ("min_gain.recall.accuracy (tuned+rag)", False),
        ("min_gain.heldout.accuracy (tuned+rag)", True)]
    assert "tuned+rag accuracy 0.950 vs base+rag 0.900" in result.checks[2].message
    # a set only the closed-book pair answered is not required of tuned+rag
    only_recall = {"base": sets(0.0, 0.0), "tuned": sets(0.6, 0.2),
                   "base+rag": sets(0.1), "tuned+rag": sets(0.9)}
    assert [c.name for c in check_gate(gate, only_recall).checks] == [
        "min_gain.recall.accuracy", "min_gain.heldout.accuracy",
        "min_gain.recall.accuracy (tuned+rag)"]


def test_retrieval_thresholds_hold_tuned_rag_alone_and_fail_without_it():
    gate = _gate(min_accuracy={"recall": 0.3},
                 retrieval={"min_accuracy": {"heldout": 0.9, "variant_name": 0.9},
                            "max_hallucination": {"unanswerable": 0.1}})
    sets = {"recall": {"accuracy": 0.4, "n": 32}, "heldout": {"accuracy": 0.17, "n": 12},
            "variant_name": {"accuracy": 0.36, "n": 22},
            "unanswerable": {"accuracy": 1.0, "hallucination_rate": 0.0, "n": 17}}
    # the bf16-trained demo of 2026-12-06: it declined what its passages answered
    reading_fails = {"tuned": sets, "tuned+rag": {
        **sets, "recall": {"accuracy": 0.72, "n": 32}, "heldout": {"accuracy": 0.75, "n": 12},
        "variant_name": {"accuracy": 0.545, "n": 22}}}
    result = check_gate(gate, reading_fails)
    assert [(c.name, c.passed) for c in result.checks] == [
        ("min_accuracy.recall", True), ("min_accuracy.recall (tuned+rag)", True),
        ("retrieval.min_accuracy.heldout (tuned+rag)", False),
        ("retrieval.min_accuracy.variant_name (tuned+rag)", False),
        ("retrieval.max_hallucination.unanswerable (tuned+rag)", True)]
    assert "tuned+rag accuracy 0.750, required >= 0.900" in result.checks[2].message
    reads = {"tuned": sets, "tuned+rag": {**sets, "heldout": {"accuracy": 1.0, "n": 12},
                                          "variant_name": {"accuracy": 0.95, "n": 22}}}
    assert check_gate(gate, reads).passed  # the closed-book model is not held to them
    missing = _only_failure(check_gate(_gate(retrieval={"min_accuracy": {"heldout": 0.9}}),
                                       {"tuned": sets}))
    assert "no 'tuned+rag' variant" in missing.message
    with pytest.raises(ConfigError, match="heldout=1.5"):
        load_config(None, ["gate.retrieval.min_accuracy.heldout=1.5"])


def test_with_retrieval_always_the_gate_holds_tuned_rag_alone():
    """init's gate on a table (2026-12-06 panel, countries): the closed-book model forgets
    everyday questions and declines no invented entity; nothing serves it."""
    gate = _gate(min_gain={"recall": {"accuracy": 0.0}, "heldout": {"accuracy": 0.0}},
                 min_abstention={"unanswerable": 0.25}, max_regression={"general": 0.2})
    closed = {"recall": {"accuracy": 0.25, "n": 32}, "heldout": {"accuracy": 0.0, "n": 12},
              "unanswerable": {"abstention_rate": 0.0, "n": 18},
              "general": {"accuracy": 0.275, "n": 40}}
    base = {**closed, "recall": {"accuracy": 0.156, "n": 32},
            "heldout": {"accuracy": 0.083, "n": 12}, "general": {"accuracy": 0.575, "n": 40}}
    read = {"recall": {"accuracy": 0.969, "n": 32}, "heldout": {"accuracy": 1.0, "n": 12},
            "unanswerable": {"abstention_rate": 1.0, "n": 18}}
    metrics = {"base": base, "tuned": closed, "base+rag": {**read, "heldout": {
        "accuracy": 0.5, "n": 12}}, "tuned+rag": read}
    both = check_gate(gate, metrics)
    assert {c.name for c in both.failures} == {
        "min_gain.heldout.accuracy", "min_abstention.unanswerable", "max_regression.general"}
    alone = check_gate(gate, metrics, retrieval_only=True)
    assert alone.passed
    assert [c.name for c in alone.checks] == [
        "min_abstention.unanswerable (tuned+rag)", "min_gain.recall.accuracy (tuned+rag)",
        "min_gain.heldout.accuracy (tuned+rag)"]
    declines_nothing = {**metrics, "tuned+rag": {**read, "unanswerable": {
        "abstention_rate": 0.0, "n": 18}}}
    assert _only_failure(check_gate(gate, declines_nothing, retrieval_only=True)).name == \
        "min_abstention.unanswerable (tuned+rag)"
    with pytest.raises(ConfigError, match="serve.retrieval: always needs index.enabled"):
        load_config(None, ["serve.retrieval=always"])
