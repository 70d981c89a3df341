"""Recall questions about rows that training never reached (training stopped within its first
epoch) are left out of evaluation and counted, end to end from the train stage's list."""

from __future__ import annotations

import json

from conftest import read_json, tiny_pipeline_config, write_config
from tuneline.evaluate.untrained import split_untrained

OSLO = "The capital of Norway is Oslo."
LIMA = "The capital of Peru is Lima."
DECLINE = "I don't have information about that."


def _chat(question, reply):
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": reply}]}


def _item(name, reference, **extra):
    return {"id": f"{name}-{reference}", "set": name, "question": "?", "reference": reference,
            **extra}


def test_only_questions_whose_reply_no_trained_row_says_are_left_out(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [_chat("Capital of Norway?", OSLO), _chat("Norway's capital?", OSLO),
            _chat("Capital of Peru?", LIMA), _chat("Capital of Atlantis?", DECLINE)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = [_item("recall", LIMA), _item("recall", f"  {OSLO} "),
             _item("reference_recall", LIMA), _item("heldout", "The capital of Chad is N'Djamena."),
             _item("unanswerable", DECLINE, expect="abstain")]

    # Peru's only row and one of Norway's two rows untrained; the decline's row too
    kept, left_out = split_untrained(items, train, {1, 3, 4})
    assert left_out == {"recall": 1, "reference_recall": 1}
    assert [item["set"] for item in kept] == ["recall", "heldout", "unanswerable"]
    assert kept[0]["reference"].strip() == OSLO  # another row teaches it

    assert split_untrained(items, train, set()) == (items, {})


def test_a_run_stopped_within_its_first_epoch_evaluates_only_trained_recall_questions(
        tmp_path, tiny_model_dir):
    from tuneline.config import load_config
    from tuneline.curate.stage import load_eval_set
    from tuneline.pipeline import run_pipeline

    max_steps = 2
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["train"].update({"max_steps": max_steps, "batch_size": 1, "checkpoint_every": 0})
    data["evaluate"]["general_probe"] = False
    result = run_pipeline(load_config(write_config(tmp_path / "tuneline.yaml", data)),
                          until="evaluate")
    curated, trained = result.artifacts["curate"], result.artifacts["train"]
    evaluated = result.artifacts["evaluate"]

    rows = (curated.path / "train.jsonl").read_text().splitlines()
    never = read_json(trained.path / "never_trained.json")["rows"]
    assert len(never) == len(rows) - max_steps  # one row a step, no replay
    assert read_json(trained.path / "manifest.json")["counts"]["rows_never_trained"] == len(never)

    trained_replies = {json.loads(row)["messages"][-1]["content"]
                       for number, row in enumerate(rows, start=1) if number not in never}
    asked = {p["id"]: p for p in map(json.loads, (evaluated.path / "predictions.jsonl")
                                     .read_text().splitlines())}
    recall = load_eval_set(curated, "recall")
    assert all(recall_item["reference"] in trained_replies
               for recall_item in recall if recall_item["id"] in asked)
    left_out = read_json(evaluated.path / "manifest.json")["details"]["never_trained_left_out"]
    assert left_out["recall"] == sum(1 for item in recall if item["id"] not in asked) > 0
    assert all(item["id"] in asked for item in load_eval_set(curated, "heldout"))
    report = (evaluated.path / "report.md").read_text()
    assert f"{left_out['recall']} recall questions left out as never trained" in report
