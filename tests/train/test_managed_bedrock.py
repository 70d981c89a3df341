"""train.backend: bedrock against moto's S3, IAM and Bedrock (plus what moto lacks, faked)."""

from __future__ import annotations

import json

import pytest

from conftest import read_json, tiny_pipeline_config, write_config
from tuneline.artifacts import read_jsonl
from tuneline.errors import ConfigError, ManagedJobError

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from fakes.bedrock_extras import BASE_ANSWER, advance_jobs, bedrock_extras, jobs  # noqa: E402

REGION, BUCKET = "us-east-1", "tuneline-ft"
TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "bedrock.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}


@pytest.fixture
def role_arn(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        role = boto3.client("iam").create_role(RoleName="BedrockFineTuning",
                                               AssumeRolePolicyDocument=json.dumps(TRUST))
        yield role["Role"]["Arn"]


@pytest.fixture
def polls(monkeypatch):
    """Each wait between polls is one tick; Bedrock finishes the job on the second."""
    from tuneline.train.managed import common

    ticks = {"n": 0, "outcome": "Completed", "failure": ""}

    def tick(_seconds: float) -> None:
        ticks["n"] += 1
        if ticks["n"] >= 2:
            advance_jobs(REGION, ticks["outcome"], ticks["failure"])

    monkeypatch.setattr(common, "sleep", tick)
    return ticks


def _config(root, role_arn, exports=("openai",), **bedrock):
    data = tiny_pipeline_config(root, root / "unused-local-model")
    data["curate"].update(card=False, exports=list(exports))
    data["train"]["backend"] = "bedrock"
    data["train"]["bedrock"] = {"bucket": BUCKET, "role_arn": role_arn, "region": REGION,
                                "poll_interval_s": 0, "poll_max_interval_s": 0, **bedrock}
    return data


def _curated(root, data):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    cfg = load_config(write_config(root / "tuneline.yaml", data))
    return cfg, run_pipeline(cfg, until="curate").artifacts["curate"]


def _run_job(cfg, curated, root):
    from tuneline.train.managed.backends import run_managed_job

    out = root / "train-out"
    out.mkdir(parents=True)
    return out, run_managed_job(cfg, curated, out)


def _s3_jsonl(uri):
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"]
    return [json.loads(line) for line in body.read().decode().splitlines()]


def test_job_is_created_with_the_documented_shape_polled_and_recorded(
        tmp_path, role_arn, polls):
    cfg, curated = _curated(tmp_path, _config(tmp_path, role_arn))
    out, result = _run_job(cfg, curated, tmp_path)

    (job,) = jobs(REGION).values()
    assert job.role_arn == role_arn
    assert job.base_model_identifier == "meta.llama3-2-1b-instruct-v1:0"
    assert job.customization_type == "FINE_TUNING"
    assert job.hyper_parameters == {"epochCount": "4", "learningRate": "0.005"}  # train.*
    train_uri = job.training_data_config["s3Uri"]
    (validator,) = job.validation_data_config["validators"]
    assert train_uri == f"s3://{BUCKET}/tuneline/{job.job_name}/train.jsonl"
    assert job.output_data_config["s3Uri"] == f"s3://{BUCKET}/tuneline/{job.job_name}/output/"
    records = _s3_jsonl(train_uri)  # Llama takes prompt/completion records
    trained = curated.manifest["counts"]["train"]  # the curated training chats, one record each
    assert len(records) == trained == 28 and set(records[0]) == {"prompt", "completion"}
    assert len(_s3_jsonl(validator["s3Uri"])) == 4
    assert polls["n"] == 2  # InProgress, InProgress, Completed

    remote = read_json(out / "remote_model.json")
    assert remote["provider"] == "bedrock"
    assert remote["model_id"] == job.output_model_arn == remote["invoke_model_id"]
    assert (remote["job_id"], remote["job_name"]) == (job.job_arn, job.job_name)
    assert remote["base_model"] == "meta.llama3-2-1b-instruct-v1:0"
    assert remote["request"]["hyperParameters"] == remote["hyperparameters"]
    assert remote["data_format"] == "prompt_completion"
    metrics = remote["metrics"]
    assert metrics["loss_last"] < metrics["loss_first"] and metrics["val_loss_last"] == 0.61
    assert len(read_jsonl(out / "train_log.jsonl")) == result.counts["steps"] == 12
    assert (out / "step_wise_training_metrics.csv").is_file()
    assert [e["status"] for e in read_jsonl(out / "job_events.jsonl")] == ["InProgress",
                                                                         "Completed"]
    assert "enabled is false" in remote["provisioned_throughput"]["skipped"]
    assert "Converse is not implemented" in remote["test_invocation"]["skipped"]
    assert result.details["model_id"] == job.output_model_arn


def test_nova_takes_curates_conversation_export_as_is(tmp_path, role_arn, polls):
    data = _config(tmp_path, role_arn, exports=("openai", "bedrock"),
                   base_model_id="amazon.nova-micro-v1:0:128k",
                   hyper_parameters={"learningRateWarmupSteps": "10"}, batch_size=1)
    cfg, curated = _curated(tmp_path, data)
    out, _ = _run_job(cfg, curated, tmp_path)
    remote = read_json(out / "remote_model.json")
    assert remote["data_source"] == "curate/bedrock"
    (job,) = jobs(REGION).values()
    assert _s3_jsonl(job.training_data_config["s3Uri"])[0]["schemaVersion"] == \
        "bedrock-conversation-2024"
    assert job.hyper_parameters == {"epochCount": "4", "learningRate": "0.005",
                                    "batchSize": "1", "learningRateWarmupSteps": "10"}


def test_a_failed_job_names_the_job_and_bedrocks_message(tmp_path, role_arn, polls):
    cfg, curated = _curated(tmp_path, _config(tmp_path, role_arn))
    polls.update(outcome="Failed", failure="Validation of the training data failed: "
                                           "line 3 is not valid JSON")
    with pytest.raises(ManagedJobError) as caught:
        _run_job(cfg, curated, tmp_path)
    (name,) = jobs(REGION)
    assert f"Bedrock model customization job {name}" in str(caught.value)
    assert "Failed: Validation of the training data failed: line 3" in str(caught.value)


def test_a_missing_bucket_and_role_are_config_errors_before_any_call(tmp_path, role_arn):
    data = _config(tmp_path, role_arn)
    del data["train"]["bedrock"]["bucket"], data["train"]["bedrock"]["role_arn"]
    cfg, curated = _curated(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        _run_job(cfg, curated, tmp_path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["train.bedrock.bucket",
                                                                "train.bedrock.role_arn"]
    assert not jobs(REGION)


def test_a_bucket_that_does_not_exist_is_named(tmp_path, role_arn):
    cfg, curated = _curated(tmp_path, _config(tmp_path, role_arn, bucket="no-such-bucket"))
    with pytest.raises(ManagedJobError, match=r"s3://no-such-bucket/.*NoSuchBucket"):
        _run_job(cfg, curated, tmp_path)
    assert not jobs(REGION)


def test_a_role_arn_must_look_like_one(tmp_path):
    from tuneline.config import load_config

    data = _config(tmp_path, "BedrockFineTuning")
    with pytest.raises(ConfigError, match="train.bedrock.role_arn: .*IAM role ARN"):
        load_config(write_config(tmp_path / "bad.yaml", data))


def test_a_timeout_names_the_job_and_attaching_resumes_it(tmp_path, role_arn, polls):
    cfg, curated = _curated(tmp_path, _config(tmp_path, role_arn, timeout_s=1e-9))
    with pytest.raises(ManagedJobError, match=r"has not finished.*train.bedrock.job_name="):
        _run_job(cfg, curated, tmp_path)
    (name,) = jobs(REGION)
    attached = cfg.model_copy(deep=True)
    attached.train.bedrock.timeout_s, attached.train.bedrock.job_name = 60, name
    out, _ = _run_job(attached, curated, tmp_path / "again")
    assert read_json(out / "remote_model.json")["job_name"] == name
    assert len(jobs(REGION)) == 1


def test_provisioned_throughput_is_skipped_cleanly_where_moto_lacks_it(
        tmp_path, role_arn, polls):
    data = _config(tmp_path, role_arn, provisioned_throughput={"enabled": True})
    cfg, curated = _curated(tmp_path, data)
    out, _ = _run_job(cfg, curated, tmp_path)
    remote = read_json(out / "remote_model.json")
    assert "not implemented" in remote["provisioned_throughput"]["skipped"]
    assert remote["provisioned_model_arn"] is None
    assert remote["provisioned_throughput"]["request"]["modelId"] == remote["model_id"]


def _pipeline(tmp_path, data):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    cfg = load_config(write_config(tmp_path / "tuneline.yaml", data))
    return cfg, run_pipeline(cfg)


def test_pipeline_registers_the_custom_model_and_records_why_evaluate_skipped(
        tmp_path, role_arn, polls):
    from tuneline.registry import open_registry

    cfg, result = _pipeline(tmp_path, _config(tmp_path, role_arn))
    evaluated = result.artifacts["evaluate"]
    skipped = evaluated.manifest["details"]["skipped"]
    assert set(skipped) == {"base", "tuned"}
    assert all("Converse is not implemented" in reason for reason in skipped.values())
    assert read_json(evaluated.path / "metrics.json") == {}
    assert "tuned: not evaluated" in (evaluated.path / "report.md").read_text()

    (job,) = jobs(REGION).values()
    version = open_registry(cfg.register).get("capitals")
    assert version.meta["provider"] == "bedrock"
    assert version.meta["model_id"] == job.output_model_arn
    assert version.meta["job_id"] == job.job_arn
    assert version.meta["base_model"] == "meta.llama3-2-1b-instruct-v1:0"
    assert version.remote_model["job_name"] == job.job_name


def test_pipeline_with_throughput_and_converse_evaluates_through_bedrock(
        tmp_path, role_arn, polls):
    from tuneline.registry import open_registry

    data = _config(tmp_path, role_arn, exports=("openai", "bedrock"),
                   provisioned_throughput={"enabled": True, "model_units": 2})
    data["curate"]["bedrock_format"] = "prompt_completion"  # what the Llama base model takes
    with bedrock_extras(REGION) as seen:
        cfg, result = _pipeline(tmp_path, data)
    (job,) = jobs(REGION).values()
    (request,) = seen["throughput"]
    assert request["modelId"] == job.output_model_arn and request["modelUnits"] == 2
    assert request["provisionedModelName"] == job.output_model_name
    assert "commitmentDuration" not in request
    (provisioned,) = seen["throughputs"]

    remote = read_json(result.artifacts["train"].path / "remote_model.json")
    assert remote["provisioned_model_arn"] == remote["invoke_model_id"] == provisioned
    assert remote["test_invocation"]["ok"] and remote["test_invocation"]["answer"]

    # The job trained on curate's Bedrock export, byte for byte, and that export is the
    # curated training chats.
    curated = result.artifacts["curate"].path
    assert remote["data_source"] == "curate/bedrock"
    uploaded = boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=job.training_data_config["s3Uri"].split("/", 3)[3])["Body"].read()
    assert uploaded == (curated / "bedrock" / "train.jsonl").read_bytes()
    assert [(r["prompt"], r["completion"]) for r in _s3_jsonl(job.training_data_config["s3Uri"])
            ] == [(c["messages"][0]["content"], c["messages"][-1]["content"])
                  for c in read_jsonl(curated / "train.jsonl")]

    # Evaluate asked the provisioned custom model for 'tuned' and the base model for 'base',
    # each question once, and wrote down what each said. (The fake answers the custom model
    # with its nearest training answer, so the scores below measure evaluate's bookkeeping,
    # not a model's quality.)
    base_id = "meta.llama3-2-1b-instruct-v1:0"
    evaluated = result.artifacts["evaluate"]
    assert evaluated.manifest["details"]["models"] == {"base": base_id, "tuned": provisioned}
    assert all(call["inferenceConfig"] == {"maxTokens": cfg.evaluate.max_new_tokens,
                                           "temperature": 0.0} for call in seen["converse"])
    said = {model: {} for model in (provisioned, base_id)}
    for call in seen["converse"]:
        said[call["modelId"]][call["messages"][-1]["content"][0]["text"]] = call["answer"]
    predictions = read_jsonl(evaluated.path / "predictions.jsonl")
    questions = {p["question"] for p in predictions}
    assert set(said) == {provisioned, base_id} and set(said[base_id]) == questions
    assert set(said[provisioned]) >= questions  # and train's one test invocation
    for p in predictions:
        assert p["tuned_answer"] == said[provisioned][p["question"]]
        assert p["base_answer"] == said[base_id][p["question"]] == BASE_ANSWER
    # The metrics are those answers scored: the fake only ever says whole training answers,
    # so an answer is right exactly when it is the item's reference sentence.
    metrics = read_json(evaluated.path / "metrics.json")
    for name in ("recall", "heldout"):
        rows = [p for p in predictions if p["set"] == name]
        for variant in ("base", "tuned"):
            right = [p[f"{variant}_answer"] == p["reference"] for p in rows]
            assert metrics[variant][name]["n"] == len(rows) > 0
            assert metrics[variant][name]["accuracy"] == pytest.approx(sum(right) / len(rows))

    version = open_registry(cfg.register).get("capitals")
    assert version.meta["provisioned_model_arn"] == provisioned
