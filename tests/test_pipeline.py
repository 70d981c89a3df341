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
    assert list(a) == ["ingest", "synthesize", "curate", "train", "evaluate", "track",
                       "register"]
    assert not any(art.skipped for art in a.values())
    assert a["ingest"].manifest["counts"]["records"] == 20
    curated = a["curate"].manifest["counts"]
    assert (curated["facts_train"] + curated["facts_val"] + curated["facts_heldout"]
            + curated["facts_dev"]) == 20
    assert curated["train"] == 2 * curated["facts_train"]  # the last phrasing is held out
    # every trained fact is asked once, in the test recall set or (disjoint) the dev one
    assert curated["recall"] + curated["dev:recall"] == curated["facts_train"]
    assert curated["dev:recall"] >= 1 and curated["dev:heldout"] == curated["facts_dev"] >= 1
    train = a["train"].manifest["details"]
    assert train["loss_last"] < train["loss_first"]
    assert (a["train"].path / "adapter" / "adapter_model.safetensors").is_file()
    metrics = read_json(a["evaluate"].path / "metrics.json")
    assert set(metrics) == {"base", "tuned"}
    assert metrics["tuned"]["recall"]["n"] == curated["recall"]
    general = metrics["tuned"]["general"]  # the packaged forgetting probe
    assert general["n"] == 40 and {"geography", "instruction"} <= set(general["by_category"])
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


def test_a_training_change_re_answers_only_the_tuned_model(tiny_run, tmp_path):
    from tuneline.artifacts import read_jsonl
    from tuneline.pipeline import run_pipeline

    cfg, _, first = tiny_run
    changed = cfg.model_copy(update={
        "run": cfg.run.model_copy(update={"name": "tiny-lr", "runs_dir": tmp_path}),
        "train": cfg.train.model_copy(update={"learning_rate": 1e-3})})
    again = run_pipeline(changed, until="evaluate").artifacts["evaluate"]
    questions = again.manifest["counts"]["questions"]
    assert again.manifest["details"]["cached_answers"] == {"base": questions}
    before = read_jsonl(first.artifacts["evaluate"].path / "predictions.jsonl")
    after = read_jsonl(again.path / "predictions.jsonl")
    assert [p["base_answer"] for p in after] == [p["base_answer"] for p in before]


def test_answers_cut_at_their_budget_are_counted_and_reported(tiny_run, tmp_path, capsys):
    from tuneline.pipeline import run_pipeline

    cfg, _, _ = tiny_run
    one_token = cfg.model_copy(update={
        "run": cfg.run.model_copy(update={"name": "tiny-cut", "runs_dir": tmp_path}),
        "evaluate": cfg.evaluate.model_copy(update={"max_new_tokens": 1})})
    capsys.readouterr()
    evaluated = run_pipeline(one_token, until="evaluate").artifacts["evaluate"]
    questions = evaluated.manifest["counts"]["questions"]
    assert evaluated.manifest["details"]["answers_cut"]["tuned"] == questions
    err = capsys.readouterr().err
    assert f"evaluate: {questions} tuned answers reached their token budget" in err
    assert "base answers reached" not in err  # the base model rambling is no news


def test_registered_version_records_lineage(tiny_run):
    from tuneline.registry import open_registry

    cfg, _, result = tiny_run
    registry = open_registry(cfg.register)
    version = registry.get("capitals@candidate")
    assert version.version == 1 and version.aliases == ("candidate",)
    assert version.meta["base_model"] == cfg.model.base
    assert version.meta["data_hash"] == result.artifacts["curate"].output_hash
    assert version.meta["gate"]["passed"] is True
    assert version.meta["code_version"].startswith("0.")
    assert version.tags["gate"] == "passed"
    assert version.tags["data_hash"] == version.meta["data_hash"]
    assert (version.adapter_dir / "adapter_config.json").is_file()
    assert read_json(version.path / "metrics.json") == read_json(
        result.artifacts["evaluate"].path / "metrics.json")
    for name in ("report.html", "dataset_card.md", "config.yaml", "gate.json"):
        assert (version.path / name).is_file(), name
    # The version's MLflow run: config params, per-step training loss, evaluation metrics.
    run = registry.client.get_run(version.meta["run_id"])
    assert run.data.params["train.learning_rate"] == str(cfg.train.learning_rate)
    steps = registry.client.get_metric_history(run.info.run_id, "train.loss")
    assert [m.step for m in steps] == list(range(1, len(steps) + 1)) and len(steps) > 1
    assert "tuned.recall.accuracy" in run.data.metrics


@pytest.fixture(scope="module")
def server(tiny_run):
    from tuneline.registry import open_registry
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, _, _ = tiny_run
    version = open_registry(cfg.register).get("capitals")
    engine = TransformersEngine.load(version.meta["base_model"], version.adapter_dir,
                                     precision="fp32")
    app = build_app({"capitals": engine, "capitals/1": engine}, ServeConfig(max_tokens_default=8))
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
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli.main", "run", str(config_path)],
                          capture_output=True, text=True, cwd=Path(config_path).parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("skipped (unchanged; took") == 7
    assert "tuneline serve" in proc.stdout and "chat/completions" in proc.stdout


def test_cli_registry_promote_then_serve_champion(tiny_run):
    import subprocess
    import sys

    import httpx

    from conftest import tuneline_serve

    _, config_path, _ = tiny_run
    folder = Path(config_path).parent

    def tuneline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tuneline.cli.main", *args],
                              capture_output=True, text=True, cwd=folder)

    listed = tuneline("registry", "list", str(config_path))
    assert listed.returncode == 0, listed.stderr
    assert "capitals/1" in listed.stdout and "@candidate" in listed.stdout
    no_champion = tuneline("registry", "rollback", "capitals", str(config_path))
    assert no_champion.returncode == 6 and "no earlier champion" in no_champion.stderr
    promoted = tuneline("registry", "promote", "capitals@candidate", str(config_path))
    assert promoted.returncode == 0, promoted.stderr
    assert "capitals/1 is now @champion" in promoted.stdout
    shown = tuneline("registry", "show", "capitals@champion", str(config_path))
    assert "@champion" in shown.stdout and "data_hash" in shown.stdout
    assert "gate" in shown.stdout and "passed" in shown.stdout
    with tuneline_serve(str(config_path), "--model", "capitals@champion") as base_url:
        names = {m["id"] for m in httpx.get(f"{base_url}/models").json()["data"]}
    assert {"capitals@champion", "capitals/1"} <= names
