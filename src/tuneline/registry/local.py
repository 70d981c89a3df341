"""A local, file-based model registry: `<root>/<name>/<version>/` folders with version.json."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline.errors import RegistryError

VERSION_FILE = "version.json"
REMOTE_MODEL_FILE = "remote_model.json"  # a provider-hosted model (train.backend: openai|bedrock)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its folder and the metadata recorded with it."""

    name: str
    version: int
    path: Path
    meta: dict[str, Any]

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def weights_dir(self) -> Path:
        """The LoRA adapter folder, or the full model folder of a fully fine-tuned version."""
        full = self.path / "model"
        return full if full.is_dir() and not self.adapter_dir.is_dir() else self.adapter_dir

    @property
    def remote_model(self) -> dict[str, Any] | None:
        """The provider-hosted model this version records (provider, model_id, job_id, ...),
        or None when the version holds a local adapter."""
        path = self.path / REMOTE_MODEL_FILE
        return dict(json.loads(path.read_text())) if path.is_file() else None

    @property
    def reference(self) -> str:
        return f"{self.name}/{self.version}"


class LocalRegistry:
    """Versions are numbered 1, 2, ... per name; a version folder appears complete or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def register(self, name: str, files: dict[str, Path], meta: dict[str, Any]) -> ModelVersion:
        """Copy `files` (destination name → source file or folder) into a new version."""
        _check_name(name)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with _locked(model_dir):
            version = max(self._version_numbers(name), default=0) + 1
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
            try:
                for dest, source in files.items():
                    if Path(source).is_dir():
                        shutil.copytree(source, tmp / dest)
                    else:
                        shutil.copy2(source, tmp / dest)
                record = {"name": name, "version": version, "created_at": time.time(), **meta}
                (tmp / VERSION_FILE).write_text(json.dumps(record, indent=2, default=str))
                tmp.rename(model_dir / str(version))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return self.get(f"{name}/{version}")

    def get(self, reference: str) -> ModelVersion:
        """Resolve 'name' (latest version) or 'name/version'."""
        name, _, number = reference.partition("/")
        if number and not number.isdigit():
            raise RegistryError(f"bad model reference '{reference}': use 'name' or 'name/<int>'")
        versions = self._version_numbers(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(
                f"no registered model '{name}' in {self.root} (registered: {known}). "
                "Run the pipeline first: tuneline run CONFIG"
            )
        version = int(number) if number else max(versions)
        if version not in versions:
            raise RegistryError(f"model '{name}' has no version {version} (has {sorted(versions)})")
        path = self.root / name / str(version)
        meta = json.loads((path / VERSION_FILE).read_text())
        return ModelVersion(name, version, path, meta)

    def names(self) -> list[str]:
        """Registered model names."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if self._version_numbers(p.name))

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of `name`, oldest first."""
        return [self.get(f"{name}/{n}") for n in sorted(self._version_numbers(name))]

    def _version_numbers(self, name: str) -> set[int]:
        model_dir = self.root / name
        if not name or not model_dir.is_dir():
            return set()
        return {int(p.name) for p in model_dir.iterdir()
                if p.name.isdigit() and (p / VERSION_FILE).is_file()}


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise RegistryError(
            f"bad model name '{name}': use letters, digits, '.', '_' or '-' (no '/')"
        )


@contextmanager
def _locked(model_dir: Path) -> Iterator[None]:
    with open(model_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
