"""run.repeats: medians and min-max over seeds, and the gate on the medians (issue #19)."""

from __future__ import annotations

import json

import pytest
import yaml

from tuneline.report.results import parse_results, spread_of


def _run(recall: float, general: float | None = None) -> dict:
    run = {"tuned": {"recall": {"accuracy": recall, "n": 10}}}
    if general is not None:
        run["tuned"]["general"] = {"accuracy": general, "n": 40}
    return run


def test_spread_is_the_median_and_the_extremes_of_the_runs_that_have_the_metric():
    runs = [parse_results(_run(0.9, 0.5)), parse_results(_run(0.5)), parse_results(_run(0.7, 0.6))]
    spread = spread_of(runs, [0, 1, 2])
    recall = spread.metrics["tuned"]["recall"]["accuracy"]
    assert (recall.median, recall.min, recall.max) == (0.7, 0.5, 0.9)
    general = spread.metrics["tuned"]["general"]["accuracy"]
    assert (general.median, general.min, general.max) == (0.55, 0.5, 0.6)
    assert spread.medians().scores("tuned", "recall").accuracy == 0.7


def test_repeated_pipeline_writes_each_seed_and_gates_on_the_medians(tmp_path, tiny_model_dir):
    pytest.importorskip("torch")
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["run"]["repeats"] = 2
    data["train"]["epochs"] = 1
    data["gate"] = {"max_hallucination": {"recall": 1.0}}
    result = run_pipeline(PipelineConfig.model_validate(data), until="evaluate")
    first = json.loads((result.artifacts["evaluate"].path / "metrics.json").read_text())
    second_dir = result.run_dir / "repeats" / "seed-1"
    second = json.loads((second_dir / "evaluate" / "metrics.json").read_text())
    saved = yaml.safe_load((second_dir / "config.yaml").read_text())
    assert saved["run"]["seed"] == 1 and saved["gate"]["max_hallucination"] == {}
    repeats = json.loads((result.run_dir / "repeats.json").read_text())
    assert repeats["seeds"] == [0, 1]
    for metric in ("accuracy", "hallucination_rate", "containment"):
        values = sorted([first["tuned"]["recall"][metric], second["tuned"]["recall"][metric]])
        spread = repeats["metrics"]["tuned"]["recall"][metric]
        assert spread == {"median": pytest.approx(sum(values) / 2), "min": values[0],
                          "max": values[1]}
    gate = json.loads((result.run_dir / "gate.json").read_text())
    median = repeats["metrics"]["tuned"]["recall"]["hallucination_rate"]["median"]
    assert gate["checks"][0]["value"] == pytest.approx(median)
    assert "seeds (0, 1): median" in result.report.read_text()
