"""Drift monitoring: the server's traffic recording overhead, and how fast monitor scores.

Recording: the real app (`tuneline.serve.app.build_app` on the embedded SmolLM2 through the
transformers engine, uvicorn on 127.0.0.1 in this process) answers the packaged `general`
probe's questions from `--clients` concurrent httpx clients, greedy, `--max-tokens` each;
first with recording off (the baseline), then with `serve.traffic` on (MiniLM embeddings
written by the background thread into a SQLite store). Each phase runs `--requests` requests
after a warm-up round; throughput is answered requests per second over the phase's wall time.
Overhead = 1 - on / off, per pair of phases; `--repeats` pairs, alternated, and their median.

Scoring: `tuneline.monitor.drift.compare` of windows of 200 and 1,000 live questions (already
embedded, as `--traffic` reads them) against a baseline of 2,000 training questions; prompts
per second, and the same with the MiniLM embedding of the window included (as `--live` does).

    .venv/bin/python bench/monitor.py [--clients 16] [--requests 96] [--max-tokens 24]
                                      [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from statistics import median

import httpx

MODEL = "embedded:smollm2-135m-instruct"
EMBEDDER = "embedded:all-minilm-l6-v2"


def probe_questions() -> list[str]:
    text = resources.files("tuneline.evaluate").joinpath("probes/general.jsonl").read_text()
    return [json.loads(line)["question"] for line in text.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(60)


async def load(url: str, questions: list[str], clients: int, requests: int,
               max_tokens: int) -> float:
    """Answered requests per second with `clients` concurrent clients."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(questions[i % len(questions)])

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            question = queue.get_nowait()
            reply = await http.post(f"{url}/chat/completions", json={
                "model": "smollm2", "messages": [{"role": "user", "content": question}],
                "max_tokens": max_tokens, "temperature": 0})
            reply.raise_for_status()

    async with httpx.AsyncClient(timeout=600) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return requests / (time.perf_counter() - started)


def recording_phase(args, questions: list[str], record: bool, folder: Path) -> tuple[float, int]:
    from tuneline.monitor.traffic import TrafficRecorder, TrafficStore
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine.load(MODEL, None)
    store = TrafficStore(folder / f"traffic-{record}.db") if record else None
    recorder = TrafficRecorder(store, EMBEDDER, None) if store else None
    app = build_app({"smollm2": engine}, ServeConfig(max_tokens_default=args.max_tokens),
                    traffic=recorder)
    with serving(app) as url:
        asyncio.run(load(url, questions, args.clients, args.clients, args.max_tokens))
        speed = asyncio.run(load(url, questions, args.clients, args.requests,
                                 args.max_tokens))
    rows = store.count() if store else 0
    return speed, rows


def scoring(baseline_size: int = 2000) -> list[str]:
    from tuneline.monitor.drift import build_baseline, compare
    from tuneline.rag.embed import Embedder

    embedder = Embedder(EMBEDDER)
    questions = probe_questions()
    training = [f"{q} (variant {i})" for i in range(baseline_size // len(questions) + 1)
                for q in questions][:baseline_size]
    baseline = build_baseline(embedder.embed(training))
    lines = []
    for window in (200, 1000):
        live = training[:window]
        started = time.perf_counter()
        vectors = embedder.embed(live)
        embedded = time.perf_counter() - started
        started = time.perf_counter()
        compare(baseline, vectors)
        scored = time.perf_counter() - started
        lines.append(f"monitor, window {window}: {window / scored:8.1f} prompts/s scored "
                     f"({scored:.2f} s); with embedding {window / (scored + embedded):8.1f} "
                     f"prompts/s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    questions = probe_questions()
    offs, ons, overheads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # alternated, so drift in machine speed hits both
            off, _ = recording_phase(args, questions, False, Path(tmp))
            on, rows = recording_phase(args, questions, True, Path(tmp) / str(repeat))
            offs, ons = offs + [off], ons + [on]
            overheads.append(1 - on / off)
            print(f"repeat {repeat}: off {off:.2f} req/s, on {on:.2f} req/s ({rows} rows)")
    print(f"serving, {args.clients} clients, {args.requests} requests of {args.max_tokens} "
          f"tokens, median of {args.repeats}: recording off {median(offs):.2f} req/s | on "
          f"{median(ons):.2f} req/s | overhead {median(overheads):+.1%} "
          f"[{min(overheads):+.1%} to {max(overheads):+.1%}]")
    for line in scoring():
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
