"""Serving under load: `tuneline serve` (continuous batching) vs one request at a time.

Ours is the real server, `tuneline serve --base MODEL` started as its own process on 127.0.0.1.
The load comes from another process (this script with --client): N concurrent httpx async
clients, each sending streamed chat completions (stream_options.include_usage) on the packaged
`general` probe's questions, greedy (temperature 0), fixed max_tokens. A level ends after
--requests-per-level answered requests or --level-seconds, whichever comes first; a 429 is
counted, then retried after its Retry-After (as the openai client does). Per level: status
counts, completion tokens/s (usage of the final chunk over the level's wall time), p50/p95
latency and time to first content chunk.

The baseline is the server most people write first: one request at a time through
`model.generate` (`generate_batch(model, tok, [conversation], max_tokens)` on the model from
`load_for_inference`), in its own process, same questions, greedy, same max_tokens. It is timed
without HTTP, which only flatters it. Peak RSS is each process's high-water mark (VmHWM).

--soak SECONDS instead holds C clients (--soak-clients) against the server for that long and
samples the server's RSS every --sample-seconds, to show whether memory keeps growing.

    .venv/bin/python bench/serve.py --levels 1,16,64 --requests-per-level 48 --max-queue 16
    .venv/bin/python bench/serve.py --soak 300 --soak-clients 16 --output soak.json
    options: --model, --max-tokens, --max-batch-size, --max-queue, --baseline-requests,
             --threads, --output result.json (the server log lands next to it)

On a machine shared with other work, pass --threads 1: with torch's default of one thread per
core, a single busy core stalls every step (threads wait for each other) and single requests
swing from 1 s to 12 s; the baseline's per-request seconds in the JSON show it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

MIB = 1024**2
HOST = "127.0.0.1"  # every byte of this benchmark stays on loopback


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def questions() -> list[str]:
    text = resources.files("tuneline.evaluate").joinpath("probes/general.jsonl").read_text()
    return [json.loads(line)["question"] for line in text.splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def proc_status_bytes(pid: int | str, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM = peak RSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


# -- load generator: runs in its own process (--client SPEC) -------------------------------------


async def one_request(client: Any, spec: dict[str, Any], question: str) -> dict[str, Any]:
    """One streamed chat completion; its outcome, latency, TTFT and completion tokens."""
    body = {"model": spec["model"], "messages": [{"role": "user", "content": question}],
            "max_tokens": spec["max_tokens"], "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    out: dict[str, Any] = {"outcome": "error", "ttft": None, "tokens": 0, "retry_after": 1.0}
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                out["outcome"] = str(response.status_code)
                out["retry_after"] = float(response.headers.get("retry-after", 1))
                out["detail"] = response.text[:300]
                return out
            out["outcome"] = "no [DONE]"
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    if out["outcome"] == "no [DONE]":
                        out["outcome"] = "200"
                    break
                chunk = json.loads(data)
                if "error" in chunk:  # an error event inside a 200 stream
                    out["outcome"] = f"stream {chunk['error'].get('type', 'error')}"
                    out["detail"] = str(chunk["error"].get("message"))[:300]
                    continue
                for choice in chunk.get("choices") or ():
                    if out["ttft"] is None and (choice.get("delta") or {}).get("content"):
                        out["ttft"] = time.perf_counter() - started
                if chunk.get("usage"):
                    out["tokens"] = int(chunk["usage"]["completion_tokens"])
    except Exception as exc:  # connection refused/reset, timeouts: counted, never fatal
        out["outcome"] = f"exception {type(exc).__name__}"
        out["detail"] = str(exc)[:300]
    out["latency"] = time.perf_counter() - started
    return out


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `clients` workers until `requests` are answered (None: no cap) or time runs out."""
    import httpx

    probe = questions()
    target, deadline = spec["requests"], time.monotonic() + spec["seconds"]
    state = {"reserved": 0, "next": spec.get("offset", 0)}
    results: list[dict[str, Any]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline and (target is None or state["reserved"] < target):
            state["reserved"] += 1
            question = probe[state["next"] % len(probe)]
            state["next"] += 1
            result = await one_request(client, spec, question)
            result["finished_at"] = time.perf_counter()
            results.append(result)
            if result["outcome"] == "429":  # not an answer: give the slot back, wait, retry
                state["reserved"] -= 1
                await asyncio.sleep(min(result["retry_after"],
                                        max(0.0, deadline - time.monotonic())))

    n = spec["clients"]
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    timeout = httpx.Timeout(spec["request_timeout"], connect=10)
    async with httpx.AsyncClient(base_url=spec["base_url"], limits=limits,
                                 timeout=timeout) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(spec["clients"])))
        ended = max([r["finished_at"] for r in results], default=time.perf_counter())
    return summarize(results, ended - started, spec["clients"])


