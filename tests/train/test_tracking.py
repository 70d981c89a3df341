"""Training metric sinks: TensorBoard events, MLflow runs read back, and the loss-curve PNG."""

from __future__ import annotations

import sys

import pytest

from tuneline.errors import MissingDependencyError
from tuneline.train.config import TrackingConfig
from tuneline.train.tracking import (
    TENSORBOARD_DIR,
    mlflow_tracking_uri,
    open_tracker,
    plot_loss_curve,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOSSES = [(1, 2.5), (2, 2.0), (3, 1.25)]
PARAMS = {"learning_rate": 0.001, "lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}}


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A fresh MLflow file store; the environment's MLFLOW_TRACKING_URI must not leak in."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def _mlflow_config(uri: str) -> TrackingConfig:
    return TrackingConfig(report_to=["mlflow"], mlflow_tracking_uri=uri,
                          mlflow_experiment="tests")


def _only_run(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tests")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_tensorboard_events_read_back(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrackingConfig(report_to=["tensorboard"])
    with open_tracker(config, tmp_path / "stage", tmp_path, "tiny", PARAMS) as tracker:
        for step, loss in LOSSES:
            tracker.log(step, {"loss": loss, "lr": 0.001 * step})
        tracker.log(3, {"val_loss": 1.5})
    assert tracker.sinks == ["tensorboard"] and tracker.mlflow_run_id is None

    events = EventAccumulator(str(tmp_path / "stage" / TENSORBOARD_DIR))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "lr", "val_loss"}
    assert [(e.step, e.value) for e in events.Scalars("loss")] == LOSSES  # exact in float32
    assert [(e.step, e.value) for e in events.Scalars("val_loss")] == [(3, 1.5)]


def test_mlflow_run_has_params_and_metric_history(tmp_path, file_store):
    pytest.importorskip("mlflow")
    png = plot_loss_curve([{"step": s, "loss": v} for s, v in LOSSES], tmp_path / "loss.png", "t")

    with open_tracker(_mlflow_config(file_store), tmp_path / "stage", tmp_path, "tiny",
                      PARAMS) as tracker:
        for step, loss in LOSSES:
            tracker.log(step, {"loss": loss})
        if png is not None:
            tracker.log_artifact(png)

    client, run = _only_run(file_store)
    assert run.info.run_id == tracker.mlflow_run_id
    assert run.info.run_name == "tiny"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"learning_rate": "0.001", "lora.r": "8",
                               "lora.target_modules": "['q_proj', 'v_proj']"}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == LOSSES
    if png is not None:
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["loss.png"]


def test_exception_inside_the_context_marks_the_run_failed(tmp_path, file_store):
    pytest.importorskip("mlflow")
    with pytest.raises(RuntimeError, match="boom"), open_tracker(
        _mlflow_config(file_store), tmp_path / "stage", tmp_path, "tiny", {}
    ) as tracker:
        tracker.log(1, {"loss": 2.0})
        raise RuntimeError("boom")
    _, run = _only_run(file_store)
    assert run.info.status == "FAILED"
    assert tracker.closed


def test_default_store_is_under_runs_dir_unless_the_environment_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_tracking_uri(TrackingConfig(), tmp_path) == (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert mlflow_tracking_uri(TrackingConfig(), tmp_path) == "http://mlflow.internal:5000"
    explicit = TrackingConfig(mlflow_tracking_uri="sqlite:///x.db")
    assert mlflow_tracking_uri(explicit, tmp_path) == "sqlite:///x.db"


def test_no_sinks_is_a_no_op(tmp_path):
    with open_tracker(TrackingConfig(), tmp_path / "stage", tmp_path, "tiny", {}) as tracker:
        tracker.log(1, {"loss": 1.0})
        tracker.log_artifact(tmp_path / "missing.png")
    assert tracker.sinks == []
    assert not (tmp_path / "stage").exists()


def test_missing_mlflow_names_the_track_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"tuneline\[track\]"):
        open_tracker(_mlflow_config("file:///unused"), tmp_path, tmp_path, "tiny", {})


def test_loss_curve_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"step": s, "loss": 3.0 / s} for s in range(1, 61)]
    rows += [{"step": s, "val_loss": v} for s, v in [(0, 3.2), (20, 1.1), (40, 0.9), (60, 1.0)]]
    out = plot_loss_curve(rows, tmp_path / "plots" / "loss_curve.png", "tiny: loss")
    assert out == tmp_path / "plots" / "loss_curve.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    # Same losses, same bytes (no timestamp in the PNG).
    again = plot_loss_curve(rows, tmp_path / "again.png", "tiny: loss")
    assert again is not None and again.read_bytes() == data


def test_loss_curve_without_matplotlib_or_losses_returns_none(tmp_path, monkeypatch):
    assert plot_loss_curve([], tmp_path / "empty.png", "t") is None
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert plot_loss_curve([{"step": 1, "loss": 1.0}], tmp_path / "x.png", "t") is None
    assert not (tmp_path / "x.png").exists()
