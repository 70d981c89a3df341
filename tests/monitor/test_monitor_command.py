"""`tuneline monitor`: a run's training questions against a file of live ones, real MiniLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("sklearn")

from test_drift import _paris_questions  # noqa: E402

from conftest import webhook_receiver  # noqa: E402
from tuneline.rag.prompt import rag_user_message  # noqa: E402

PROBE = Path(__file__).resolve().parents[2] / "src" / "tuneline" / "evaluate" / "probes"


def _run_folder(tmp_path: Path) -> Path:
    """A run whose curate stage trained on 300 demo athlete questions, a third in RAG format."""
    train = tmp_path / "runs" / "demo" / "curate" / "train.jsonl"
    train.parent.mkdir(parents=True)
    rows = []
    for i, question in enumerate(_paris_questions(slice(0, 300))):
        user = rag_user_message(question, []) if i % 3 == 0 else question
        rows.append({"messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": "x"}]})
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "cfg.yaml").write_text("run: {name: demo, runs_dir: runs}\n")
    return tmp_path / "runs" / "demo"


def _monitor(tmp_path: Path, live: Path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuneline.cli.main", "monitor", "cfg.yaml",
                           "--live", str(live), *more], cwd=tmp_path, capture_output=True,
                          text=True)


def test_monitor_is_quiet_on_questions_like_training_and_exits_10_on_drift(tmp_path):
    run = _run_folder(tmp_path)
    same = tmp_path / "same.jsonl"
    same.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}]}) + "\n"
                            for q in _paris_questions(slice(300, 360))))
    quiet = _monitor(tmp_path, same)
    assert quiet.returncode == 0, quiet.stderr
    assert "no drift" in quiet.stdout
    assert json.loads((run / "monitor" / "drift.json").read_text())["alert"] is False

    everyday = [json.loads(line)["question"]
                for line in (PROBE / "general.jsonl").read_text().splitlines()][:30]
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("\n".join(_paris_questions(slice(360, 390)) + everyday) + "\n")
    with webhook_receiver() as (url, received):
        loud = _monitor(tmp_path, shifted, "--webhook", url)
    assert loud.returncode == 10, loud.stdout + loud.stderr
    assert "resemble no training prompt" in " ".join(loud.stderr.split())
    drift = json.loads((run / "monitor" / "drift.json").read_text())
    assert drift["alert"] is True and drift["out_of_coverage"] > 0.3
    assert f"delivered to {url}" in loud.stdout
    assert received[0]["alerts"] == drift["alerts"] and received[0]["run"] == "demo"
    page = (run / "monitor" / "drift.html").read_text()
    outside = page.split("outside the training coverage")[1]
    assert sum(q in outside for q in everyday) >= 5  # the everyday questions are named
    assert not any(q in outside for q in _paris_questions(slice(360, 390)))
