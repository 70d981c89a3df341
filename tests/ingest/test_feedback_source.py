"""Rated answers from the server's feedback store as a conversation source of the next run."""

from __future__ import annotations

import pytest

from tuneline.serve.feedback import FeedbackStore

QUESTION = [{"role": "user", "content": "What is the capital of Atlantis?"}]


def _rated(store: FeedbackStore, response_id: str, answer: str, rating: int,
           correction: str | None = None) -> None:
    store.add(response_id, rating, None, {"response_id": response_id, "model": "capitals",
                                          "messages": QUESTION, "completion": answer},
              correction=correction)


def test_only_a_trainable_rating_changes_the_source_fingerprint(tmp_path):
    from tuneline.ingest.config import SourceConfig
    from tuneline.ingest.sources import read_source, source_fingerprint

    store = FeedbackStore(tmp_path / "feedback.db")
    _rated(store, "r1", "Poseidonia.", 5)
    source = SourceConfig.model_validate({"name": "feedback", "format": "feedback",
                                          "path": str(store.path)})
    before = source_fingerprint(source)
    _rated(store, "r2", "I am not sure.", 2)  # neither well rated nor corrected: not trained
    assert source_fingerprint(source) == before
    _rated(store, "r3", "Lyon.", 1, correction="Atlantis has no capital in my data.")
    assert source_fingerprint(source) != before
    records = list(read_source(source))
    assert [r.line for r in records] == [1, 2]
    assert "Atlantis has no capital" in records[1].data["messages"]


def test_a_corrected_answer_reaches_the_next_runs_dataset_and_the_wrong_one_does_not(
        tmp_path, tiny_model_dir):
    pytest.importorskip("torch")
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.pipeline import run_pipeline

    store = FeedbackStore(tmp_path / "feedback.db")
    _rated(store, "r1", "Atlantis is in Greece.", 1,
           correction="The capital of Atlantis is Poseidonia.")
    _rated(store, "r2", "Madrid is the capital of Spain.", 5)
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["ingest"]["sources"].append({"name": "feedback", "format": "feedback",
                                      "path": str(store.path)})
    data["synthesize"]["conversations"] = [{"source": "feedback"}]
    result = run_pipeline(PipelineConfig.model_validate(data), until="curate")
    curated = result.artifacts["curate"].path
    text = "".join(p.read_text() for p in curated.rglob("*.jsonl"))
    assert "The capital of Atlantis is Poseidonia." in text
    assert "Atlantis is in Greece." not in text
