"""Config section for the register stage: the registry and the model's name."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneline.config_base import Section


class RegisterConfig(Section):
    name: str = Field("tuneline-model", description="Registered model name.")
    backend: Literal["mlflow", "local"] = Field(
        "mlflow", description="'mlflow': an MLflow tracking server and model registry (runs, "
        "lineage tags, aliases; see tracking_uri); 'local': plain folders under registry_dir.",
    )
    registry_dir: Path = Field(
        Path("registry"), description="Registry folder: the 'local' backend's versions, and "
        "the default MLflow store (mlflow.db, mlartifacts/).",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI, e.g. http://mlflow:5000. Default: "
        "$MLFLOW_TRACKING_URI, else sqlite:///<registry_dir>/mlflow.db.",
    )
    experiment: str = Field("tuneline", description="MLflow experiment the runs are logged to.")
