"""What the server records of its traffic (real HTTP, tiny model, real MiniLM), the store's
bound under a burst, and `tuneline monitor --traffic` testing recorded declines against the
version's evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sentence_transformers")
pytest.importorskip("sklearn")
from openai import OpenAI  # noqa: E402
from test_drift import _paris_questions  # noqa: E402

from conftest import CAPITALS, serve_in_thread, webhook_receiver  # noqa: E402
from tuneline.monitor.traffic import PRUNE_EVERY, TrafficRecorder, TrafficStore  # noqa: E402


def _row(ts: float, i: int) -> tuple:
    return (ts, "m", 200, 0.1, None, 0, 3, None, bytes(8 * [i % 256]))


def test_the_store_holds_its_bound_under_a_10000_request_burst(tmp_path):
    store = TrafficStore(tmp_path / "traffic.db", max_rows=1000)
    now = time.time()
    for start in range(0, 10_000, 50):
        store.add([_row(now, i) for i in range(start, start + 50)])
        assert store.count() <= 1000 + PRUNE_EVERY
    store.prune()
    assert store.count() == 1000
    newest = store.window(1)[0]
    assert newest["embedding"] == bytes(8 * [9999 % 256])  # the newest rows are the ones kept

    aged = TrafficStore(tmp_path / "aged.db", max_age_days=1)
    aged.add([_row(now - 2 * 86400, 1), _row(now - 3600, 2)])
    aged.prune()
    assert aged.count() == 1


def test_the_server_records_each_answered_question_and_its_text_only_when_asked(
        tmp_path, tiny_model_dir):
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    for keep_text in (False, True):
        store = TrafficStore(tmp_path / f"traffic-{keep_text}.db")
        recorder = TrafficRecorder(store, "embedded:all-minilm-l6-v2", "I don't know.",
                                   keep_text=keep_text)
        engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
        app = build_app({"tiny": engine}, ServeConfig(max_tokens_default=4), traffic=recorder)
        with serve_in_thread(app) as url:
            client = OpenAI(base_url=url, api_key="none", max_retries=0)
            for country, _, _ in CAPITALS[:6]:
                client.chat.completions.create(model="tiny", messages=[
                    {"role": "user", "content": f"What is the capital of {country}?"}])
        # The server's shutdown closes the recorder too, but its thread is only waited on for
        # 10 s; on a busy machine the nice-19 recorder (loading MiniLM) takes longer.
        recorder.close()
        rows = store.window()
        assert len(rows) == 6 and recorder.dropped == recorder.failed == 0
        assert {r["model"] for r in rows} == {"tiny"} and {r["status"] for r in rows} == {200}
        assert all(r["latency_s"] > 0 and r["passages"] is None for r in rows)
        assert all(len(r["embedding"]) == 384 * 4 for r in rows)  # MiniLM, float32
        questions = [r["question"] for r in rows]
        if keep_text:
            assert questions[0] == "What is the capital of France?"
        else:
            assert questions == [None] * 6


def _run_with_baseline(tmp_path: Path, abstention: float) -> Path:
    """A run folder whose evaluate/drift-baseline came from 200 demo athlete questions and
    an evaluation that declined `abstention` of its answers; its config records traffic."""
    from tuneline.monitor.baseline import write_baseline

    run = tmp_path / "runs" / "demo"
    train = run / "curate" / "train.jsonl"
    train.parent.mkdir(parents=True)
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": "x"}]})
                             + "\n" for q in _paris_questions(slice(0, 200))))
    declined = int(abstention * 100)
    predictions = [{"set": "heldout", "tuned_answer": "x", "tuned_abstained": i < declined}
                   for i in range(100)]
    write_baseline(train, predictions, False, "embedded:all-minilm-l6-v2",
                   run / "evaluate" / "drift-baseline")
    (tmp_path / "cfg.yaml").write_text(
        "run: {name: demo, runs_dir: runs}\nserve: {traffic: {enabled: true}}\n")
    return run


def test_monitor_traffic_tests_the_recorded_declines_against_the_evaluation(tmp_path):
    from tuneline.rag.embed import Embedder

    run = _run_with_baseline(tmp_path, abstention=0.05)
    questions = _paris_questions(slice(200, 240))
    vectors = Embedder("embedded:all-minilm-l6-v2").embed(questions)
    store = TrafficStore(run / "traffic.db")

    def monitor() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tuneline.cli.main", "monitor", "cfg.yaml",
                               "--traffic"], cwd=tmp_path, capture_output=True, text=True)

    store.add([(time.time(), "demo", 200, 0.2, None, int(i % 20 == 0), 8, None, v.tobytes())
               for i, v in enumerate(vectors)])
    quiet = monitor()
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    drift = json.loads((run / "monitor" / "drift.json").read_text())
    assert drift["rates"][0]["name"] == "abstention" and drift["rates"][0]["n"] == 40

    store.add([(time.time(), "demo", 200, 0.2, None, 1, 4, None, v.tobytes())
               for v in vectors[:30]])  # 30 of the same questions, now declined
    loud = monitor()
    assert loud.returncode == 10, loud.stdout + loud.stderr
    assert "abstention: 46% of 70 live requests against 5%" in " ".join(loud.stderr.split())


def _gauges(text: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith("tuneline_drift_")}


def test_the_server_checks_its_recorded_traffic_and_sets_the_drift_gauges(tmp_path,
                                                                        tiny_model_dir):
    import httpx

    from tuneline.monitor.drift import DriftBaseline
    from tuneline.rag.embed import Embedder
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    run = _run_with_baseline(tmp_path, abstention=0.05)
    baseline = DriftBaseline.load(run / "evaluate" / "drift-baseline")
    probe = Path(__file__).resolve().parents[2] / "src/tuneline/evaluate/probes/general.jsonl"
    everyday = [json.loads(line)["question"] for line in probe.read_text().splitlines()][:30]
    store = TrafficStore(tmp_path / "traffic.db")
    store.add([(time.time(), "tiny", 200, 0.1, None, 0, 5, None, v.tobytes())
               for v in Embedder("embedded:all-minilm-l6-v2").embed(everyday)])
    recorder = TrafficRecorder(store, "embedded:all-minilm-l6-v2", None)
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    with webhook_receiver() as (hook, posted):
        settings = ServeConfig(traffic={"drift_every_s": 3600, "drift_webhook": hook})
        app = build_app({"tiny": engine}, settings, traffic=recorder, drift_baseline=baseline)
        with serve_in_thread(app) as url:
            deadline = time.time() + 60
            while time.time() < deadline:  # the first check runs as the server starts
                gauges = _gauges(httpx.get(url.removesuffix("/v1") + "/metrics").text)
                if gauges.get("tuneline_drift_checked_timestamp_seconds") and posted:
                    break
                time.sleep(0.2)
    assert len(posted) == 1 and any("resemble no training prompt" in a
                                    for a in posted[0]["alerts"])
    assert gauges["tuneline_drift_alert"] == 1.0 and gauges["tuneline_drift_window"] == 30.0
    assert gauges["tuneline_drift_out_of_coverage"] > 0.3
    assert gauges["tuneline_drift_abstention"] == 0.0
