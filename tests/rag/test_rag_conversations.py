"""Documents to conversations with retrieval: an FAQ read into question-answer pairs, the same
file indexed in chunks, and RAG-format training conversations that never show an evaluated
reply (real MiniLM embedder and LanceDB; curate only, nothing is trained)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lancedb")

from tuneline.artifacts import read_jsonl  # noqa: E402
from tuneline.config import PipelineConfig  # noqa: E402
from tuneline.pipeline import run_pipeline  # noqa: E402
from tuneline.report.html import render_html_report  # noqa: E402

TOPICS = ["router", "modem", "printer", "camera", "speaker", "monitor", "keyboard", "tablet",
          "charger", "headset", "scanner", "projector"]


def _faq(path):
    sections = [f"## How do I reset the {topic}?\n\nHold the {topic} power key for "
                f"{7 + i} seconds until its {topic} light turns violet, then release it and "
                f"wait while the {topic} restarts.\n" for i, topic in enumerate(TOPICS)]
    path.write_text("# Device FAQ\n\n" + "\n".join(sections), encoding="utf-8")
    return path


def _config(tmp_path, tiny_model_dir, top_k: int, **curate) -> PipelineConfig:
    """The FAQ's pairs as conversations and its chunks as the index, a quarter held out."""
    faq = _faq(tmp_path / "faq.md")
    return PipelineConfig.model_validate({
        "run": {"name": "faq", "runs_dir": str(tmp_path / "runs"), "seed": 1},
        "model": {"base": str(tiny_model_dir)},
        "ingest": {"sources": [{"name": "pairs", "path": str(faq), "faq": True},
                               {"name": "docs", "path": str(faq), "chunk_size": 200,
                                "chunk_overlap": 0}]},
        "synthesize": {"conversations": [{"source": "pairs", "prompt": "question",
                                          "response": "answer"}]},
        "index": {"enabled": True, "sources": ["docs"], "retrieval": {"top_k": top_k}},
        "curate": {"heldout_fraction": 0.25, "val_fraction": 0.0, "dev_fraction": 0.0,
                   "card": False, **curate},
        "evaluate": {"general_probe": False},
    })


def test_rag_conversations_show_passages_but_no_evaluated_reply(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, top_k=3, rag={"conversation_fraction": 1.0})
    result = run_pipeline(cfg, until="curate")
    curated = result.artifacts["curate"]
    counts = curated.manifest["counts"]
    references = [item["reference"] for item in read_jsonl(curated.path / "eval" /
                                                           "reference.jsonl")]
    assert counts["conversations_heldout"] == len(references) == 3
    assert counts["conversations:rag"] == counts["conversations_train"] == 9
    assert counts["conversations:rag:distractor_leak_avoided"] > 0
    train = read_jsonl(curated.path / "train.jsonl")
    with_passages = [row for row in train if "</passage>" in row["messages"][0]["content"]]
    assert len(with_passages) == 9
    replies = {row["messages"][-1]["content"] for row in train}
    for row in with_passages:
        prompt = row["messages"][0]["content"]
        assert row["messages"][-1]["content"] in replies
        for reference in references:
            assert reference[:60] not in prompt
    # a trained question's own section is among its passages
    own = sum(row["messages"][-1]["content"][:40] in row["messages"][0]["content"]
              for row in with_passages)
    assert own >= 6


