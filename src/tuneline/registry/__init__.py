"""Model registries: versions with lineage, `candidate`/`champion` aliases, promote, rollback."""

from __future__ import annotations

from pathlib import Path

from tuneline.register.config import RegisterConfig
from tuneline.registry.backend import ModelVersion, Registry

__all__ = ["ModelVersion", "Registry", "open_registry", "registry_cache_dir"]


def registry_cache_dir() -> Path:
    """Where versions downloaded from a remote MLflow server are kept."""
    return Path.home() / ".cache" / "tuneline" / "registry"


def open_registry(cfg: RegisterConfig) -> Registry:
    """The configured backend: MLflow (default; a SQLite store under registry_dir unless
    tracking_uri or $MLFLOW_TRACKING_URI names another) or plain local folders."""
    if cfg.backend == "local":
        from tuneline.registry.local import LocalRegistry

        return LocalRegistry(cfg.registry_dir)
    from tuneline._optional import require
    from tuneline.registry.mlflow_store import (
        DEFAULT_ARTIFACTS,
        MlflowRegistry,
        default_tracking_uri,
    )

    uri = cfg.tracking_uri or default_tracking_uri(cfg.registry_dir)
    if uri.startswith("sqlite:"):
        require("alembic")  # mlflow-skinny alone cannot open SQL stores
        cfg.registry_dir.mkdir(parents=True, exist_ok=True)
    local_store = uri.startswith(("sqlite:", "file:", "/"))
    artifacts = cfg.registry_dir / DEFAULT_ARTIFACTS if local_store else None
    return MlflowRegistry(uri, cfg.experiment, artifacts, registry_cache_dir())