def summarize(results: list[dict[str, Any]], wall: float, clients: int) -> dict[str, Any]:
    """Counts per outcome and the figures of the answered (200) requests."""
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    ok = [r for r in results if r["outcome"] == "200"]
    five = sum(n for k, n in outcomes.items()
               if k[:1] == "5" or k in ("stream server_error", "stream timeout_error"))
    tokens = sum(r["tokens"] for r in ok)
    latencies = [r["latency"] for r in ok]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    details = sorted({f"{r['outcome']}: {r['detail']}" for r in results
                      if r["outcome"] != "200" and r.get("detail")})
    return {
        "clients": clients, "attempts": len(results), "completed": len(ok),
        "status_200": len(ok), "status_429": outcomes.get("429", 0), "status_5xx": five,
        "errors": len(results) - len(ok) - outcomes.get("429", 0) - five,
        "outcomes": outcomes, "error_details": details[:10],
        "completion_tokens": tokens, "seconds": wall,
        "tokens_per_second": tokens / wall if wall > 0 else 0.0,
        "requests_per_second": len(ok) / wall if wall > 0 else 0.0,
        "latency_p50": percentile(latencies, 50), "latency_p95": percentile(latencies, 95),
        "ttft_p50": percentile(ttfts, 50), "ttft_p95": percentile(ttfts, 95),
        "answers_with_no_text": len(ok) - len(ttfts),
    }


# -- baseline: one request at a time through model.generate, in its own process (--baseline) ----


def baseline(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from tuneline.models.generation import generate_batch
    from tuneline.models.loading import load_for_inference

    model, tokenizer = load_for_inference(spec["model"], None, precision=spec["precision"])
    probe = questions()
    for question in probe[-2:]:  # warm-up, not timed
        generate_batch(model, tokenizer, [[{"role": "user", "content": question}]],
                       spec["max_tokens"])
    latencies, answer_tokens = [], []
    started = time.perf_counter()
    for i in range(spec["requests"]):
        conversation = [{"role": "user", "content": probe[i % len(probe)]}]
        t0 = time.perf_counter()
        answer = generate_batch(model, tokenizer, [conversation], spec["max_tokens"])[0]
        latencies.append(time.perf_counter() - t0)
        answer_tokens.append(answer.completion_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(answer_tokens)
    return {"path": "one at a time, model.generate", "requests": spec["requests"],
            "completion_tokens": tokens, "seconds": seconds,
            "per_request": [[round(t, 3), n]  # seconds, tokens: shows CPU contention
                            for t, n in zip(latencies, answer_tokens, strict=True)],
            "tokens_per_second": tokens / seconds, "requests_per_second": len(latencies) / seconds,
            "latency_p50": percentile(latencies, 50), "latency_p95": percentile(latencies, 95),
            "dtype": str(next(model.parameters()).dtype), "torch_threads": torch.get_num_threads(),
            "peak_rss": proc_status_bytes("self", "VmHWM")}


def child(mode: str, spec_path: Path) -> None:
    """Entry point of the --client and --baseline processes: spec JSON in, result JSON out."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    result = asyncio.run(drive(spec)) if mode == "client" else baseline(spec)
    Path(spec["out"]).write_text(json.dumps(result), encoding="utf-8")


def run_child(mode: str, spec: dict[str, Any], workdir: Path, timeout_s: float) -> dict[str, Any]:
    """Run this script as a --client/--baseline process and return what it wrote."""
    stem = f"{mode}-{time.monotonic_ns()}"
    spec = {**spec, "out": str(workdir / f"{stem}.out.json")}
    spec_path = workdir / f"{stem}.spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    subprocess.run([sys.executable, __file__, f"--{mode}", str(spec_path)], check=True,
                   timeout=timeout_s)
    return json.loads(Path(spec["out"]).read_text(encoding="utf-8"))


# -- the server under test -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """`tuneline serve --base MODEL` on a free loopback port, its output in `log_path`."""

    def __init__(self, model: str, overrides: list[str], workdir: Path, log_path: Path):
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.command = [sys.executable, "-m", "tuneline.cli.main", "serve", *overrides,
                        "--base", model, "--host", HOST, "--port", str(self.port)]
        self.workdir, self.log_path = workdir, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log(f"starting {' '.join(self.command[2:])} (log: {self.log_path})")
        self._log = self.log_path.open("wb")
        # A scratch cwd: no tuneline.yaml is picked up and nothing is written into the repo.
        self.process = subprocess.Popen(self.command, cwd=self.workdir, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=os.environ.copy())
        return self

    def wait_ready(self, timeout_s: float) -> float:
        """Poll GET /ready until 200; seconds it took. Raises with the log tail on failure."""
        import httpx

        started = time.monotonic()
        while True:
            try:
                if httpx.get(f"{self.base_url}/ready", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() - started > timeout_s:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server did not become ready:\n{tail}")
            time.sleep(0.5)

    def rss(self) -> int:
        assert self.process is not None
        return proc_status_bytes(self.process.pid, "VmRSS")

    def peak_rss(self) -> int:
        assert self.process is not None
        return proc_status_bytes(self.process.pid, "VmHWM")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the server drains, then exits
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class RssSeries:
    """Samples the server's RSS every `interval` seconds in a background thread."""

    def __init__(self, server: Server, interval: float):
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - started, self.server.rss()))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSeries:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def slope_mib_per_min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var / MIB * 60 if var else None


