"""The real SmolLM2 through every stage; then `tuneline serve` answers the openai client."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import tuneline_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]
torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).parents[2] / "examples" / "paris2024"
SMALL_SLICE = [
    "synthesize.max_facts_per_template=8",
    "synthesize.unanswerable.per_template=4",
    # A third of the demo's reading practice: enough for '+rag' to copy a passage, and the
    # slice trains in about half the time (235 s instead of 412 s on the AVX2 class).
    "synthesize.reading_facts_per_template={event_champion: 24, athlete_country: 12}",
    "curate.rag.min_gold=24",
    "curate.unanswerable_train_fraction=0.5",
    "train.epochs=2",
    "evaluate.max_new_tokens=16",
    "evaluate.max_examples=6",
    "gate={}",  # the demo's thresholds are for the full run, not this slice
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smollm2")
    shutil.copytree(EXAMPLE, root / "paris2024")
    return root


@pytest.fixture(scope="module")
def base_weights() -> Path:
    from tuneline.models.resolve import resolve_model

    return Path(resolve_model("embedded:smollm2-135m-instruct")) / "model.safetensors"


@pytest.fixture(scope="module")
def pipeline(workdir, base_weights):
    from tuneline.artifacts import hash_file
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    before = hash_file(base_weights)
    cfg = load_config(workdir / "paris2024" / "tuneline.yaml",
                      [*SMALL_SLICE, f"run.runs_dir={workdir / 'runs'}",
                       f"register.registry_dir={workdir / 'registry'}"])
    return cfg, run_pipeline(cfg), before


def test_training_lowers_loss_and_changes_only_the_adapter(pipeline, base_weights):
    from safetensors.torch import load_file

    from tuneline.artifacts import hash_file

    cfg, result, base_hash_before = pipeline
    details = result.artifacts["train"].manifest["details"]
    assert details["loss_last"] < details["loss_first"]
    assert details["val_loss_after"] < details["val_loss_before"]
    adapter = load_file(result.artifacts["train"].path / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)
    assert hash_file(base_weights) == base_hash_before


def test_evaluation_compares_base_and_tuned(pipeline):
    from tuneline.artifacts import read_jsonl

    _, result, _ = pipeline
    evaluated = result.artifacts["evaluate"].path
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert metrics["base"]["recall"]["n"] == metrics["tuned"]["recall"]["n"] == 6
    assert metrics["tuned"]["unanswerable"]["n"] == 4  # 2 of 4 per template held out
    predictions = read_jsonl(evaluated / "predictions.jsonl")
    recall = [p for p in predictions if p["set"] == "recall"]
    # The metrics are the scored answers of each variant.
    for variant in ("base", "tuned"):
        for name in ("recall", "unanswerable"):
            rows = [p for p in predictions if p["set"] == name]
            assert metrics[variant][name]["accuracy"] == pytest.approx(
                sum(p[f"{variant}_correct"] for p in rows) / len(rows))
    # Training moved the answers the way it should: the tuned model answers the trained facts
    # (recall asks them in a phrasing it never saw) in their trained sentence, and more of them
    # rightly, than the base model, which knows nothing of Paris 2024's medallists; and it
    # declines invented athletes and events it was taught to decline. Two runs of this slice on
    # 2026-12-03: recall tuned 4/6 and 3/6, base 0/6 (token F1 0.76 and 0.59, base 0.27 and
    # 0.33); unanswerable declined 2/4 tuned, 0/4 base. With a third of the reading practice
    # (2026-12-05): recall 3/6 (token F1 0.71, base 0.26), unanswerable declined 2/4.
    assert all(p["tuned_answer"] != p["base_answer"] for p in recall)
    assert metrics["tuned"]["recall"]["accuracy"] > metrics["base"]["recall"]["accuracy"]
    assert metrics["tuned"]["recall"]["token_f1"] > metrics["base"]["recall"]["token_f1"] + 0.1
    assert (metrics["tuned"]["unanswerable"]["abstention_rate"]
            > metrics["base"]["unanswerable"]["abstention_rate"])


def test_tuneline_serve_answers_the_openai_client(pipeline, workdir):
    from openai import OpenAI

    from tuneline.artifacts import read_jsonl

    cfg, result, _ = pipeline
    predictions = read_jsonl(result.artifacts["evaluate"].path / "predictions.jsonl")
    # A trained fact the evaluated tuned model got right (and the base model did not).
    known = next(p for p in predictions if p["set"] == "recall" and p["tuned_correct"]
                 and not p["base_correct"])
    with tuneline_serve(str(workdir / "paris2024" / "tuneline.yaml"),
                        f"register.registry_dir={cfg.register.registry_dir}",
                        f"run.runs_dir={cfg.run.runs_dir}") as base_url:
        client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
        reply = client.chat.completions.create(
            model="paris2024",
            messages=[{"role": "user", "content": "Which country did LEDECKY Katie represent "
                                                  "at the Paris 2024 Olympics?"}],
            max_tokens=64,
        )
        assert reply.choices[0].message.content.strip()
        assert reply.usage.completion_tokens > 0
        # The end-of-turn token was trained: the tuned model stops by itself, well before 64.
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage.completion_tokens < 48
        # What is served is the tuned model: it knows the trained fact as evaluate found.
        trained = client.chat.completions.create(
            model="paris2024", max_tokens=cfg.evaluate.max_new_tokens,
            messages=[{"role": "user", "content": known["question"]}])
        assert known["fact"] in trained.choices[0].message.content, known
        # The demo indexes its medallists: '+rag' answers from retrieved passages and cites them.
        grounded = client.chat.completions.create(
            model="paris2024+rag", max_tokens=48,
            messages=[{"role": "user", "content": "Which country did LEDECKY Katie represent "
                                                  "at the Paris 2024 Olympics?"}])
        cited = grounded.model_extra["citations"]
        # Matching keeps only her rows (four medals in the demo data), each naming her country;
        # the answer copies one of them (curate.rag.answer: passage), country included.
        assert sorted(int(c["line"]) for c in cited) == [27, 165, 295, 909]
        assert all(c["source"] == "medallists" and  # the passage derived from the templates
                   c["text"].endswith("; name LEDECKY Katie; country United States.")
                   for c in cited)
        answer = grounded.choices[0].message.content
        assert "name LEDECKY Katie; country United States" in answer, answer
