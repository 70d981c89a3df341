"""What the server records of its traffic, for `tuneline monitor --traffic`.

Per answered request: when, which served model, status, latency, how many passages retrieval
gave (with RAG), whether the answer declined, its length in words, and the question's
embedding. The question's text only when `serve.log_prompts` is on. Requests are queued by the
route (never blocking it: a full queue drops and counts) and written by a child process at the
lowest CPU priority, which embeds them in batches. The SQLite store keeps at most `max_rows`
rows no older than `max_age_days`, pruned as it writes, so a long-running server never grows
without bound.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneline._optional import require
from tuneline.errors import DataError

if TYPE_CHECKING:
    from tuneline.config import PipelineConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    passages INTEGER,
    declined INTEGER NOT NULL,
    answer_words INTEGER NOT NULL,
    question TEXT,
    embedding BLOB
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""
PRUNE_EVERY = 200  # rows written between prunes: the bound is max_rows + PRUNE_EVERY


@dataclass(frozen=True)
class Request:
    """One answered request, as the route hands it over."""

    ts: float
    model: str
    status: int
    latency_s: float
    passages: int | None
    question: str
    answer: str


class TrafficStore:
    """The request records in a SQLite file (WAL), bounded by rows and age."""

    def __init__(self, path: Path, max_rows: int = 100_000, max_age_days: float = 30.0,
                 must_exist: bool = False) -> None:
        if must_exist and not path.is_file():
            raise DataError(f"no traffic store at {path}: the server writes it when "
                            "serve.traffic.enabled is on (serve.traffic.path names another)")
        self.path, self.max_rows, self.max_age_days = path, max_rows, max_age_days
        self._written_since_prune = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                yield db
        finally:
            db.close()

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows of (ts, model, status, latency_s, passages, declined, answer_words,
        question, embedding bytes), then prune when due."""
        with self._connect() as db:
            db.executemany("INSERT INTO requests (ts, model, status, latency_s, passages, "
                           "declined, answer_words, question, embedding) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self._written_since_prune += len(rows)
        if self._written_since_prune >= PRUNE_EVERY:
            self.prune()

    def prune(self, now: float | None = None) -> None:
        """Drop rows older than max_age_days, then all but the newest max_rows."""
        cutoff = (now or time.time()) - self.max_age_days * 86400
        with self._connect() as db:
            db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,))
            db.execute("DELETE FROM requests WHERE id <= (SELECT id FROM requests ORDER BY id "
                       "DESC LIMIT 1 OFFSET ?)", (self.max_rows,))
        self._written_since_prune = 0

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def window(self, n: int | None = None) -> list[dict[str, Any]]:
        """The newest `n` rows (all when None) that have an embedding, oldest first."""
        limit = -1 if n is None else n
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM requests WHERE embedding IS NOT NULL "
                              "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(row) for row in reversed(rows)]


def traffic_db_path(cfg: PipelineConfig) -> Path:
    """Where traffic lives: `serve.traffic.path`, else `<runs_dir>/<run>/traffic.db`."""
    return cfg.serve.traffic.path or cfg.run.runs_dir / cfg.run.name / "traffic.db"


def recorder_for(cfg: PipelineConfig) -> TrafficRecorder | None:
    """The server's recorder when serve.traffic.enabled, else None."""
    traffic = cfg.serve.traffic
    if not traffic.enabled:
        return None
    store = TrafficStore(traffic_db_path(cfg), traffic.max_rows, traffic.max_age_days)
    return TrafficRecorder(store, cfg.index.embedder, cfg.synthesize.unanswerable.answer,
                           keep_text=cfg.serve.log_prompts)


def window_embeddings(rows: Sequence[dict[str, Any]]) -> Any:
    np = require("numpy")
    return np.stack([np.frombuffer(row["embedding"], dtype=np.float32) for row in rows])


class TrafficRecorder:
    """Queues requests from the route; a child process at the lowest CPU priority, on one
    thread, embeds them in batches and writes them. In the server's own process the embedder
    took 40% of a 2-core machine's throughput (its thread team fought the engine's for the
    cores, docs/benchmarks.md); at nice 19 it gets only the cycles generation leaves."""

    def __init__(self, store: TrafficStore, embedder: str, abstention: str | None,
                 keep_text: bool = False, queue_size: int = 10_000, batch: int = 64) -> None:
        import multiprocessing

        self.store = store
        self.dropped = 0
        context = multiprocessing.get_context("spawn")  # no forked copy of the loaded model
        self._failed = context.Value("i", 0)
        self._queue: Any = context.Queue(queue_size)
        self._process = context.Process(
            target=_record_loop, name="tuneline-traffic", daemon=True,
            args=(self._queue, self._failed, str(store.path), store.max_rows,
                  store.max_age_days, embedder, abstention, keep_text, batch))
        self._process.start()

    @property
    def failed(self) -> int:
        """Requests the recording process could not write (each failure is logged there)."""
        return int(self._failed.value)

    def record(self, request: Request) -> None:
        """Hand one request over; never blocks (a full queue drops it and counts)."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop the recording process."""
        with contextlib.suppress(queue.Full, ValueError, OSError):
            self._queue.put(None, timeout=timeout)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()