def scan_log(path: Path) -> dict[str, Any]:
    """Tracebacks, ERROR records and 5xx responses in the server's output."""
    text = path.read_text(errors="replace")
    errors, five = [], []
    for line in text.splitlines():
        record = None
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
        if record is not None:
            if record.get("level") in ("ERROR", "CRITICAL"):
                errors.append(line[:4000])
            if int(record.get("status") or 0) >= 500:
                five.append(line[:1000])
        elif re.search(r'" 5\d\d ', line):  # uvicorn's access log
            five.append(line[:1000])
    tracebacks = text.count("Traceback (most recent call last)")
    return {"log": str(path), "tracebacks": tracebacks, "error_records": len(errors),
            "records_5xx": len(five), "first_errors": errors[:3], "first_5xx": five[:5]}


# -- the benchmark ---------------------------------------------------------------------------------


def client_spec(args: argparse.Namespace, server: Server, clients: int, requests: int | None,
                seconds: float, offset: int = 0) -> dict[str, Any]:
    return {"base_url": server.base_url, "model": args.model, "max_tokens": args.max_tokens,
            "clients": clients, "requests": requests, "seconds": seconds,
            "request_timeout": args.request_timeout, "offset": offset}


def run_levels(args: argparse.Namespace, server: Server, workdir: Path,
               measure_baseline: Any = None) -> list[dict[str, Any]]:
    """Each level in turn; with `measure_baseline`, a baseline run right before each level, so
    that each ratio compares two measurements a minute apart (this machine's speed drifts by
    up to 2x over minutes: shared cores)."""
    rows = []
    bound = args.level_seconds + args.request_timeout + 60
    for clients in args.levels:
        adjacent = measure_baseline() if measure_baseline else None
        log(f"level {clients} clients: up to {args.requests_per_level} answers or "
            f"{args.level_seconds:g} s")
        row = run_child("client", client_spec(args, server, clients, args.requests_per_level,
                                              args.level_seconds), workdir, bound)
        row["server_rss_after"], row["loadavg_after"] = server.rss(), os.getloadavg()
        log(f"  {row['completed']} answered, {row['tokens_per_second']:.1f} tok/s, "
            f"429 {row['status_429']}, 5xx {row['status_5xx']}, errors {row['errors']}"
            + (f" {row['error_details'][:2]}" if row["error_details"] else ""))
        if adjacent is not None:
            row["adjacent_baseline_tokens_per_second"] = adjacent["tokens_per_second"]
        rows.append(row)
    return rows


