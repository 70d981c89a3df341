"""The train stage through the real CLI: crash safety under SIGKILL, and 2 data-parallel CPU
processes (gloo) against 1."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import read_json, tiny_pipeline_config, write_config  # noqa: E402
from tuneline.artifacts import read_jsonl  # noqa: E402


def _tuneline(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tuneline.cli.main", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **kwargs)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _adapter(train_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(train_dir / "adapter" / "adapter_model.safetensors")


def _losses(train_dir: Path) -> list[float]:
    return [row["loss"] for row in read_jsonl(train_dir / "train_log.jsonl") if "loss" in row]


@pytest.fixture
def config(tmp_path, tiny_model_dir):
    def make(**train) -> Path:
        data = tiny_pipeline_config(tmp_path, tiny_model_dir)
        data["train"].update(train)
        return write_config(tmp_path / "tuneline.yaml", data)
    return make


def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(config, tmp_path):
    cfg = config(max_steps=60, batch_size=4, checkpoint_every=3, keep_checkpoints=2,
                 lora={"dropout": 0.1})
    train_dir = tmp_path / "runs" / "tiny" / "train"
    _finish(_tuneline("train", str(cfg)))
    expected_losses, expected_adapter = _losses(train_dir), _adapter(train_dir)
    assert len(expected_losses) == 60

    finished = read_json(train_dir / "manifest.json")
    kill_after = random.Random(time.time_ns()).choice(range(6, 46, 3))
    print(f"killing after checkpoint step {kill_after}")
    proc = _tuneline("train", str(cfg), "--force")
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(int(p.name.split("-")[1]) >= kill_after
                  for p in checkpoints.glob("train-*/step-*")):
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert read_json(train_dir / "manifest.json") == finished, "a stage swaps in only when done"

    out = _finish(_tuneline("train", str(cfg), "--resume"))
    resumed_from = read_json(train_dir / "manifest.json")["details"]["resumed_from_step"]
    assert resumed_from is not None and resumed_from >= kill_after, out[-2000:]
    assert _losses(train_dir) == pytest.approx(expected_losses, rel=1e-5)
    adapter = _adapter(train_dir)
    assert adapter.keys() == expected_adapter.keys()
    for name, value in expected_adapter.items():
        assert torch.allclose(adapter[name], value, atol=1e-5), name
    assert not list(checkpoints.glob("train-*/step-*")), "checkpoints are removed after success"


def test_resume_without_a_checkpoint_is_a_clear_error(config):
    proc = _tuneline("train", str(config(max_steps=2)), "--resume")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    assert "no checkpoint of this run" in out


def test_two_gloo_processes_match_one_process(config, tmp_path):
    cfg = config(max_steps=6, batch_size=8, gradient_accumulation_steps=2, checkpoint_every=0)
    train_dir = tmp_path / "runs" / "tiny" / "train"
    _finish(_tuneline("train", str(cfg)))
    single_losses, single_adapter = _losses(train_dir), _adapter(train_dir)
    single = read_json(train_dir / "manifest.json")
    shutil.rmtree(train_dir)

    _finish(_tuneline("train", str(cfg), "--num-processes", "2"))
    double = read_json(train_dir / "manifest.json")
    assert double["details"]["processes"] == 2 and single["details"]["processes"] == 1
    assert double["counts"]["tokens"] == single["counts"]["tokens"]
    assert _losses(train_dir) == pytest.approx(single_losses, rel=1e-5)
    assert double["details"]["val_loss_after"] == pytest.approx(
        single["details"]["val_loss_after"], rel=1e-5)
    # Adam divides by the gradient's running size, so summation order (all-reduce vs one
    # batch) moves a weight by up to ~2e-5 after 6 steps on some CPUs (Zen 5); a process
    # that misses the other's gradients moves them by about the learning rate (5e-3).
    for name, value in _adapter(train_dir).items():
        assert torch.allclose(value, single_adapter[name], atol=1e-4), name


def test_full_fine_tuning_runs_through_evaluate_register_and_loads_for_serving(config):
    from tuneline.config import load_config
    from tuneline.models.loading import load_for_inference
    from tuneline.pipeline import run_pipeline
    from tuneline.registry import open_registry

    cfg = load_config(config(method="full", max_steps=3, learning_rate=1e-3), [])
    result = run_pipeline(cfg)
    trained = result.artifacts["train"]
    assert trained.manifest["details"]["weights_dir"] == "model"
    assert (trained.path / "model" / "model.safetensors").is_file()
    assert "tuned" in read_json(result.artifacts["evaluate"].path / "metrics.json")
    version = open_registry(cfg.register).get(cfg.register.name)
    assert version.weights_dir.name == "model"
    model, tokenizer = load_for_inference(cfg.model.base, version.weights_dir, precision="fp32")
    from safetensors.torch import load_file

    saved = load_file(version.weights_dir / "model.safetensors")
    name = next(n for n in saved if "q_proj" in n)
    assert torch.equal(model.state_dict()[name], saved[name])
    assert tokenizer.chat_template


def test_the_stage_reports_to_tensorboard_and_mlflow_and_plots_the_loss(config, tmp_path):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    cfg = load_config(config(max_steps=4, eval_every=2, checkpoint_every=0,
                             tracking={"report_to": ["tensorboard", "mlflow"]}), [])
    trained = run_pipeline(cfg, until="train").artifacts["train"]
    assert list((trained.path / "tensorboard").glob("events.out.tfevents.*"))
    png = (trained.path / "loss_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=str(tmp_path / "runs" / "mlruns"))
    [run] = client.search_runs(client.get_experiment_by_name("tuneline").experiment_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 3  # 0, 2 and 4
    assert trained.manifest["details"]["peak_rss_mib"] > 0
