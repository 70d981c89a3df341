"""train.backend: openai against a local fake of OpenAI's documented endpoints, over real HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import read_json, serve_in_thread, tiny_pipeline_config, write_config
from fakes.openai_fake import BASE_ANSWER, FakeOpenAI
from tuneline.artifacts import read_jsonl
from tuneline.errors import ConfigError, ManagedJobError

pytest.importorskip("openai")
pytest.importorskip("fastapi")

KEY_ENV = "TUNELINE_TEST_OPENAI_KEY"


@pytest.fixture
def fake():
    return FakeOpenAI()


@pytest.fixture
def base_url(fake, monkeypatch):
    monkeypatch.setenv(KEY_ENV, fake.api_key)
    with serve_in_thread(fake.app()) as url:
        yield url


def _config(root, base_url, **openai):
    data = tiny_pipeline_config(root, root / "unused-local-model")
    data["curate"]["card"] = False  # the card loads the local tokenizer; nothing here needs it
    data["train"]["backend"] = "openai"
    data["train"]["openai"] = {"base_url": base_url, "api_key_env": KEY_ENV,
                               "poll_interval_s": 0, "poll_max_interval_s": 0, **openai}
    return data


def _load(root, data):
    from tuneline.config import load_config

    return load_config(write_config(root / "tuneline.yaml", data))


@pytest.fixture
def curated_cfg(tmp_path, base_url):
    from tuneline.pipeline import run_pipeline

    cfg = _load(tmp_path, _config(tmp_path, base_url))
    return cfg, run_pipeline(cfg, until="curate").artifacts["curate"]


def _run_job(cfg, curated, tmp_path):
    from tuneline.train.managed.backends import run_managed_job

    out = tmp_path / "train-out"
    out.mkdir(parents=True)
    return out, run_managed_job(cfg, curated, out)


def test_job_is_created_with_the_documented_shape_and_polled_to_a_model(
        curated_cfg, fake, tmp_path):
    cfg, curated = curated_cfg
    out, result = _run_job(cfg, curated, tmp_path)

    uploads = [body for method, path, body in fake.requests if path == "/v1/files"]
    assert [u["purpose"] for u in uploads] == ["fine-tune", "fine-tune"]
    assert [u["filename"] for u in uploads] == ["train.jsonl", "val.jsonl"]
    (body,) = [body for method, path, body in fake.requests if path == "/v1/fine_tuning/jobs"]
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 4, "batch_size": 8, "learning_rate_multiplier": "auto"}}}  # from train.*
    assert body["suffix"] == "tiny" and body["seed"] == 0
    assert body["training_file"] != body["validation_file"]
    polls = [p for m, p, _ in fake.requests if m == "GET" and p.startswith("/v1/fine_tuning")]
    assert len(polls) >= 4  # validating_files -> queued -> running -> running -> succeeded

    remote = read_json(out / "remote_model.json")
    job = fake.jobs[remote["job_id"]]
    assert remote["provider"] == "openai"
    assert remote["model_id"] == job["fine_tuned_model"]
    assert remote["model_id"].startswith("ft:gpt-4o-mini-2024-07-18:org-fake:tiny:")
    assert remote["base_model"] == "gpt-4o-mini-2024-07-18"
    assert remote["hyperparameters"] == {"n_epochs": 4, "batch_size": 8,
                                         "learning_rate_multiplier": 1.8}  # 'auto' resolved
    assert remote["endpoint"].rstrip("/") == cfg.train.openai.base_url
    metrics = remote["metrics"]
    total = 4 * -(-32 // 8)  # epochs x ceil(32 examples / batch 8)
    assert metrics["steps"] == total == result.counts["steps"]
    assert metrics["loss_last"] < metrics["loss_first"]
    assert "valid_loss_last" in metrics
    assert len(read_jsonl(out / "train_log.jsonl")) == total
    messages = [e["message"] for e in read_jsonl(out / "job_events.jsonl")]
    assert messages[0].startswith("Validating training file")
    assert "Fine-tuning job started" in messages and messages[-1].endswith("completed")
    assert result.details["model_id"] == remote["model_id"]
    assert result.counts["tokens"] == job["trained_tokens"]


def test_overrides_replace_the_train_defaults(tmp_path):
    from tuneline.train.managed.openai_job import job_request

    data = _config(tmp_path, "http://127.0.0.1:9/v1", n_epochs="auto", batch_size=2,
                   learning_rate_multiplier=0.5, suffix="caps-v2", seed=7)
    request = job_request(_load(tmp_path, data), {"training_file": "file-1"})
    assert request["method"]["supervised"]["hyperparameters"] == {
        "n_epochs": "auto", "batch_size": 2, "learning_rate_multiplier": 0.5}
    assert (request["suffix"], request["seed"], request["training_file"]) == ("caps-v2", 7,
                                                                               "file-1")
    assert "validation_file" not in request and "hyperparameters" not in request


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_a_failed_job_names_the_job_and_the_providers_message(curated_cfg, fake, tmp_path,
                                                              outcome):
    cfg, curated = curated_cfg
    fake.outcome = outcome
    with pytest.raises(ManagedJobError) as caught:
        _run_job(cfg, curated, tmp_path)
    (job_id,) = fake.jobs
    assert f"OpenAI fine-tuning job {job_id} {outcome}" in str(caught.value)
    if outcome == "failed":
        assert "invalid training file" in str(caught.value)
        assert "code invalid_training_file, param training_file" in str(caught.value)


def test_a_missing_api_key_is_a_config_error(curated_cfg, monkeypatch, tmp_path):
    cfg, curated = curated_cfg
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"train.openai.api_key_env: .*{KEY_ENV} is not set"):
        _run_job(cfg, curated, tmp_path)


def test_a_rejected_api_key_says_so(curated_cfg, monkeypatch, tmp_path):
    cfg, curated = curated_cfg
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    with pytest.raises(ManagedJobError, match=r"refused uploading train.jsonl \(HTTP 401\): "
                                              r"Incorrect API key.*Check the API key"):
        _run_job(cfg, curated, tmp_path)


def test_a_timeout_names_the_job_and_attaching_resumes_it(curated_cfg, fake, tmp_path):
    cfg, curated = curated_cfg
    impatient = cfg.model_copy(deep=True)
    impatient.train.openai.timeout_s = 1e-9
    with pytest.raises(ManagedJobError, match=r"has not finished.*train.openai.job_id=ftjob-"):
        _run_job(impatient, curated, tmp_path)
    (job_id,) = fake.jobs
    attached = cfg.model_copy(deep=True)
    attached.train.openai.job_id = job_id
    out, _ = _run_job(attached, curated, tmp_path / "again")
    assert read_json(out / "remote_model.json")["job_id"] == job_id
    assert len(fake.jobs) == 1  # no second job, no second upload
    assert sum(p == "/v1/files" for _, p, _ in fake.requests) == 2


def test_result_files_are_read_base64_or_plain():
    from tuneline.train.managed.openai_job import decode_results

    text = "step,train_loss\n1,2.5\n"
    assert decode_results(text.encode()) == text
    assert decode_results(__import__("base64").b64encode(text.encode())) == text


def test_the_fake_rejects_requests_off_the_documented_shape(fake, base_url):
    import openai

    client = openai.OpenAI(api_key=fake.api_key, base_url=base_url)
    no_answer = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    with pytest.raises(openai.BadRequestError, match="no assistant message"):
        client.files.create(file=("t.jsonl", no_answer), purpose="fine-tune")
    good = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}]}).encode()
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("t.jsonl", good), purpose="fine-tuning")
    file_id = client.files.create(file=("t.jsonl", good), purpose="fine-tune").id
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    bad_bodies = [
        {"model": "gpt-4o-mini-2024-07-18"},  # no training_file
        {"model": "gpt-4o-mini-2024-07-18", "training_file": file_id, "epochs": 3},
        {"model": "gpt-4o-mini-2024-07-18", "training_file": file_id,
         "method": {"type": "supervised", "supervised": {"hyperparameters": {"lr": 1}}}},
        {"model": "gpt-4o-mini-2024-07-18", "training_file": file_id,
         "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
        {"model": "not-a-model", "training_file": file_id},
    ]
    for body in bad_bodies:
        response = httpx.post(f"{base_url}/fine_tuning/jobs", json=body, headers=headers)
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert not fake.jobs


@pytest.fixture
def pipeline(tmp_path, base_url, fake):
    from tuneline.pipeline import run_pipeline

    cfg = _load(tmp_path, _config(tmp_path, base_url))
    return cfg, run_pipeline(cfg)


def test_the_pipeline_trains_evaluates_and_registers_the_remote_model(pipeline, fake):
    from tuneline.registry import open_registry

    cfg, result = pipeline
    remote = read_json(result.artifacts["train"].path / "remote_model.json")
    assert not (result.artifacts["train"].path / "adapter").exists()

    evaluated = result.artifacts["evaluate"]
    assert evaluated.manifest["details"]["models"] == {"base": "gpt-4o-mini-2024-07-18",
                                                       "tuned": remote["model_id"]}
    chats = [body for _, path, body in fake.requests if path == "/v1/chat/completions"]
    n_questions = evaluated.manifest["counts"]["questions"]
    assert len(chats) == 2 * n_questions
    assert all(c["max_tokens"] == cfg.evaluate.max_new_tokens and c["temperature"] == 0
               for c in chats)
    metrics = read_json(evaluated.path / "metrics.json")
    assert metrics["tuned"]["recall"]["accuracy"] > metrics["base"]["recall"]["accuracy"] == 0
    predictions = read_jsonl(evaluated.path / "predictions.jsonl")
    assert {p["base_answer"] for p in predictions} == {BASE_ANSWER}

    version = open_registry(cfg.register).get("capitals")
    assert version.meta["provider"] == "openai"
    assert version.meta["model_id"] == remote["model_id"]
    assert version.meta["job_id"] == remote["job_id"]
    assert version.meta["base_model"] == "gpt-4o-mini-2024-07-18"
    assert version.remote_model == remote
    assert read_json(version.path / "metrics.json") == metrics
    assert not version.adapter_dir.exists()


def test_a_second_run_reuses_the_job_instead_of_paying_again(pipeline, fake):
    from tuneline.pipeline import run_pipeline

    cfg, _ = pipeline
    again = cfg.model_copy(deep=True)
    again.train.openai.poll_interval_s = 5  # polling settings are not in the fingerprint
    rerun = run_pipeline(again)
    assert all(artifact.skipped for artifact in rerun.artifacts.values())
    assert len(fake.jobs) == 1


def test_a_missing_sdk_names_the_extra(monkeypatch):
    import sys

    from tuneline.config import PipelineConfig
    from tuneline.errors import MissingDependencyError
    from tuneline.train.managed.openai_job import openai_client

    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'tuneline\[openai\]'"):
        openai_client(PipelineConfig().train.openai)