def test_a_share_of_rag_conversations_declines_with_the_passages_that_answer_it_left_out(
        tmp_path, tiny_model_dir):
    decline = "I don't have information about that in my data."
    cfg = _config(tmp_path, tiny_model_dir, top_k=2,
                  rag={"conversation_fraction": 1.0, "conversation_withheld": 0.5})
    curated = run_pipeline(cfg, until="curate").artifacts["curate"]
    train = read_jsonl(curated.path / "train.jsonl")
    answered = {row["messages"][-2]["content"]: row["messages"][-1]["content"]
                for row in train if "</passage>" not in row["messages"][-2]["content"]}
    with_passages = [row for row in train if "</passage>" in row["messages"][-2]["content"]]
    declines = [row for row in with_passages if row["messages"][-1]["content"] == decline]
    assert len(with_passages) == 9 and 2 <= len(declines) <= 7
    assert curated.manifest["counts"]["conversations:rag:withheld"] == len(declines)
    for row in declines:  # its own section is not among the passages; another one is
        prompt = row["messages"][-2]["content"]
        question = prompt.rsplit("Question: ", 1)[-1]
        assert answered[question][:40] not in prompt and prompt.count("</passage>") >= 1
        assert 'source="none"' not in prompt
    kept = [row for row in with_passages if row not in declines]
    assert all(row["messages"][-1]["content"] in answered.values() for row in kept)
    # the copies that answer are those of a run without declines
    (tmp_path / "plain").mkdir()
    plain = _config(tmp_path / "plain", tiny_model_dir, top_k=2,
                    rag={"conversation_fraction": 1.0})
    before = read_jsonl(run_pipeline(plain, until="curate").artifacts["curate"].path
                        / "train.jsonl")
    assert all(row in before for row in kept)


def test_withheld_questions_are_asked_without_any_passage_that_answers_them(tmp_path,
                                                                            tiny_model_dir):
    from tuneline.evaluate.stage import evaluation_items, retrieval_conversations
    from tuneline.evaluate.withheld import closed_book_positions

    cfg = _config(tmp_path, tiny_model_dir, top_k=2)
    curated = run_pipeline(cfg, until="curate").artifacts["curate"]
    references = read_jsonl(curated.path / "eval" / "reference.jsonl")
    withheld = read_jsonl(curated.path / "eval" / "withheld.jsonl")
    assert [w["question"] for w in withheld] == [r["question"] for r in references]
    assert {w["expect"] for w in withheld} == {"abstain"}
    assert [w["withhold"] for w in withheld] == [r["reference"] for r in references]

    items = evaluation_items(cfg, curated)
    chosen, hits, asked = retrieval_conversations(cfg, items)
    shown = {items[i]["set"]: [] for i in chosen}
    for i, found in zip(chosen, hits, strict=True):
        shown[items[i]["set"]].append((items[i], [h.passage.text for h in found]))
    # Asked plainly, each held-out question finds its own section; withheld, never.
    for item, passages in shown["reference"]:
        assert any(item["reference"][:40] in p for p in passages)
    for item, passages in shown["withheld"]:
        assert len(passages) == 2
        assert not any(item["withhold"][:40] in p for p in passages)
    assert {items[i]["set"] for i in closed_book_positions(items)} == {"reference"}


def test_only_the_rag_variants_answer_the_withheld_set_and_the_reports_show_it(tmp_path,
                                                                                tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, top_k=2)
    cfg = cfg.model_copy(update={
        "train": cfg.train.model_copy(update={"epochs": 1, "precision": "fp32"}),
        "evaluate": cfg.evaluate.model_copy(update={"max_new_tokens": 8,
                                                    "reference_max_new_tokens": 8,
                                                    "drift_baseline": False})})
    result = run_pipeline(cfg, until="evaluate")
    evaluated = result.artifacts["evaluate"].path
    rows = [r for r in read_jsonl(evaluated / "predictions.jsonl") if r["set"] == "withheld"]
    assert len(rows) == 3
    for row in rows:
        assert {"base+rag_answer", "tuned+rag_answer"} <= set(row)
        assert not {"base_answer", "tuned_answer"} & set(row)
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert set(metrics["tuned+rag"]["withheld"]["gain"]) >= {"vs", "n", "accuracy", "ci95"}
    assert "withheld" not in metrics["tuned"] and "withheld" not in metrics["base"]
    report = (evaluated / "report.md").read_text()
    assert "## Samples: withheld" in report
    assert "| tuned+rag | withheld | base+rag |" in report  # its gain
    assert "withheld" in render_html_report(result.run_dir)

