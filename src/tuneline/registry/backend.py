"""What every registry backend shares: model versions, references, aliases, promote, rollback.

A backend stores versions, aliases and per-version mutable tags; promotion is derived from
tags so that the state stays consistent under concurrent promotes:

- `promote` stamps the version with `tuneline.promoted_at` (a nanosecond clock);
- `rollback` stamps the current champion with `tuneline.rolled_back_at`;
- the champion is the version promoted last and not rolled back since; after every change the
  `champion` alias is settled to it and re-read until it agrees, so whichever process writes
  last leaves the alias pointing at the newest promotion.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneline.errors import RegistryError

CANDIDATE, CHAMPION = "candidate", "champion"
PROMOTED_AT, ROLLED_BACK_AT = "tuneline.promoted_at", "tuneline.rolled_back_at"
REMOTE_MODEL_FILE = "remote_model.json"  # a provider-hosted model (train.backend: openai|bedrock)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SETTLE_ATTEMPTS = 20


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its files are, its lineage metadata and its aliases."""

    name: str
    version: int
    path: Path
    meta: dict[str, Any]
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

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

    @property
    def gate_passed(self) -> bool:
        gate = self.meta.get("gate")
        return isinstance(gate, dict) and gate.get("passed") is True


@dataclass(frozen=True)
class Reference:
    """A parsed 'name', 'name/version' or 'name@alias'."""

    name: str
    version: int | None = None
    alias: str | None = None


def parse_reference(reference: str) -> Reference:
    name, sep, alias = reference.partition("@")
    if sep:
        check_name(name)
        if not _NAME.match(alias):
            raise RegistryError(f"bad alias in '{reference}': use name@candidate or name@champion")
        return Reference(name, alias=alias)
    name, sep, number = reference.partition("/")
    check_name(name)
    if sep and not number.isdigit():
        raise RegistryError(
            f"bad model reference '{reference}': use 'name', 'name/<int>' or 'name@alias'")
    return Reference(name, version=int(number) if sep else None)


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise RegistryError(
            f"bad model name '{name}': use letters, digits, '.', '_' or '-' (no '/' or '@')"
        )


