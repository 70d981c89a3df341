"""The MLflow registry backend: runs with params, per-step metrics and artifacts; registered
model versions with lineage tags; aliases. Any tracking URI works: the default is a SQLite
store in the project's registry folder, a remote `mlflow server` is just another URI."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tuneline._optional import require
from tuneline.errors import RegistryError
from tuneline.registry.backend import ModelVersion, Registry

META_TAG = "tuneline.meta"  # the version's lineage, as one JSON document
LINEAGE_TAGS = ("base_model", "data_hash", "config_hash", "code_version", "run", "provider",
                "model_id")
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
_BATCH = 100  # MLflow accepts at most 100 params / 1000 metrics per log_batch call


def default_tracking_uri(registry_dir: Path) -> str:
    """$MLFLOW_TRACKING_URI when set, else a SQLite store inside `registry_dir`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env or f"sqlite:///{(Path(registry_dir) / DEFAULT_DB).resolve()}"


class MlflowRegistry(Registry):
    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None,
                 cache_dir: Path) -> None:
        require("mlflow")
        from mlflow import MlflowClient

        self.tracking_uri = self.location = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.experiment_name = experiment
        self.artifact_root = artifact_root
        self.cache_dir = Path(cache_dir) / hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]

    # --- runs ------------------------------------------------------------------------------
    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return str(found.experiment_id)
        location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
        try:
            return str(self.client.create_experiment(self.experiment_name, location))
        except Exception:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return str(found.experiment_id)

    def log_run(self, run_name: str, params: dict[str, str], metrics: dict[str, float],
                step_metrics: Iterable[tuple[str, float, int]], files: dict[str, Path],
                tags: dict[str, str]) -> str:
        """One finished MLflow run: params, final and per-step metrics, artifacts; its id."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id(), run_name=run_name, tags=tags)
        run_id = run.info.run_id
        try:
            params_list = [Param(k, v[:6000]) for k, v in sorted(params.items())]
            for chunk in _chunks(params_list, _BATCH):
                self.client.log_batch(run_id, params=chunk)
            metric_list = [Metric(k, float(v), 0, 0) for k, v in sorted(metrics.items())]
            metric_list += [Metric(k, float(v), 0, step) for k, v, step in step_metrics]
            for chunk in _chunks(metric_list, 1000):
                self.client.log_batch(run_id, metrics=chunk)
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            for dest, source in files.items():
                self._log_artifact(run_id, dest, Path(source))
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return str(run_id)

    def _log_artifact(self, run_id: str, dest: str, source: Path) -> None:
        if source.is_dir():
            self.client.log_artifacts(run_id, str(source), dest)
            return
        parent = str(Path(dest).parent) if Path(dest).parent != Path(".") else None
        if Path(dest).name == source.name:
            self.client.log_artifact(run_id, str(source), parent)
            return
        with tempfile.TemporaryDirectory() as tmp:
            renamed = Path(tmp) / Path(dest).name
            shutil.copy2(source, renamed)
            self.client.log_artifact(run_id, str(renamed), parent)

    # --- storage primitives ------------------------------------------------------------------
    def _create_version(self, name: str, files: dict[str, Path], meta: dict[str, Any],
                        run_id: str | None) -> int:
        if run_id is None:
            run_id = self.log_run(f"register-{name}", {}, {}, (), files, {})
        self._ensure_registered_model(name)
        source = self.client.get_run(run_id).info.artifact_uri
        tags = {key: str(meta[key]) for key in LINEAGE_TAGS if meta.get(key) is not None}
        gate = meta.get("gate")
        if isinstance(gate, dict):
            tags["gate"] = "passed" if gate.get("passed") else "failed"
        tags[META_TAG] = json.dumps({k: v for k, v in meta.items() if k != "metrics"},
                                    default=str)
        created = self.client.create_model_version(name, source=source, run_id=run_id,
                                                   tags=tags)
        return int(created.version)

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    name, description="Registered by tuneline; aliases: candidate, champion.")
            except MlflowException as exc:  # created meanwhile by another process
                if "ALREADY_EXISTS" not in str(exc.error_code):
                    raise

    def _load_version(self, name: str, version: int) -> ModelVersion:
        found = self.client.get_model_version(name, str(version))
        meta = json.loads(found.tags.get(META_TAG, "{}"))
        meta.setdefault("run_id", found.run_id)
        aliases = tuple(sorted(a for a, v in self._aliases(name).items() if v == version))
        local = _local_path(found.source)
        path = local if local is not None else self.cache_dir / name / str(version)
        tags = {k: v for k, v in found.tags.items() if k != META_TAG}
        return ModelVersion(name, version, path, {**meta, "source": found.source}, aliases, tags)

    def names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models()
                      if self._version_numbers(m.name))

    def _version_numbers(self, name: str) -> list[int]:
        return sorted(int(v.version) for v in self._search_versions(name))

    def _search_versions(self, name: str) -> list[Any]:
        if "'" in name:
            return []
        return list(self.client.search_model_versions(f"name='{name}'"))

    def _aliases(self, name: str) -> dict[str, int]:
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {alias: int(version) for alias, version in model.aliases.items()}

    def _set_alias(self, name: str, alias: str, version: int | None) -> None:
        if version is None:
            self.client.delete_registered_model_alias(name, alias)
        else:
            self.client.set_registered_model_alias(name, alias, str(version))

    def _version_tags(self, name: str) -> dict[int, dict[str, str]]:
        return {int(v.version): dict(v.tags) for v in self._search_versions(name)}

    def _set_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(name, str(version), key, value)

    def _lock(self, name: str) -> AbstractContextManager[None]:
        database = _sqlite_path(self.tracking_uri)
        return _file_lock(database.with_suffix(".lock")) if database else nullcontext()

    def materialize(self, version: ModelVersion) -> ModelVersion:
        """Download a version's artifacts once into the cache (nothing to do for local ones)."""
        if version.path.is_dir():
            return version
        import mlflow.artifacts

        version.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=version.path.parent))
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=version.meta["source"],
                                                        dst_path=str(tmp),
                                                        tracking_uri=self.tracking_uri)
            Path(local).rename(version.path)  # it lands in a subfolder named like the source
            shutil.rmtree(tmp, ignore_errors=True)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if version.path.is_dir():  # another process downloaded it first
                return version
            raise RegistryError(f"could not download {version.reference} from "
                                f"{version.meta['source']}: {exc}") from exc
        return version


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
