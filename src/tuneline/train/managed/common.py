"""What the managed backends share: polling with backoff, the remote_model.json record, losses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from tuneline._optional import require
from tuneline.artifacts import write_json_atomic
from tuneline.errors import MissingDependencyError

REMOTE_MODEL = "remote_model.json"
JOB_EVENTS = "job_events.jsonl"
BACKOFF = 1.5

# Tests replace these to run polls without waiting (and to move a faked job along).
sleep: Callable[[float], None] = time.sleep
clock: Callable[[], float] = time.monotonic

_EXTRAS = {"openai": "openai", "boto3": "bedrock", "botocore": "bedrock"}

T = TypeVar("T")


def require_sdk(module: str) -> Any:
    """Import a provider SDK, naming the tuneline extra that installs it when it is missing."""
    try:
        return require(module)
    except MissingDependencyError as exc:
        extra = _EXTRAS[module.split(".")[0]]
        raise MissingDependencyError(
            f"train.backend needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'tuneline[{extra}]'"
        ) from exc.__cause__


@dataclass
class Poll:
    """One look at a job: its status, whether it has ended, and anything new to show."""

    status: str
    done: bool
    news: list[str]


def poll_until_done(
    fetch: Callable[[], Poll], interval: float, max_interval: float, timeout: float,
    on_timeout: Callable[[float], Exception], desc: str,
) -> Poll:
    """Call `fetch` until it reports done, sleeping with backoff; show status and news.

    The wait grows by 1.5x while nothing changes and drops back to `interval` when the
    status moves or news arrives, so a progressing job is followed closely and a queued
    one is not hammered.
    """
    started, wait = clock(), interval
    bar = tqdm(desc=desc, unit="poll", dynamic_ncols=True)
    try:
        last_status = None
        while True:
            poll = fetch()
            bar.update(1)
            bar.set_postfix_str(f"{poll.status} {poll.news[-1] if poll.news else ''}"[:120])
            if poll.done:
                return poll
            moved = poll.status != last_status or bool(poll.news)
            last_status = poll.status
            wait = interval if moved else min(max_interval, max(wait, 1e-3) * BACKOFF)
            elapsed = clock() - started
            if elapsed + wait > timeout:
                raise on_timeout(elapsed)
            sleep(wait)
    finally:
        bar.close()


def write_remote_model(tmp: Path, record: dict[str, Any]) -> None:
    """Write the train artifact's `remote_model.json` (provider, model id, job, metrics...)."""
    write_json_atomic(tmp / REMOTE_MODEL, record)


def read_remote_model(folder: Path) -> dict[str, Any] | None:
    """The `remote_model.json` in a train artifact or registry version, or None if local."""
    path = folder / REMOTE_MODEL
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def loss_summary(losses: list[float], prefix: str = "loss") -> dict[str, float]:
    """Mean of the first and last few losses, named as the local trainer names them."""
    if not losses:
        return {}
    window = max(1, min(10, len(losses) // 5))
    return {f"{prefix}_first": sum(losses[:window]) / window,
            f"{prefix}_last": sum(losses[-window:]) / window}


def to_float(value: Any) -> float | None:
    """A CSV cell as a float; None when empty or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def utc_stamp() -> str:
    """A compact UTC timestamp for resource names: 20261123-141421."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())