def run_soak(args: argparse.Namespace, server: Server, workdir: Path) -> dict[str, Any]:
    log(f"soak: {args.soak_clients} clients for {args.soak:g} s, RSS every "
        f"{args.sample_seconds:g} s")
    spec = client_spec(args, server, args.soak_clients, None, args.soak)
    with RssSeries(server, args.sample_seconds) as series:
        load = run_child("client", spec, workdir, args.soak + args.request_timeout + 60)
    rss = [r for _, r in series.samples]
    half = series.samples[len(series.samples) // 2:]
    return {**load, "rss_series": [[round(t, 1), r] for t, r in series.samples],
            "rss_first": rss[0], "rss_last": rss[-1], "rss_max": max(rss),
            "slope_mib_per_min": slope_mib_per_min(series.samples),
            "slope_mib_per_min_second_half": slope_mib_per_min(half)}


def show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def sec(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    base = result["baseline"]
    table = Table(title=f"{result['model']}: tuneline serve vs one request at a time "
                  f"(max_tokens {result['max_tokens']}, greedy)")
    for name in ("path", "clients", "answered", "200", "429", "5xx", "errors", "tok/s",
                 "× baseline", "p50 s", "p95 s", "TTFT p50", "TTFT p95"):
        table.add_column(name, justify="left" if name == "path" else "right")
    if base:
        table.add_row("baseline (generate)", "1", str(base["requests"]), "-", "-", "-",
                      "-", f"{base['tokens_per_second']:.1f}", "1.00", sec(base["latency_p50"]),
                      sec(base["latency_p95"]), "-", "-")
    for row in result["levels"] + ([result["soak"]] if result.get("soak") else []):
        ratio = row.get("ratio_vs_baseline")
        table.add_row("soak" if row is result.get("soak") else "tuneline serve",
                      str(row["clients"]), str(row["completed"]), str(row["status_200"]),
                      str(row["status_429"]), str(row["status_5xx"]), str(row["errors"]),
                      f"{row['tokens_per_second']:.1f}", "-" if ratio is None else f"{ratio:.2f}",
                      sec(row["latency_p50"]), sec(row["latency_p95"]), sec(row["ttft_p50"]),
                      sec(row["ttft_p95"]))
    Console(width=None if sys.stdout.isatty() else 150).print(table)


def verdicts(result: dict[str, Any]) -> list[str]:
    """The issue's targets: ≥ 5× baseline tok/s at 16 clients; no 5xx at 64, excess gets 429."""
    by_clients = {row["clients"]: row for row in result["levels"]}
    lines = []
    if 16 in by_clients and by_clients[16].get("ratio_vs_baseline") is not None:
        ratio = by_clients[16]["ratio_vs_baseline"]
        lines.append(f"16 clients: {ratio:.2f}x the baseline's tokens/s (target >= 5x: "
                     f"{'met' if ratio >= 5 else 'NOT met'})")
    else:
        lines.append("16 clients: not measured (add 16 to --levels, keep the baseline)")
    if 64 in by_clients:
        row, capacity = by_clients[64], result["server"]["capacity"]
        excess = "64 > capacity, so 429s are expected" if capacity < 64 else \
            "64 fits the capacity, so no 429 is expected"
        lines.append(f"64 clients: {row['status_5xx']} 5xx (target 0: "
                     f"{'met' if row['status_5xx'] == 0 else 'NOT met'}), {row['status_429']} "
                     f"429, {row['errors']} other errors; capacity max_batch_size + max_queue "
                     f"= {capacity} ({excess})")
    return lines


def print_summary(result: dict[str, Any]) -> None:
    show(result)
    base, server = result["baseline"], result["server"]
    for row in result["levels"]:
        if row.get("ratio_vs_baseline") is not None:
            adjacent = row.get("adjacent_baseline_tokens_per_second")
            print(f"ratio ours / baseline at {row['clients']:>2} clients: "
                  f"{row['ratio_vs_baseline']:.2f}x tokens/s"
                  + (f" (baseline just before: {adjacent:.1f} tok/s)" if adjacent else ""))
    if len(levels := result["levels"]) > 1 and levels[0]["tokens_per_second"]:
        print("scaling vs our own first level (independent of the baseline): " + ", ".join(
            f"{r['clients']} clients {r['tokens_per_second'] / levels[0]['tokens_per_second']:.2f}x"
            for r in levels[1:]))
    for line in result["verdicts"]:
        print(line)
    print(f"peak RSS: server {server['peak_rss'] / MIB:.0f} MiB"
          + (f", baseline {base['peak_rss'] / MIB:.0f} MiB" if base else ""))
    if soak := result.get("soak"):
        series = " ".join(f"{r / MIB:.0f}" for _, r in soak["rss_series"])
        print(f"soak RSS MiB every {result['sample_seconds']:g} s: {series}")
        print(f"soak RSS first {soak['rss_first'] / MIB:.0f}, last {soak['rss_last'] / MIB:.0f}, "
              f"max {soak['rss_max'] / MIB:.0f} MiB; slope {soak['slope_mib_per_min'] or 0:.2f} "
              f"MiB/min (second half {soak['slope_mib_per_min_second_half'] or 0:.2f})")
    found = server["log_scan"]
    print(f"server log {found['log']}: {found['tracebacks']} tracebacks, "
          f"{found['error_records']} ERROR records, {found['records_5xx']} 5xx records")
    for line in found["first_errors"][:1] + found["first_5xx"][:2]:
        print(f"  {line[:600]}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--levels", default="1,2,4,8,16,32,64",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--requests-per-level", type=int, default=64)
    parser.add_argument("--level-seconds", type=float, default=120.0,
                        help="time bound per level: no new request starts after it")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="serve.batching.max_batch_size (default: the server's)")
    parser.add_argument("--max-queue", type=int, default=None,
                        help="serve.batching.max_queue (default: the server's)")
    parser.add_argument("--baseline-requests", type=int, default=16,
                        help="requests the baseline answers one by one (0: skip it)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="both sides (train.precision for the server)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for both sides (default: the project's choice)")
    parser.add_argument("--request-timeout", type=float, default=180.0,
                        help="client-side timeout of one request")
    parser.add_argument("--soak", type=float, default=None, metavar="SECONDS",
                        help="instead of the levels: constant load for this long")
    parser.add_argument("--soak-clients", type=int, default=16)
    parser.add_argument("--sample-seconds", type=float, default=5.0,
                        help="RSS sampling interval in the soak")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--output", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--baseline-each-level", action="store_true",
                        help="measure the baseline again right before each level and compare "
                        "each level with that one (for machines whose speed drifts)")
    parser.add_argument("--client", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",") if n.strip()]
    if not args.soak and (few := [n for n in args.levels if n > args.requests_per_level]):
        log(f"warning: --requests-per-level {args.requests_per_level} is below {few} clients; "
            "those levels never reach full concurrency")
    if Path(args.model).exists():  # the server runs in a scratch folder: make paths absolute
        args.model = str(Path(args.model).resolve())
    return args


def server_settings(args: argparse.Namespace, workdir: Path) -> tuple[list[str], int]:
    """Config overrides for the server, and its capacity (batch slots + queue)."""
    from tuneline.serve.config import BatchingConfig

    defaults = BatchingConfig()
    batch = args.max_batch_size or defaults.max_batch_size
    queue = defaults.max_queue if args.max_queue is None else args.max_queue
    overrides = [f"serve.batching.max_batch_size={batch}", f"serve.batching.max_queue={queue}",
                 f"train.precision={args.precision}",
                 f"serve.feedback_path={workdir / 'feedback.db'}"]
    return overrides, batch + queue


def main() -> None:
    args = parse_args()
    if args.client or args.baseline:
        return child("client" if args.client else "baseline", args.client or args.baseline)
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by both children
    started, load_before = time.monotonic(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuneline-bench-serve-") as tmp:
        workdir = Path(tmp)
        log_path = (args.output.with_suffix(".server.log") if args.output
                    else workdir / "server.log")
        base = None

        def measure_baseline() -> dict[str, Any]:
            log(f"baseline: {args.baseline_requests} requests one at a time via model.generate")
            run = run_child("baseline", {"model": args.model, "max_tokens": args.max_tokens,
                                         "requests": args.baseline_requests,
                                         "precision": args.precision}, workdir, 1800)
            run["loadavg_after"] = os.getloadavg()
            log(f"  {run['tokens_per_second']:.1f} tok/s, peak RSS {run['peak_rss'] / MIB:.0f}"
                f" MiB")
            return run

        if args.baseline_requests and not args.soak:
            base = measure_baseline()
        overrides, capacity = server_settings(args, workdir)
        with Server(args.model, overrides, workdir, log_path) as server:
            log(f"server ready after {server.wait_ready(args.ready_timeout):.1f} s")
            warm = run_child("client", client_spec(args, server, 1, 2, 60, offset=7), workdir,
                             300)
            log(f"warm-up: {warm['completed']} answered")
            levels = [] if args.soak else run_levels(
                args, server, workdir,
                measure_baseline if base and args.baseline_each_level else None)
            soak = run_soak(args, server, workdir) if args.soak else None
            peak = server.peak_rss()
        for row in levels + ([soak] if soak else []):
            reference = row.get("adjacent_baseline_tokens_per_second") or (
                base["tokens_per_second"] if base else None)
            row["ratio_vs_baseline"] = row["tokens_per_second"] / reference if reference else None
        result = {
            "model": args.model, "max_tokens": args.max_tokens,
            "requests_per_level": args.requests_per_level, "level_seconds": args.level_seconds,
            "sample_seconds": args.sample_seconds, "baseline": base, "levels": levels,
            "soak": soak, "wall_seconds": time.monotonic() - started, "versions": _versions(),
            "loadavg_1_5_15": {"before": load_before, "after": os.getloadavg()},
            "server": {"command": server.command[2:], "capacity": capacity, "peak_rss": peak,
                       "log_scan": scan_log(log_path)},
        }
        result["verdicts"] = verdicts(result) if levels else []
        print_summary(result)
        if args.output:
            args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            log(f"wrote {args.output} (server log {log_path})")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "cpus": str(os.cpu_count())}
    for name in ("torch", "transformers", "fastapi", "uvicorn", "httpx", "tuneline"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


if __name__ == "__main__":
    main()