class Registry(ABC):
    """Versions numbered 1, 2, ... per name; aliases `candidate` (newest registered) and
    `champion` (promoted, what serving should use)."""

    location: str  # shown in messages: a folder or a tracking URI

    # --- storage primitives of a backend -------------------------------------------------
    @abstractmethod
    def _create_version(self, name: str, files: dict[str, Path], meta: dict[str, Any],
                        run_id: str | None) -> int: ...

    @abstractmethod
    def _load_version(self, name: str, version: int) -> ModelVersion: ...

    @abstractmethod
    def _version_numbers(self, name: str) -> list[int]: ...

    @abstractmethod
    def names(self) -> list[str]: ...

    @abstractmethod
    def _aliases(self, name: str) -> dict[str, int]: ...

    @abstractmethod
    def _set_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point `alias` at `version`; None removes it."""

    @abstractmethod
    def _version_tags(self, name: str) -> dict[int, dict[str, str]]: ...

    @abstractmethod
    def _set_tag(self, name: str, version: int, key: str, value: str) -> None: ...

    @abstractmethod
    def _lock(self, name: str) -> AbstractContextManager[None]:
        """Serialises changes to one model's versions and aliases where the store allows."""

    def materialize(self, version: ModelVersion) -> ModelVersion:
        """The version with its files present locally (a remote store downloads them)."""
        return version

    # --- the registry API ------------------------------------------------------------------
    def register(self, name: str, files: dict[str, Path], meta: dict[str, Any],
                 run_id: str | None = None) -> ModelVersion:
        """A new version holding `files` (destination name → file or folder), aliased
        `candidate`. With `run_id` (MLflow), the version points at that run's artifacts."""
        check_name(name)
        with self._lock(name):
            number = self._create_version(name, files, meta, run_id)
            self._set_alias(name, CANDIDATE, number)
        return self.get(f"{name}/{number}")

    def get(self, reference: str) -> ModelVersion:
        """Resolve 'name' (latest version), 'name/version' or 'name@alias'."""
        ref = parse_reference(reference)
        versions = self._version_numbers(ref.name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(
                f"no registered model '{ref.name}' in {self.location} (registered: {known}). "
                "Run the pipeline first: tuneline run CONFIG")
        if ref.alias is not None:
            aliases = self._aliases(ref.name)
            if ref.alias not in aliases:
                have = ", ".join(f"@{a} → {v}" for a, v in sorted(aliases.items())) or "none"
                hint = " (promote a version: tuneline registry promote NAME/VERSION)" \
                    if ref.alias == CHAMPION else ""
                raise RegistryError(
                    f"model '{ref.name}' has no alias '{ref.alias}' (aliases: {have}){hint}")
            number = aliases[ref.alias]
        else:
            number = ref.version if ref.version is not None else max(versions)
        if number not in versions:
            raise RegistryError(
                f"model '{ref.name}' has no version {number} (has {sorted(versions)})")
        return self._load_version(ref.name, number)

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of `name`, oldest first."""
        return [self._load_version(name, n) for n in sorted(self._version_numbers(name))]

    def champion(self, name: str) -> ModelVersion | None:
        """The version aliased `champion`, or None."""
        number = self._aliases(name).get(CHAMPION) if self._version_numbers(name) else None
        return None if number is None else self._load_version(name, number)

    def promote(self, reference: str) -> ModelVersion:
        """Make a version the champion; it must carry a passing quality gate."""
        version = self.get(reference)
        if not version.gate_passed:
            gate = version.meta.get("gate")
            state = "failed" if isinstance(gate, dict) else "no gate result recorded"
            raise RegistryError(
                f"cannot promote {version.reference}: its quality gate has not passed ({state})")
        with self._lock(version.name):
            self._set_tag(version.name, version.version, PROMOTED_AT, str(time.time_ns()))
            return self._settle_champion(version.name)

    def rollback(self, name: str) -> ModelVersion:
        """Move `champion` back to the version promoted before the current one."""
        with self._lock(name):
            order = self._promotion_order(name)
            if len(order) < 2:
                raise RegistryError(f"model '{name}' has no earlier champion to roll back to "
                                    f"(promoted: {order or 'none'})")
            self._set_tag(name, order[-1], ROLLED_BACK_AT, str(time.time_ns()))
            return self._settle_champion(name)

    def history(self, name: str) -> list[tuple[int, int]]:
        """(version, promoted_at ns) of every standing promotion, oldest first."""
        tags = self._version_tags(name)
        return [(v, int(tags[v][PROMOTED_AT])) for v in self._promotion_order(name)]

    def _promotion_order(self, name: str) -> list[int]:
        standing = []
        for version, tags in self._version_tags(name).items():
            promoted = int(tags.get(PROMOTED_AT, -1))
            if promoted >= 0 and int(tags.get(ROLLED_BACK_AT, -1)) < promoted:
                standing.append((promoted, version))
        return [version for _, version in sorted(standing)]

    def _settle_champion(self, name: str) -> ModelVersion:
        for _ in range(_SETTLE_ATTEMPTS):
            order = self._promotion_order(name)
            target = order[-1] if order else None
            if self._aliases(name).get(CHAMPION) == target:
                if target is None:
                    raise RegistryError(f"model '{name}' has no champion")
                return self._load_version(name, target)
            self._set_alias(name, CHAMPION, target)
        raise RegistryError(f"the champion alias of '{name}' did not settle; retry")


def iter_meta_lines(version: ModelVersion) -> Iterator[tuple[str, str]]:
    """(key, value) lines describing a version's lineage, for `tuneline registry show`."""
    for key in ("base_model", "run", "data_hash", "config_hash", "adapter_hash",
                "code_version", "provider", "model_id", "run_id"):
        if version.meta.get(key) is not None:
            yield key, str(version.meta[key])
    gate = version.meta.get("gate")
    if isinstance(gate, dict):
        yield "gate", f"{'passed' if gate.get('passed') else 'FAILED'} " \
                      f"({len(gate.get('checks', []))} check(s))"
