"""The drift baseline travels with a registered version: evaluate writes it from the run's
training questions and the served variant's rates, register stores it, and `tuneline monitor
--version` compares live traffic with it (tiny model, real MiniLM, local registry)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("sklearn")

from conftest import CAPITALS, tiny_pipeline_config, write_config  # noqa: E402
from tuneline.monitor.baseline import evaluation_rates  # noqa: E402


def test_rates_are_those_of_the_served_variant_on_the_served_sets():
    predictions = [
        {"set": "heldout", "tuned+rag_answer": "Paris is the capital.", "tuned+rag_abstained":
         False, "retrieved": ["capitals:L2"], "tuned_answer": "No idea", "tuned_abstained": True},
        {"set": "recall", "tuned+rag_answer": "I don't know.", "tuned+rag_abstained": True,
         "retrieved": [], "tuned_answer": "Oslo", "tuned_abstained": False},
        {"set": "general", "tuned+rag_answer": None, "tuned_answer": "4", "tuned_abstained": True},
        # declining there is right: the rates are those of answerable questions
        {"set": "unanswerable", "tuned+rag_answer": "I don't know.", "tuned+rag_abstained": True,
         "retrieved": [], "tuned_answer": "I don't know.", "tuned_abstained": True},
        {"set": "absent_attribute", "tuned+rag_answer": "No.", "tuned+rag_abstained": True,
         "retrieved": [], "tuned_answer": "No.", "tuned_abstained": True},
    ]
    assert evaluation_rates(predictions, "tuned+rag") == {
        "abstention": 0.5, "answer_words": 3.5, "no_passage": 0.5}
    assert evaluation_rates(predictions, "tuned") == {"abstention": 0.5, "answer_words": 1.5}
    assert evaluation_rates([], "tuned") == {}


def test_a_registered_version_carries_its_baseline_and_monitor_uses_it(tmp_path,
                                                                     tiny_model_dir):
    from tuneline.config import load_config
    from tuneline.monitor.drift import DriftBaseline
    from tuneline.monitor.prompts import training_questions
    from tuneline.pipeline import run_pipeline
    from tuneline.registry import open_registry

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["evaluate"]["drift_baseline"] = True
    data["train"].update({"max_steps": 2, "checkpoint_every": 0})
    config = write_config(tmp_path / "tuneline.yaml", data)
    cfg = load_config(config)
    result = run_pipeline(cfg)
    trained_on = training_questions(result.artifacts["curate"].path / "train.jsonl")

    registry = open_registry(cfg.register)
    version = registry.materialize(registry.get("capitals@candidate"))
    registered = DriftBaseline.load(version.path / "drift-baseline")
    assert len(registered.embeddings) == len(trained_on) > 0
    assert set(registered.rates) == {"abstention", "answer_words"}  # no index: tuned serves

    live = tmp_path / "live.txt"
    live.write_text("".join(f"Which city is the capital of {country}?\n"
                            for country, _, _ in CAPITALS))
    shown = subprocess.run(
        [sys.executable, "-m", "tuneline.cli.main", "monitor", str(config), "--live", str(live),
         "--version", "capitals@candidate"], cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode in (0, 10), shown.stdout + shown.stderr
    drift = json.loads((tmp_path / "runs" / "tiny" / "monitor" / "drift.json").read_text())
    assert drift["baseline"].endswith("drift-baseline")
    assert drift["baseline_rates"] == registered.rates

    missing = subprocess.run(
        [sys.executable, "-m", "tuneline.cli.main", "monitor", str(config), "--live", str(live),
         "--version", "capitals/7"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "no version 7" in " ".join(missing.stderr.split())
