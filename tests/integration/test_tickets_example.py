"""The tickets example end to end: synthetic tickets in a real PostgreSQL server, read by SQL,
mapped to threads, curated, trained (a tiny random model stands in for SmolLM2), evaluated
against the agents' replies, registered, and asked over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import serve_in_thread

pytestmark = pytest.mark.integration
pytest.importorskip("torch")
EXAMPLE = Path(__file__).parents[2] / "examples" / "tickets"


@pytest.fixture(scope="module")
def tickets_run(postgres_url, tiny_model_dir, tmp_path_factory):
    import psycopg

    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        conn.execute("DROP TABLE IF EXISTS ticket_messages")
        conn.execute((EXAMPLE / "tickets.sql").read_text(encoding="utf-8"))
    root = tmp_path_factory.mktemp("tickets")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TICKETS_DB_URL", postgres_url)
        cfg = load_config(EXAMPLE / "tuneline.yaml", [
            f"run.runs_dir={root / 'runs'}", f"model.base={tiny_model_dir}",
            f"register.registry_dir={root / 'registry'}", "train.epochs=1",
            "train.precision=fp32", "evaluate.reference_max_new_tokens=12",
            "evaluate.max_new_tokens=8", "evaluate.general_probe=false", "gate={}"])
        result = run_pipeline(cfg)
    return cfg, result


def _manifest(result, stage):
    return json.loads((result.artifacts[stage].path / "manifest.json").read_text())


def test_tickets_become_threads(tickets_run):
    _, result = tickets_run
    counts = _manifest(result, "synthesize")["counts"]
    assert counts["conversations"] == counts["conversations:tickets"] == 96
    assert counts["skipped:no_assistant_turn"] == 1  # the unanswered ticket
    assert counts["skipped:rows_mapped_to_skip"] > 0  # internal notes
    assert counts["merged:consecutive_same_role"] > 0  # "Any update on this?"
    [first] = [json.loads(line) for line in
               (result.artifacts["synthesize"].path / "conversations.jsonl").open()
               if json.loads(line)["thread"] == "1"]
    assert first["messages"][0]["role"] == "system"
    assert [m["role"] for m in first["messages"][1:3]] == ["user", "assistant"]
    assert first["group"] == "C025"


def test_curate_masks_splits_by_customer_and_keeps_replies_apart(tickets_run):
    _, result = tickets_run
    manifest = _manifest(result, "curate")
    counts = manifest["counts"]
    assert counts["conversations:pii:EMAIL"] > 0 and counts["conversations:pii:PHONE"] > 0
    train_text = (result.artifacts["curate"].path / "train.jsonl").read_text()
    assert "@mail.example" not in train_text and "<EMAIL>" in train_text
    assert "192.168.50.1" in train_text  # not in the example's pii.entities
    assert counts["reference"] + counts["reference_recall"] > 0
    eval_dir = result.artifacts["curate"].path / "eval"
    evaluated = [json.loads(line) for name in ("reference.jsonl", "reference_recall.jsonl")
                 for line in (eval_dir / name).open()]
    trained = [json.loads(line) for line in (result.artifacts["curate"].path /
                                             "train.jsonl").open()]
    assert {item["set"] for item in evaluated} <= {"reference", "reference_recall"}
    replies = {m["content"] for c in trained for m in c["messages"] if m["role"] == "assistant"}
    assert not any(item["reference"] in replies
                   for item in evaluated if item["set"] == "reference")


def test_evaluate_grades_replies_and_the_model_is_served(tickets_run):
    from openai import OpenAI

    from tuneline.registry import open_registry
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, result = tickets_run
    metrics = json.loads((result.artifacts["evaluate"].path / "metrics.json").read_text())
    for variant in ("base", "tuned"):
        scores = metrics[variant]["reference_recall"]
        assert 0 <= scores["rouge_l"] <= 1 and 0 <= scores["similarity"] <= 1
        assert scores["n"] > 0 and "rouge_l" in scores["ci95"]
    report = (result.artifacts["evaluate"].path / "report.md").read_text()
    assert "Free-text replies against the reference" in report
    # The nearest trained reply, the baseline a model must beat: a reply training holds,
    # scored on the free-text sets only, shown in the report.
    trained = {m["content"] for line in (result.artifacts["curate"].path / "train.jsonl").open()
               for m in json.loads(line)["messages"] if m["role"] == "assistant"}
    predictions = [json.loads(line) for line in
                   (result.artifacts["evaluate"].path / "predictions.jsonl").open()]
    lookups = [p["nearest_trained_answer"] for p in predictions
               if p["set"] in ("reference", "reference_recall")]
    assert lookups and set(lookups) <= trained
    assert set(metrics["nearest_trained"]) <= {"reference", "reference_recall"}
    assert "| nearest_trained | reference" in report
    version = open_registry(cfg.register).get("tickets")
    engine = TransformersEngine.load(version.meta["base_model"], version.adapter_dir,
                                     precision="fp32")
    with serve_in_thread(build_app({"tickets": engine}, ServeConfig())) as base_url:
        reply = OpenAI(base_url=base_url, api_key="none").chat.completions.create(
            model="tickets", max_tokens=6,
            messages=[{"role": "user", "content": "How do I factory reset my Lumo R2?"}])
    assert isinstance(reply.choices[0].message.content, str)
    assert 0 < reply.usage.completion_tokens <= 6
