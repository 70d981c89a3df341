"""One drift check of live questions against a baseline, shared by `tuneline monitor` and
`tuneline watch`: which baseline, the recorded window, the tests, and the alerts in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneline.config import PipelineConfig
    from tuneline.monitor.drift import DriftBaseline, DriftReport, RateCheck
    from tuneline.rag.embed import Embedder


@dataclass
class DriftCheck:
    """A window of live questions tested against a baseline."""

    report: DriftReport
    rates: list[RateCheck]
    alerts: list[str]
    baseline: DriftBaseline
    origin: Path  # where the baseline came from
    questions: Sequence[str | None]  # the live questions' text, None where not recorded


def check_window(cfg: PipelineConfig, embeddings: Any, counts: dict[str, tuple[int, int]],
                 questions: Sequence[str | None], reference: str | None,
                 embedder: Embedder) -> DriftCheck:
    """Test live embeddings (and recorded shares) against the baseline `reference` picks."""
    from tuneline.monitor.drift import alerts_of, compare, compare_rates

    baseline, origin = baseline_for(cfg, reference, embedder)
    report = compare(baseline, embeddings, seed=cfg.run.seed)
    rates = compare_rates(baseline.rates, counts)
    return DriftCheck(report, rates, alerts_of(report, rates), baseline, origin, questions)


def check_recorded_traffic(cfg: PipelineConfig, window: int | None, reference: str | None,
                           embedder: Embedder) -> DriftCheck:
    """The newest `window` requests the server recorded (serve.traffic) against the baseline."""
    embeddings, counts, questions = recorded_window(cfg, window)
    return check_window(cfg, embeddings, counts, questions, reference, embedder)


def recorded_window(cfg: PipelineConfig, window: int | None
                    ) -> tuple[Any, dict[str, tuple[int, int]], list[str | None]]:
    """The recorded window's embeddings; (hits, n) of its declined answers and of its RAG
    questions without a passage; and its questions' text (None where not recorded)."""
    from tuneline.errors import DataError
    from tuneline.monitor.traffic import (
        MIN_WINDOW,
        TrafficStore,
        traffic_db_path,
        window_counts,
        window_embeddings,
    )

    path = traffic_db_path(cfg)
    rows = TrafficStore(path, must_exist=True).window(window)
    if len(rows) < MIN_WINDOW:
        raise DataError(f"{path}: {len(rows)} recorded requests; drift needs a window of at "
                        f"least {MIN_WINDOW}")
    return window_embeddings(rows), window_counts(rows), [row["question"] for row in rows]


def baseline_for(cfg: PipelineConfig, reference: str | None,
                 embedder: Embedder) -> tuple[DriftBaseline, Path]:
    """The registered version's baseline, else the run's, else one built from its training
    questions; with where it came from."""
    from tuneline.errors import DataError
    from tuneline.monitor.baseline import BASELINE_DIR, registered_baseline_dir
    from tuneline.monitor.drift import DriftBaseline, build_baseline
    from tuneline.monitor.prompts import training_questions

    run_dir = cfg.run.runs_dir / cfg.run.name
    if reference is not None:
        folder = registered_baseline_dir(cfg, reference)
        if not folder.is_dir():
            raise DataError(f"{reference}: registered without a drift baseline ({folder}); "
                            "versions registered since evaluate.drift_baseline have one")
        return DriftBaseline.load(folder), folder
    folder = run_dir / "evaluate" / BASELINE_DIR
    if folder.is_dir():
        return DriftBaseline.load(folder), folder
    train = run_dir / "curate" / "train.jsonl"
    if not train.is_file():
        raise DataError(f"{train} does not exist: run `tuneline curate` (or the pipeline) first")
    return build_baseline(embedder.embed(training_questions(train)), seed=cfg.run.seed), train
