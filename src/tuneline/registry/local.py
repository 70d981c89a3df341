"""A file-based registry: `<root>/<name>/<version>/` folders with version.json, and
`<root>/<name>/state.json` for aliases and promotion tags, changed under a file lock."""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneline.artifacts import write_json_atomic
from tuneline.registry.backend import REMOTE_MODEL_FILE, ModelVersion, Registry

VERSION_FILE = "version.json"
STATE_FILE = "state.json"

__all__ = ["REMOTE_MODEL_FILE", "VERSION_FILE", "LocalRegistry", "ModelVersion"]


class LocalRegistry(Registry):
    """A version folder appears complete or not at all (written aside, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _create_version(self, name: str, files: dict[str, Path], meta: dict[str, Any],
                        run_id: str | None) -> int:
        model_dir = self.root / name
        version = max(self._version_numbers(name), default=0) + 1
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
        try:
            for dest, source in files.items():
                if Path(source).is_dir():
                    shutil.copytree(source, tmp / dest)
                else:
                    shutil.copy2(source, tmp / dest)
            record = {"name": name, "version": version, "created_at": time.time(), **meta}
            if run_id is not None:
                record["run_id"] = run_id
            (tmp / VERSION_FILE).write_text(json.dumps(record, indent=2, default=str))
            tmp.rename(model_dir / str(version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def _load_version(self, name: str, version: int) -> ModelVersion:
        path = self.root / name / str(version)
        meta = json.loads((path / VERSION_FILE).read_text())
        state = self._state(name)
        aliases = tuple(sorted(a for a, v in state["aliases"].items() if v == version))
        tags = state["tags"].get(str(version), {})
        return ModelVersion(name, version, path, meta, aliases, dict(tags))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if self._version_numbers(p.name))

    def _version_numbers(self, name: str) -> list[int]:
        model_dir = self.root / name
        if not name or not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir()
                      if p.name.isdigit() and (p / VERSION_FILE).is_file())

    def _aliases(self, name: str) -> dict[str, int]:
        return dict(self._state(name)["aliases"])

    def _set_alias(self, name: str, alias: str, version: int | None) -> None:
        state = self._state(name)
        if version is None:
            state["aliases"].pop(alias, None)
        else:
            state["aliases"][alias] = version
        write_json_atomic(self.root / name / STATE_FILE, state)

    def _version_tags(self, name: str) -> dict[int, dict[str, str]]:
        tags = self._state(name)["tags"]
        return {v: dict(tags.get(str(v), {})) for v in self._version_numbers(name)}

    def _set_tag(self, name: str, version: int, key: str, value: str) -> None:
        state = self._state(name)
        state["tags"].setdefault(str(version), {})[key] = value
        write_json_atomic(self.root / name / STATE_FILE, state)

    def _state(self, name: str) -> dict[str, Any]:
        path = self.root / name / STATE_FILE
        state = json.loads(path.read_text()) if path.is_file() else {}
        return {"aliases": state.get("aliases", {}), "tags": state.get("tags", {})}

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
