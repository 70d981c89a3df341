"""Training metric sinks (TensorBoard event files, MLflow runs) and the loss-curve PNG."""

from __future__ import annotations

import importlib
import math
import os
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Protocol

from tuneline._optional import require
from tuneline.errors import ConfigError, MissingDependencyError
from tuneline.train.config import TrackingConfig

TENSORBOARD_DIR = "tensorboard"
MLRUNS_DIR = "mlruns"
_MAX_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
_TRAIN_COLOR, _VAL_COLOR = "#4C72B0", "#C44E52"


class _Sink(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def close(self, status: str) -> None: ...


class TrainingTracker:
    """Sends each step's metrics to every configured sink; does nothing when none is configured.

    Open it on the main process only. Used as a context manager, it closes the MLflow run as
    FINISHED, FAILED on an exception, or KILLED on Ctrl-C.
    """

    def __init__(self, tensorboard: _TensorBoardSink | None = None,
                 mlflow: _MlflowSink | None = None) -> None:
        self.tensorboard = tensorboard
        self.mlflow = mlflow
        self.closed = False

    @property
    def sinks(self) -> list[str]:
        """Names of the open sinks, in `report_to` spelling."""
        return [name for name, sink in self._named() if sink is not None]

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run id (for the manifest), or None without an MLflow sink."""
        return self.mlflow.run_id if self.mlflow else None

    @property
    def mlflow_tracking_uri(self) -> str | None:
        """Where the MLflow run lives, or None without an MLflow sink."""
        return self.mlflow.tracking_uri if self.mlflow else None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` (name → value) at optimizer step `step` in every sink."""
        values = {name: float(value) for name, value in metrics.items() if value is not None}
        if not values:
            return
        for sink in self._sinks():
            sink.log(step, values)

    def log_artifact(self, path: Path) -> None:
        """Attach a file (e.g. the loss-curve PNG) to the MLflow run; TensorBoard ignores it."""
        if self.mlflow is not None:
            self.mlflow.log_artifact(Path(path))

    def close(self, status: str = "FINISHED") -> None:
        """Flush every sink and end the MLflow run with `status` (FINISHED, FAILED, KILLED).

        Closing twice does nothing the second time.
        """
        if self.closed:
            return
        self.closed = True
        for sink in self._sinks():
            sink.close(status)

    def __enter__(self) -> TrainingTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close("FINISHED")
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def _named(self) -> list[tuple[str, _Sink | None]]:
        return [("tensorboard", self.tensorboard), ("mlflow", self.mlflow)]

    def _sinks(self) -> Iterator[_Sink]:
        return (sink for _, sink in self._named() if sink is not None)


def open_tracker(tracking: TrackingConfig, stage_dir: Path, runs_dir: Path, run_name: str,
                 params: dict[str, Any]) -> TrainingTracker:
    """Open the sinks `tracking.report_to` lists.

    Args:
        tracking: the `train.tracking` config section.
        stage_dir: the train stage's (temporary) folder; TensorBoard writes `tensorboard/` there.
        runs_dir: `run.runs_dir`; the default MLflow store is `<runs_dir>/mlruns`.
        run_name: the MLflow run name (the pipeline's `run.name`).
        params: logged as MLflow params; nested dicts become dotted keys (`lora.r`).

    Raises:
        MissingDependencyError: a listed sink's package is not installed (`tuneline[track]`).
        ConfigError: the MLflow tracking URI cannot be opened.
    """
    tensorboard: _TensorBoardSink | None = None
    mlflow: _MlflowSink | None = None
    try:
        if "tensorboard" in tracking.report_to:
            tensorboard = _TensorBoardSink(stage_dir / TENSORBOARD_DIR)
        if "mlflow" in tracking.report_to:
            mlflow = _MlflowSink.start(tracking, runs_dir, run_name, params)
    except BaseException:
        if tensorboard is not None:
            tensorboard.close("FAILED")
        raise
    return TrainingTracker(tensorboard, mlflow)


def mlflow_tracking_uri(tracking: TrackingConfig, runs_dir: Path) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else a file store at `<runs_dir>/mlruns`.

    MLflow 3.7+ defaults to `sqlite:///mlflow.db`, but its SQL store needs alembic and
    SQLAlchemy, which mlflow-skinny does not install; the file store needs nothing more.
    """
    return (tracking.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            or (Path(runs_dir) / MLRUNS_DIR).resolve().as_uri())


class _TensorBoardSink:
    def __init__(self, log_dir: Path) -> None:
        require("torch")
        _import_track("tensorboard", "tensorboard")
        writer_class = require("torch.utils.tensorboard").SummaryWriter
        self.writer = writer_class(log_dir=str(log_dir), flush_secs=10)  # live dashboards

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def log_artifact(self, path: Path) -> None:
        return None

    def close(self, status: str) -> None:
        self.writer.close()


class _MlflowSink:
    def __init__(self, client: Any, run_id: str, tracking_uri: str) -> None:
        self.client, self.run_id, self.tracking_uri = client, run_id, tracking_uri
        self._entities = importlib.import_module("mlflow.entities")

    @classmethod
    def start(cls, tracking: TrackingConfig, runs_dir: Path, run_name: str,
              params: dict[str, Any]) -> _MlflowSink:
        mlflow = _import_track("mlflow", "mlflow")
        mlflow_error = importlib.import_module("mlflow.exceptions").MlflowException
        uri = mlflow_tracking_uri(tracking, runs_dir)
        if _is_file_store(uri):
            # MLflow 3.7+ refuses its file store (maintenance mode) unless opted in; it is the
            # local store mlflow-skinny can write without SQLAlchemy and alembic.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            client = mlflow.MlflowClient(tracking_uri=uri)
            experiment_id = _experiment_id(client, tracking.mlflow_experiment)
            run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        except mlflow_error as exc:
            raise ConfigError([f"train.tracking.mlflow_tracking_uri: cannot open the MLflow "
                               f"store '{uri}' ({exc.message}); fix the URI, or unset it and "
                               f"MLFLOW_TRACKING_URI to use {Path(runs_dir) / MLRUNS_DIR}"]
                              ) from exc
        except ImportError as exc:  # e.g. a sqlite:// store without alembic (mlflow-skinny)
            raise MissingDependencyError(
                f"the MLflow store '{uri}' needs '{exc.name}', which is not installed. Install "
                "it (or the full `mlflow` package), or unset train.tracking.mlflow_tracking_uri "
                "and MLFLOW_TRACKING_URI to use the file store under run.runs_dir"
            ) from exc
        sink = cls(client, run_id, uri)
        try:
            sink.log_params(params)
        except BaseException:
            sink.close("FAILED")
            raise
        return sink

    def log_params(self, params: dict[str, Any]) -> None:
        items = [self._entities.Param(key, str(value)[:_MAX_PARAM_CHARS])
                 for key, value in _flatten(params)]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _MAX_PARAMS_PER_BATCH])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._entities.Metric(name, value, now, step)
                                                    for name, value in metrics.items()])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def _import_track(module: str, sink: str) -> ModuleType:
    """Import a sink's package; when missing, name the `track` extra that provides it."""
    try:
        return require(module)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"train.tracking.report_to lists '{sink}', but '{module}' is not installed "
            f"({exc.__cause__}). Install it with: pip install 'tuneline[track]'"
        ) from exc.__cause__


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:
        # Another process created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _is_file_store(uri: str) -> bool:
    scheme = urllib.parse.urlparse(uri).scheme
    return uri != "databricks" and (scheme in ("", "file") or len(scheme) == 1)  # 1: a drive letter


