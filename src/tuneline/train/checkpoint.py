"""Atomic, resumable training checkpoints.

A checkpoint is a folder `step-NNNNNNNN` holding the trainable weights, the optimizer and
scheduler states, every process's RNG states and the loop state (data position, log, early
stopping). It is written under a temporary name and renamed into place, so a folder with the
final name is always complete; a crash mid-write leaves only a `.tmp-` folder, ignored on resume.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.artifacts import write_json_atomic
from tuneline.errors import ConfigError

STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.pt"
BEST_WEIGHTS_FILE = "best_trainable.pt"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"


@dataclass
class LoopState:
    """Everything besides tensors that the loop needs to continue exactly where it stopped."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    total_steps: int | None = None  # set when a time limit cut the plan


def rng_states() -> dict[str, Any]:
    torch = require("torch")
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch = require("torch")
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class CheckpointStore:
    """Checkpoints of one training job (one stage fingerprint) under `root`."""

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = root
        self.keep = keep

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        if not self.root.is_dir():
            return None
        done = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("step-"))
        return done[-1] if done else None

    def staging_dir(self, step: int) -> Path:
        return self.root / f".tmp-step-{step:08d}"

    def begin(self, step: int) -> Path:
        """Create the folder a checkpoint is written into (on the main process)."""
        staging = self.staging_dir(step)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def commit(self, step: int) -> Path:
        """Make a fully written checkpoint visible, then prune old ones (main process)."""
        staging = self.staging_dir(step)
        final = self.root / f"step-{step:08d}"
        _fsync_tree(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _fsync_dir(self.root)
        for old in sorted(p for p in self.root.iterdir() if p.name.startswith("step-"))[
            : -self.keep
        ]:
            shutil.rmtree(old, ignore_errors=True)
        return final


def write_tensors(folder: Path, name: str, obj: Any) -> None:
    require("torch").save(obj, folder / name)


def read_tensors(folder: Path, name: str) -> Any:
    torch = require("torch")
    try:
        # Optimizer states and RNG tuples are plain containers of tensors and numbers.
        return torch.load(folder / name, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ConfigError([f"{folder / name}: unreadable checkpoint file ({exc})"]) from None


def write_loop_state(folder: Path, state: LoopState) -> None:
    write_json_atomic(folder / STATE_FILE, asdict(state))


def read_loop_state(folder: Path) -> LoopState:
    try:
        return LoopState(**json.loads((folder / STATE_FILE).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ConfigError([f"{folder / STATE_FILE}: unreadable checkpoint state ({exc})"]) \
            from None


def rng_file(process_index: int) -> str:
    return f"rng-{process_index}.pt"


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