def _record_loop(requests: Any, failed: Any, path: str, max_rows: int, max_age_days: float,
                 embedder_name: str, abstention: str | None, keep_text: bool,
                 batch: int) -> None:
    """The recording process: take batches off the queue, embed, write; None ends it."""
    import os

    os.nice(19)
    torch = require("torch")
    torch.set_num_threads(1)
    from tuneline.evaluate.metrics import is_abstention
    from tuneline.rag.embed import Embedder

    np = require("numpy")
    store = TrafficStore(Path(path), max_rows, max_age_days)
    embedder: Embedder | None = None
    done = False
    while not done:
        pending: list[Request] = []
        item = requests.get()
        while item is not None:
            pending.append(item)
            if len(pending) >= batch:
                break
            try:
                item = requests.get_nowait()
            except queue.Empty:
                break
        done = item is None
        if not pending:
            continue
        try:
            embedder = embedder or Embedder(embedder_name)
            vectors = embedder.embed([r.question for r in pending])
            store.add([
                (r.ts, r.model, r.status, r.latency_s, r.passages,
                 int(is_abstention(r.answer, abstention)), len(r.answer.split()),
                 r.question if keep_text else None,
                 np.asarray(vector, dtype=np.float32).tobytes())
                for r, vector in zip(pending, vectors, strict=True)])
        except Exception:  # a recording failure must never take the server down
            with failed.get_lock():
                failed.value += len(pending)
            logging.getLogger("tuneline.serve").exception("traffic recording failed")


MIN_WINDOW = 20  # fewer live questions than this say nothing reliable about drift


def window_counts(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(hits, n) of the declined answers among the answered requests, and of the questions
    without a passage among the RAG ones."""
    answered = [r for r in rows if r["status"] == 200]
    with_rag = [r for r in answered if r["passages"] is not None]
    return {"abstention": (sum(r["declined"] for r in answered), len(answered)),
            "no_passage": (sum(r["passages"] == 0 for r in with_rag), len(with_rag))}


class DriftWatcher:
    """Checks the newest `window` recorded requests against `baseline` every `interval_s`
    (first right away) and sets the server's `tuneline_drift_*` gauges."""

    def __init__(self, store: TrafficStore, baseline: Any, metrics: Any, interval_s: float,
                 window: int, webhook: str | None = None) -> None:
        self.store, self.baseline, self.metrics = store, baseline, metrics
        self.interval_s, self.window, self.webhook = interval_s, window, webhook
        self.checks = 0
        self.alerting = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneline-drift", daemon=True)
        self._thread.start()

    def check(self) -> dict[str, float] | None:
        """One check; None when the window is too small to say anything."""
        from tuneline.monitor.drift import alerts_of, compare, compare_rates

        rows = self.store.window(self.window)
        if len(rows) < MIN_WINDOW:
            return None
        report = compare(self.baseline, window_embeddings(rows))
        counts = window_counts(rows)
        rates = compare_rates(self.baseline.rates, counts)
        values = {"alert": float(report.alert or any(r.alert for r in rates)),
                  "window": float(len(rows)), "out_of_coverage": report.out_of_coverage,
                  "classifier_auc": report.classifier_auc, "mmd_p_value": report.mmd_p_value,
                  "psi": report.psi, "checked_timestamp_seconds": time.time()}
        values.update({name: hits / n for name, (hits, n) in counts.items() if n})
        self.metrics.set_drift(values)
        self.checks += 1
        alerts = alerts_of(report, rates)
        if alerts and not self.alerting and self.webhook:
            from tuneline.monitor.webhook import post_alert

            logging.getLogger("tuneline.serve").warning(
                "drift: %s; webhook %s", "; ".join(alerts),
                post_alert(self.webhook, {**values, "alerts": alerts}))
        self.alerting = bool(alerts)
        return values

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a failed check must never take the server down
                logging.getLogger("tuneline.serve").exception("drift check failed")
            self._stop.wait(self.interval_s)
