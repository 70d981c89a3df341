"""The demo's curated training set states no evaluated fact (issue #19): checked from the raw
CSV with plain substring tests, independently of the leak guard that curate runs."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("lancedb")

EXAMPLE = Path(__file__).parents[2] / "examples" / "paris2024"
ANSWER_COLUMN = {"event_champion": "name", "athlete_country": "country"}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("demo-leakage")
    shutil.copytree(EXAMPLE, root / "paris2024")
    cfg = load_config(root / "paris2024" / "tuneline.yaml",
                      [f"run.runs_dir={root / 'runs'}", "curate.card=false"])
    return run_pipeline(cfg, until="curate").artifacts["curate"]


def _rows_per_value(column: str) -> Counter[str]:
    with open(EXAMPLE / "data" / "medallists.csv", encoding="utf-8", newline="") as handle:
        return Counter(row[column].strip().lower() for row in csv.DictReader(handle))


def test_no_training_message_states_a_heldout_or_dev_answer(curated):
    from tuneline.artifacts import read_jsonl

    texts = ["\n".join(m["content"] for m in row["messages"]).lower()
             for row in read_jsonl(curated.path / "train.jsonl")]
    evaluated = [*read_jsonl(curated.path / "eval" / "heldout.jsonl"),
                 *read_jsonl(curated.path / "eval" / "dev" / "heldout.jsonl")]
    assert len(evaluated) >= 12 and len(texts) > 300
    rows = {name: _rows_per_value(column) for name, column in ANSWER_COLUMN.items()}
    for item in evaluated:
        answer = item["fact"].lower()
        entity = [value.lower() for value in item["entity"]]
        stating = [t for t in texts if answer in t and all(e in t for e in entity)]
        assert not stating, f"{item['id']} ({item['fact']}) is trained: {stating[0][:200]}"
        if rows[item["template"]][answer] <= 3:  # a champion's name, unlike a country
            mentioning = [t for t in texts if answer in t]
            assert not mentioning, f"{item['fact']} appears in training: {mentioning[0][:200]}"
    assert curated.manifest["details"]["leak_check"]["guarded_facts"] == len(
        {item["fact_id"] for item in evaluated})
