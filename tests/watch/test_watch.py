"""`tuneline watch`: a changed table is trained and registered, an unchanged one is not, a change
that fails the gate registers nothing and says why, and a new S3 object starts a run."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from conftest import tiny_pipeline_config, write_config  # noqa: E402


def _watch_once(tmp_path, config) -> str:
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli.main", "watch", str(config),
                           "--once"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def _registry(config):
    from tuneline.config import load_config
    from tuneline.registry import open_registry

    return open_registry(load_config(config).register)


def test_a_changed_table_is_registered_as_candidate_and_an_unchanged_one_is_not(
        tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    config = write_config(tmp_path / "cfg.yaml", data)
    assert "capitals changed: registered: capitals/1" in _watch_once(tmp_path, config)
    assert _watch_once(tmp_path, config).endswith("no change")
    table = tmp_path / "capitals.csv"
    table.write_text(table.read_text() + "Peru,Lima,Americas\nChile,Santiago,Americas\n")
    assert "capitals changed: registered: capitals/2" in _watch_once(tmp_path, config)
    registry = _registry(config)
    assert registry.get("capitals@candidate").version == 2
    log = (tmp_path / "runs" / "tiny" / "watch" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2  # one line per poll that found a change


def test_a_change_that_fails_the_gate_registers_nothing_and_says_why(tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["gate"] = {"min_accuracy": {"heldout": 1.0}}
    config = write_config(tmp_path / "cfg.yaml", data)
    said = _watch_once(tmp_path, config)
    assert "capitals changed: gate failed" in said
    assert "min_accuracy.heldout: tuned accuracy" in said and "required >= 1.000" in said
    assert _registry(config).names() == []
    assert _watch_once(tmp_path, config).endswith("no change")  # the same data is not retried


def test_a_new_object_under_a_watched_s3_prefix_starts_a_run(tmp_path, tiny_model_dir):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from tuneline.config import PipelineConfig
    from tuneline.watch.polling import poll_once

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    table = (tmp_path / "capitals.csv").read_text()
    incoming = tmp_path / "incoming"
    data["ingest"]["sources"][0]["path"] = str(incoming / "capitals.csv")
    data["watch"] = {"s3": [{"bucket": "team-data", "prefix": "tables/", "into": str(incoming),
                             "region": "us-east-1"}]}
    cfg = PipelineConfig.model_validate(data, context={"check_paths": False})  # as watch does
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="team-data")
        s3.put_object(Bucket="team-data", Key="tables/capitals.csv", Body=table.encode())
        first = poll_once(cfg)
        assert (first.fetched, first.outcome, first.detail) == (
            ["tables/capitals.csv"], "registered", "capitals/1")
        assert poll_once(cfg).outcome == "unchanged"
        s3.put_object(Bucket="team-data", Key="tables/capitals.csv",
                      Body=(table + "Peru,Lima,Americas\n").encode())
        s3.put_object(Bucket="team-data", Key="tables/notes/readme.txt", Body=b"not a source")
        second = poll_once(cfg)
    assert sorted(second.fetched) == ["tables/capitals.csv", "tables/notes/readme.txt"]
    assert (second.changed, second.outcome, second.detail) == (
        ["capitals"], "registered", "capitals/2")
    assert (incoming / "notes" / "readme.txt").read_bytes() == b"not a source"
    assert "Peru,Lima" in (incoming / "capitals.csv").read_text()


def test_a_drift_alert_in_the_recorded_traffic_starts_a_run(tmp_path, tiny_model_dir):
    """watch.on_drift: the server's recorded questions drift from the run's baseline → the
    pipeline runs although no source changed (it registers nothing new: the data is the same),
    the report is written, and a drift that goes on does not start another run."""
    pytest.importorskip("sentence_transformers")
    import json
    import time
    from pathlib import Path

    from tuneline.config import PipelineConfig
    from tuneline.monitor.traffic import TrafficStore, traffic_db_path
    from tuneline.rag.embed import Embedder
    from tuneline.watch.polling import poll_once

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["evaluate"]["drift_baseline"] = True
    data["watch"] = {"on_drift": True}
    cfg = PipelineConfig.model_validate(data)
    assert poll_once(cfg).detail == "capitals/1"  # first poll: trains, no traffic yet
    probe = Path(__file__).resolve().parents[2] / "src/tuneline/evaluate/probes/general.jsonl"
    everyday = [json.loads(line)["question"] for line in probe.read_text().splitlines()][:30]
    vectors = Embedder(cfg.index.embedder).embed(everyday)
    TrafficStore(traffic_db_path(cfg)).add([
        (time.time(), "capitals", 200, 0.1, None, 0, 5, None, v.tobytes()) for v in vectors])
    drifted = poll_once(cfg)
    assert drifted.changed and drifted.changed[0].startswith("drift (")
    assert "resemble no training prompt" in drifted.changed[0]
    assert (drifted.outcome, drifted.detail) == ("no new version", "capitals/1")
    assert (cfg.run.runs_dir / "tiny" / "monitor" / "drift.html").is_file()
    assert poll_once(cfg).outcome == "unchanged"  # the same drift: no second run
