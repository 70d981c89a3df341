"""The watch loop: mirror S3, fingerprint the sources, and run the pipeline when they changed.

A run's gate decides as always: a passing model is registered (aliased `candidate`), a failing
one registers nothing and the reason is logged. The fingerprints a run started from are kept
in `runs/<run>/watch/state.json` whatever its outcome, so the same data is not retried every
poll; `runs/<run>/watch/log.jsonl` has one line per poll that found a change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneline.artifacts import write_json_atomic
from tuneline.config import PipelineConfig
from tuneline.errors import DataError, QualityGateFailed, TunelineError
from tuneline.watch.observe import mirror_s3, source_fingerprints

STATE_FILE = "state.json"
LOG_FILE = "log.jsonl"


@dataclass
class Poll:
    """What one poll saw and did."""

    changed: list[str] = field(default_factory=list)  # sources whose content changed
    fetched: list[str] = field(default_factory=list)  # S3 keys mirrored
    outcome: str = "unchanged"  # unchanged | registered | no new version | gate failed | failed
    detail: str = ""

    def describe(self) -> str:
        if self.outcome == "unchanged":
            return "no change"
        what = ", ".join(self.changed) or "sources"
        fetched = f" ({len(self.fetched)} S3 objects fetched)" if self.fetched else ""
        return f"{what} changed{fetched}: {self.outcome}" + (f": {self.detail}"
                                                            if self.detail else "")


def poll_once(cfg: PipelineConfig) -> Poll:
    """One poll: mirror S3, fingerprint the sources, and run the pipeline when they changed
    (or on the first poll, which has nothing to compare with; stages that did not change are
    skipped as always)."""
    folder = cfg.run.runs_dir / cfg.run.name / "watch"
    state = _read_state(folder)
    poll = Poll()
    etags: dict[str, dict[str, str]] = state.get("s3", {})
    for spec in cfg.watch.s3:
        key = f"s3://{spec.bucket}/{spec.prefix}"
        poll.fetched += mirror_s3(spec, etags.setdefault(key, {}))
    _check_sources_exist(cfg)
    prints = source_fingerprints(cfg)
    seen = state.get("sources")  # None on the first poll
    before = seen or {}
    poll.changed = sorted(k.removeprefix("source:") for k in set(prints) | set(before)
                          if before.get(k) != prints.get(k))
    drifting = _drift_alerts(cfg) if cfg.watch.on_drift else []
    if drifting and not state.get("drifting"):
        poll.changed.append("drift (" + "; ".join(drifting) + ")")
    new_state = {"sources": prints, "s3": etags, "registered": state.get("registered"),
                 "drifting": bool(drifting)}
    if seen is not None and not poll.changed:
        _write_state(folder, new_state)
        return poll
    poll.outcome, poll.detail = _run(cfg, state.get("registered"))
    if poll.outcome == "registered":
        new_state["registered"] = poll.detail
    _write_state(folder, new_state)
    _log(folder, poll)
    return poll


def _drift_alerts(cfg: PipelineConfig) -> list[str]:
    """The alerts of the recorded traffic against the run's baseline (none without enough
    recorded requests); the report is written as `tuneline monitor --traffic` writes it."""
    from tuneline.monitor.check import check_recorded_traffic
    from tuneline.monitor.report import DRIFT_HTML, write_drift_html
    from tuneline.monitor.traffic import MIN_WINDOW, TrafficStore, traffic_db_path
    from tuneline.rag.embed import Embedder

    path = traffic_db_path(cfg)
    if not path.is_file() or TrafficStore(path).count() < MIN_WINDOW:
        return []
    check = check_recorded_traffic(cfg, cfg.serve.traffic.drift_window, None,
                                   Embedder(cfg.index.embedder))
    write_drift_html(cfg.run.runs_dir / cfg.run.name / "monitor" / DRIFT_HTML, check.report,
                     check.rates, str(check.origin), check.questions, check.alerts)
    return check.alerts


def watch(cfg: PipelineConfig, on_poll: Callable[[Poll], None], polls: int | None = None) -> None:
    """Poll every `cfg.watch.interval_s` seconds, `polls` times (None: until interrupted)."""
    done = 0
    while polls is None or done < polls:
        started = time.monotonic()
        on_poll(poll_once(cfg))
        done += 1
        if polls is None or done < polls:
            time.sleep(max(0.0, cfg.watch.interval_s - (time.monotonic() - started)))


def _check_sources_exist(cfg: PipelineConfig) -> None:
    missing = [f"{s.name}: {s.path}" for s in cfg.ingest.sources
               if s.path is not None and not s.path.exists()]
    if missing:
        raise DataError(f"sources not found after mirroring watch.s3: {'; '.join(missing)}")


def _run(cfg: PipelineConfig, before: str | None) -> tuple[str, str]:
    """Run the pipeline; (outcome, the version registered or why nothing was)."""
    from tuneline.pipeline import run_pipeline

    try:
        result = run_pipeline(cfg)
    except QualityGateFailed as exc:
        return "gate failed", str(exc)
    except TunelineError as exc:  # bad data, a missing dependency: logged, watching goes on
        return "failed", f"{type(exc).__name__}: {exc}"
    registered = result.artifacts.get("register")
    if registered is None:
        return "failed", "the pipeline registered nothing"
    record = json.loads((registered.path / "registration.json").read_text(encoding="utf-8"))
    reference = f"{record['name']}/{record['version']}"
    return ("no new version", reference) if reference == before else ("registered", reference)


def _read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    write_json_atomic(folder / STATE_FILE, state)


def _log(folder: Path, poll: Poll) -> None:
    with (folder / LOG_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": time.time(), **asdict(poll)}) + "\n")
