"""Dev facts (synthesize.dev_facts_per_template): sampled beyond the training cap, asked only
in the dev sets, and kept out of every training message and every test set."""

from __future__ import annotations

import pytest

from conftest import tiny_pipeline_config
from tuneline.artifacts import read_jsonl
from tuneline.config import PipelineConfig
from tuneline.pipeline import run_pipeline

pytest.importorskip("torch")


def _run(tmp_path, model_dir, dev_facts: int):
    data = tiny_pipeline_config(tmp_path, model_dir)
    data["synthesize"].update(max_facts_per_template=12, dev_facts_per_template=dev_facts,
                              unanswerable={"per_template": 4})
    data["curate"].update(dev_fraction=0.0, recall_dev_fraction=0.25)
    return run_pipeline(PipelineConfig.model_validate(data), until="curate")


def _eval_ids(curated, folder: str) -> dict[str, set[str]]:
    sets = {}
    for path in sorted((curated / folder).glob("*.jsonl")):
        rows = read_jsonl(path)
        sets[path.stem] = {r["fact_id"] for r in rows} | {
            r["source"].get("origin") for r in rows if r["source"].get("origin")}
    return sets


def test_dev_facts_are_asked_only_in_the_dev_sets_and_never_trained(tmp_path, tiny_model_dir):
    result = _run(tmp_path, tiny_model_dir, dev_facts=5)
    synthesized = result.artifacts["synthesize"]
    facts = read_jsonl(synthesized.path / "facts.jsonl")
    reserved = [f for f in facts if f["reserved"] == "dev"]
    dev_qa = {f["fact_id"]: f for f in reserved if f["kind"] == "qa"}
    dev_invented = {f["fact_id"] for f in reserved if f["kind"] == "unanswerable"}
    assert len(dev_qa) == 5 == len(dev_invented)
    assert synthesized.manifest["counts"]["dev_facts:capital"] == 5
    assert synthesized.manifest["counts"]["facts:capital"] == 12  # the training cap holds
    assert sum(f["kind"] == "unanswerable" and not f["reserved"] for f in facts) == 4

    curated = result.artifacts["curate"].path
    dev_sets, test_sets = _eval_ids(curated, "eval/dev"), _eval_ids(curated, "eval")
    assert set(dev_qa) <= dev_sets["heldout"]
    assert dev_invented <= dev_sets["unanswerable"]
    assert len(dev_sets["recall"]) >= 2  # a quarter of the trained facts
    reserved_ids = set(dev_qa) | dev_invented
    for name, ids in test_sets.items():
        assert not ids & reserved_ids, name
    train = read_jsonl(curated / "train.jsonl") + read_jsonl(curated / "val.jsonl")
    for fact in dev_qa.values():
        for row in train:
            text = " ".join(m["content"] for m in row["messages"])
            assert not (fact["key"] in text and fact["fact"] in text), (fact["key"], text)


def test_without_dev_facts_the_dev_heldout_set_comes_from_the_split(tmp_path, tiny_model_dir):
    result = _run(tmp_path, tiny_model_dir, dev_facts=0)
    facts = read_jsonl(result.artifacts["synthesize"].path / "facts.jsonl")
    assert not any(f["reserved"] for f in facts)
    assert read_jsonl(result.artifacts["curate"].path / "eval" / "dev" / "heldout.jsonl") == []
