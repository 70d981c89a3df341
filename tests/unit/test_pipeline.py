"""The whole pipeline on a tiny random model, then the server answering the official client."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import read_json, serve_in_thread, tiny_pipeline_config, write_config

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    config_path = write_config(root / "tuneline.yaml", tiny_pipeline_config(root, tiny_model_dir))
    cfg = load_config(config_path)
    return cfg, config_path, run_pipeline(cfg)


def test_every_stage_writes_its_artifacts(tiny_run):
    cfg, _, result = tiny_run
    a = result.artifacts
    assert list(a) == ["ingest", "synthesize", "curate", "train", "evaluate", "register"]
    assert not any(art.skipped for art in a.values())
    assert a["ingest"].manifest["counts"]["records"] == 20
    curated = a["curate"].manifest["counts"]
    assert curated["facts_train"] + curated["facts_val"] + curated["facts_heldout"] == 20
    assert curated["train"] == 2 * curated["facts_train"]  # the last phrasing is held out
    assert curated["recall"] == curated["facts_train"]
    train = a["train"].manifest["details"]
    assert train["loss_last"] < train["loss_first"]
    assert (a["train"].path / "adapter" / "adapter_model.safetensors").is_file()
    metrics = read_json(a["evaluate"].path / "metrics.json")
    assert set(metrics) == {"base", "tuned"}
    assert metrics["tuned"]["recall"]["n"] == curated["recall"]
    recall = metrics["tuned"]["recall"]
    for key in ("accuracy", "abstention_rate", "exact_match", "token_f1", "hallucination_rate",
                "mean_answer_words"):
        lo, hi = recall["ci95"][key]
        assert lo <= recall[key] <= hi
    assert sum(c["n"] for c in recall["by_category"].values()) == recall["n"]
    assert "## Metrics (95% bootstrap intervals)" in (
        a["evaluate"].path / "report.md").read_text()
    assert (result.run_dir / "config.yaml").is_file()


def test_second_run_reuses_every_stage(tiny_run):
    from tuneline.pipeline import run_pipeline

    cfg, _, first = tiny_run
    again = run_pipeline(cfg)
    assert all(art.skipped for art in again.artifacts.values())
    assert again.artifacts["train"].output_hash == first.artifacts["train"].output_hash


def test_registered_version_records_lineage(tiny_run):
    from tuneline.registry.local import LocalRegistry

    cfg, _, result = tiny_run
    version = LocalRegistry(cfg.register.registry_dir).get("capitals")
    assert version.version == 1
    assert version.meta["base_model"] == cfg.model.base
    assert version.meta["data_hash"] == result.artifacts["curate"].output_hash
    assert (version.adapter_dir / "adapter_config.json").is_file()
    assert version.meta["metrics"] == read_json(result.artifacts["evaluate"].path / "metrics.json")


@pytest.fixture(scope="module")
def server(tiny_run):
    from tuneline.registry.local import LocalRegistry
    from tuneline.serve.app import build_app
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, _, _ = tiny_run
    version = LocalRegistry(cfg.register.registry_dir).get("capitals")
    engine = TransformersEngine.load(version.meta["base_model"], version.adapter_dir,
                                     precision="fp32")
    app = build_app({"capitals": engine, "capitals/1": engine}, default_max_tokens=8)
    with serve_in_thread(app) as base_url:
        yield base_url


def test_openai_client_gets_a_chat_completion(server):
    import httpx
    from openai import OpenAI

    health = httpx.get(server.removesuffix("/v1") + "/health").json()
    assert health == {"status": "ok", "models": ["capitals", "capitals/1"]}
    client = OpenAI(base_url=server, api_key="none")
    assert {m.id for m in client.models.list()} == {"capitals", "capitals/1"}
    reply = client.chat.completions.create(
        model="capitals", messages=[{"role": "user", "content": "What is the capital of Peru?"}],
        max_tokens=5,
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_bad_requests_get_openai_errors(server):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError, match="capitals"):
        client.chat.completions.create(model="nope", messages=messages)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="capitals", messages=[])
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model="capitals", messages=messages, max_tokens=100_000)


def test_cli_serve_hint_and_stage_verbs(tiny_run):
    import subprocess
    import sys

    _, config_path, _ = tiny_run
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli", "run", str(config_path)],
                          capture_output=True, text=True, cwd=Path(config_path).parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("skipped (unchanged; took") == 6
    assert "tuneline serve" in proc.stdout and "chat/completions" in proc.stdout
