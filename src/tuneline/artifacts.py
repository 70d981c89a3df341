"""Stage artifact folders: atomic writes, content hashes and manifest.json fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import tuneline
from tuneline.machine import this_machine

MANIFEST = "manifest.json"
_TRACKED_LIBRARIES = ("torch", "transformers", "peft", "pydantic")
_PLANNING: ContextVar[bool] = ContextVar("tuneline_planning", default=False)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a part."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines (inside a stage's temporary folder); returns the row count."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file written by a stage."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_user_jsonl(path: Path, required: tuple[str, ...], label: str,
                    what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a user-supplied JSONL file whose rows need string `required` fields.

    Errors name the config key (`label`), the file and the line."""
    from tuneline.errors import DataError

    if not path.is_file():
        raise DataError(f"{label}: {path} does not exist")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        missing = [k for k in required
                   if not isinstance(row, dict) or not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{path}:{number}: {what} needs "
                            f"{' and '.join(missing)} (a string)")
        rows.append((number, row))
    return rows


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(root: Path) -> str:
    """sha256 over the relative paths and contents of every file under `root`, but the manifest."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hash_file(path).encode())
    return digest.hexdigest()


def hash_strings(*parts: str) -> str:
    """Short stable hash of several strings."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of Python, tuneline and the main libraries that shape results."""
    versions = {"python": platform.python_version(), "tuneline": tuneline.__version__}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class StageResult:
    """What a stage reports besides the files it wrote."""

    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact:
    """A committed stage folder and its manifest."""

    stage: str
    path: Path
    manifest: dict[str, Any]
    skipped: bool = False

    @property
    def output_hash(self) -> str:
        return str(self.manifest["output_hash"])

    @property
    def seconds(self) -> float:
        return float(self.manifest["timings"]["seconds"])


def fingerprint(stage: str, config_hash: str, inputs: dict[str, str]) -> str:
    """Identity of a stage's work: same fingerprint means the same output can be reused."""
    payload = json.dumps(
        {"stage": stage, "config": config_hash, "inputs": inputs, "code": tuneline.__version__},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_artifact(stage: str, path: Path) -> Artifact | None:
    """The committed artifact at `path`, or None when it is absent or has no valid manifest."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return Artifact(stage=stage, path=path, manifest=manifest)


class StagePlanned(Exception):  # noqa: N818 - an outcome, not an error
    """Raised by `run_stage` while `planning()`: what the stage would do; nothing was done."""

    def __init__(self, stage: str, fingerprint: str, reusable: bool) -> None:
        super().__init__(f"{stage}: {fingerprint} ({'reusable' if reusable else 'to run'})")
        self.stage, self.fingerprint, self.reusable = stage, fingerprint, reusable


@contextmanager
def planning() -> Iterator[None]:
    """Inside, a stage's run() stops at `run_stage` with StagePlanned, before any work: how
    an orchestrator learns each stage's fingerprint (its cache key) without running it."""
    token = _PLANNING.set(True)
    try:
        yield
    finally:
        _PLANNING.reset(token)


def plan_stage(call: Callable[[], Artifact]) -> StagePlanned:
    """The fingerprint of the stage that `call` runs, and whether its committed folder already
    holds that output; `call` stops before any work."""
    with planning():
        try:
            call()
        except StagePlanned as plan:
            return plan
    raise AssertionError("a stage's run() must end in run_stage()")


def run_stage(
    stage: str,
    out_dir: Path,
    config_hash: str,
    inputs: dict[str, str],
    work: Callable[[Path], StageResult],
    force: bool = False,
) -> Artifact:
    """Run `work` into a temporary folder and swap it into `out_dir`, or reuse a matching one.

    The manifest is written last and the folder is renamed into place, so an interrupted
    stage leaves no folder that a later run would trust.
    """
    expected = fingerprint(stage, config_hash, inputs)
    existing = load_artifact(stage, out_dir)
    reusable = bool(not force and existing
                    and existing.manifest.get("fingerprint") == expected)
    if _PLANNING.get():
        raise StagePlanned(stage, expected, reusable)
    if reusable:
        assert existing is not None
        existing.skipped = True
        return existing

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{stage}.tmp-"))
    try:
        started = time.time()
        result = work(tmp_dir)
        finished = time.time()
        manifest = {
            "stage": stage,
            "fingerprint": expected,
            "config_hash": config_hash,
            "inputs": inputs,
            "output_hash": hash_tree(tmp_dir),
            "counts": result.counts,
            "details": result.details,
            "versions": library_versions(),
            "machine": this_machine().as_dict(),  # timings compare within one class only
            "timings": {"started": started, "finished": finished, "seconds": finished - started},
        }
        write_json_atomic(tmp_dir / MANIFEST, manifest)
        _swap_into_place(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return Artifact(stage=stage, path=out_dir, manifest=manifest)


def _swap_into_place(new_dir: Path, out_dir: Path) -> None:
    if out_dir.exists():
        trash = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(out_dir, trash)
        os.replace(new_dir, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(new_dir, out_dir)
