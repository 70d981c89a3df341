"""A second tuning run measured against the promoted champion, judged by an LLM over HTTP."""

from __future__ import annotations

import json

import pytest

from conftest import read_json, serve_in_thread, tiny_pipeline_config, write_config

pytest.importorskip("torch")


def _judge_app():
    """An OpenAI-compatible judge (a fake of an external LLM) preferring shorter answers."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        a = prompt.split("Answer A", 1)[1].split("Answer B", 1)[0]
        b = prompt.split("Answer B", 1)[1]
        verdict = "A" if len(a) < len(b) else "B" if len(b) < len(a) else "TIE"
        text = f"VERDICT: {verdict}\nREASON: the shorter answer."
        return {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def test_challenger_is_gated_and_judged_against_the_champion(tiny_model_dir, tmp_path):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline
    from tuneline.registry import open_registry

    config_path = write_config(tmp_path / "tuneline.yaml",
                               tiny_pipeline_config(tmp_path, tiny_model_dir))
    first = load_config(config_path)
    run_pipeline(first)
    registry = open_registry(first.register)
    registry.promote("capitals/1")

    with serve_in_thread(_judge_app()) as url:
        second = load_config(config_path, [
            "run.name=challenger", "train.learning_rate=0.002",
            f"evaluate.judge.endpoint={json.dumps({'base_url': url, 'model': 'judge'})}",
            "evaluate.judge.max_pairs=10", "gate.max_regression.general=1.0",
        ])
        result = run_pipeline(second)

    metrics = read_json(result.artifacts["evaluate"].path / "metrics.json")
    assert set(metrics) == {"base", "tuned", "champion", "judge"}
    assert metrics["champion"]["general"]["n"] == 40
    gain = metrics["tuned"]["general"]["gain"]  # paired, question by question
    assert (gain["vs"], gain["n"]) == ("base", 40)
    assert gain["accuracy"] == pytest.approx(metrics["tuned"]["general"]["accuracy"]
                                             - metrics["base"]["general"]["accuracy"])
    assert "gain" not in metrics["champion"]["general"]
    judge = metrics["judge"]
    assert (judge["challenger"], judge["champion"]) == ("tuned", "champion")
    assert judge["n"] == 10 and judge["wins"] + judge["losses"] + judge["ties"] == 10
    judgments = (result.artifacts["evaluate"].path / "judgments.jsonl").read_text().splitlines()
    assert len(judgments) == 10
    assert {json.loads(j)["meta"]["set"] for j in judgments} > {"recall"}  # sampled across sets
    names = [c.name for c in result.gate.checks]
    assert names == ["max_regression.general", "max_regression.general (vs champion)"]
    # The new version is the candidate; the champion stays until promoted.
    assert registry.get("capitals@candidate").version == 2
    assert registry.get("capitals@champion").version == 1
    registry.promote("capitals@candidate")
    assert registry.rollback("capitals").version == 1
    html = (result.run_dir / "report.html").read_text()
    assert "LLM judge" in html and f"{judge['win_rate']:.1%}" in html