def _flatten(params: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def plot_loss_curve(rows: list[dict[str, Any]], out_png: Path, title: str) -> Path | None:
    """Draw training loss (raw and smoothed) and validation loss against the step.

    Args:
        rows: `{"step", "loss"}` and `{"step", "val_loss"}` rows, in any mix and order.
        out_png: the PNG to write (its folder is created).
        title: the figure title.

    Returns:
        `out_png`, or None when matplotlib is not installed or no row has a finite loss.
    """
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        return None
    train = _points(rows, "loss")
    val = _points(rows, "val_loss")
    if not train and not val:
        return None
    figure = figure_module.Figure(figsize=(6.4, 3.6), dpi=100)
    # Margins by hand, as in the dataset card: a layout engine draws the figure twice.
    axes = figure.subplots(gridspec_kw={"left": 0.11, "right": 0.97, "bottom": 0.14,
                                        "top": 0.88})
    if train:
        _plot_train(axes, train)
    if val:
        _plot_val(axes, val)
    values = [loss for _, loss in train + val]
    if min(values) > 0 and max(values) / min(values) > 20:
        axes.set_yscale("log")  # losses falling by orders of magnitude stay readable
    figure.suptitle(title)
    axes.set(xlabel="optimizer step", ylabel="loss")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    # No Software/date metadata: the same losses give byte-identical files.
    figure.savefig(out_png, metadata={"Software": None})
    return out_png


def _points(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    found = [(int(row["step"]), float(row[key])) for row in rows
             if row.get(key) is not None and "step" in row]
    return sorted(p for p in found if math.isfinite(p[1]))


def _plot_train(axes: Any, points: list[tuple[int, float]]) -> None:
    steps, losses = [s for s, _ in points], [v for _, v in points]
    window = max(1, min(50, len(losses) // 10))
    axes.plot(steps, losses, color=_TRAIN_COLOR, alpha=0.3, linewidth=0.8,
              label="train loss" if window > 1 else "train loss (per step)")
    if window > 1:
        axes.plot(steps, _trailing_mean(losses, window), color=_TRAIN_COLOR, linewidth=1.8,
                  label=f"train loss, mean of {window} steps")


def _plot_val(axes: Any, points: list[tuple[int, float]]) -> None:
    steps, losses = [s for s, _ in points], [v for _, v in points]
    axes.plot(steps, losses, color=_VAL_COLOR, marker="o", markersize=3, linewidth=1.2,
              label="validation loss")
    best_step, best = min(points, key=lambda p: (p[1], p[0]))
    axes.axvline(best_step, color=_VAL_COLOR, linestyle=":", linewidth=1)
    axes.plot([best_step], [best], color=_VAL_COLOR, marker="*", markersize=12, linestyle="none",
              label=f"best validation {best:.3f} (step {best_step})")


def _trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    means, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        means.append(total / min(i + 1, window))
    return means
