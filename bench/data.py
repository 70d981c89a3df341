"""Curation throughput on synthetic support tickets: tuneline's steps vs plain pandas.

Steps: normalise → PII redaction → exact dedup → near dedup → seeded split (80/10/10 by key).
Baseline, in the same run: the pandas way a data team would write it (vectorised `.str`
normalisation and regex masking without checksums, `drop_duplicates`, `sample`). pandas has no
near-duplicate step; its stand-in is brute-force pairwise Jaccard on a sample, extrapolated
(quadratic) to the full size.

    .venv/bin/python bench/data.py --rows 100000
    .venv/bin/python bench/data.py --rows 1000000
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections.abc import Callable
from typing import Any

WORDS = [
    "order", "refund", "printer", "vpn", "password", "badge", "laptop", "screen", "cracked",
    "arrived", "late", "account", "locked", "invoice", "shipping", "delayed", "tracking",
    "number", "warranty", "replacement", "charger", "battery", "login", "error", "timeout",
    "mailbox", "sync", "calendar", "meeting", "license", "expired", "renewal",
]


def synthetic_tickets(n: int, seed: int = 0) -> list[str]:
    """Tickets with ~5% exact repeats, ~5% near repeats and PII in ~30% of them."""
    rng = random.Random(seed)
    rows: list[str] = []
    for i in range(n):
        roll = rng.random()
        if rows and roll < 0.05:
            rows.append(rows[rng.randrange(len(rows))])
            continue
        if rows and roll < 0.10:
            words = rows[rng.randrange(len(rows))].split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            rows.append(" ".join(words))
            continue
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(18, 40)))
        pii = rng.random()
        if pii < 0.1:
            body += f" contact user{i}@example.com"
        elif pii < 0.2:
            body += f" call +1 415 555 {rng.randint(1000, 9999)}"
        elif pii < 0.3:
            body += f" from host 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7"
        rows.append(f"Ticket {i}:  {body}\t")
    return rows


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(name: str, fn: Callable[[], Any], rows: int, table: list) -> Any:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    table.append((name, rows, seconds, peak_mib()))
    return result


def run_tuneline(texts: list[str], table: list) -> None:
    from tuneline.curate.clean import normalize_text
    from tuneline.curate.dedup import exact_duplicates, near_duplicates
    from tuneline.curate.pii import Redactor

    n = len(texts)
    texts = timed("normalise", lambda: [normalize_text(t) for t in texts], n, table)
    redactor = Redactor()
    texts = timed("pii", lambda: [redactor.redact(t) for t in texts], n, table)
    repeats = set(timed("exact dedup", lambda: exact_duplicates(texts), n, table))
    texts = [t for i, t in enumerate(texts) if i not in repeats]
    near = set(timed("near dedup", lambda: near_duplicates(texts, 0.85), len(texts), table))
    texts = [t for i, t in enumerate(texts) if i not in near]

    def split() -> list[int]:
        rng = random.Random(0)
        return [0 if r < 0.8 else 1 if r < 0.9 else 2 for r in (rng.random() for _ in texts)]

    timed("split", split, len(texts), table)


def run_pandas(texts: list[str], table: list, near_sample: int) -> None:
    import pandas as pd

    n = len(texts)
    series = pd.Series(texts)
    series = timed("normalise", lambda: series.str.normalize("NFKC")
                   .str.replace(r"\s+", " ", regex=True).str.strip(), n, table)
    patterns = {r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}": "<EMAIL>",
                r"\+?\d[\d ().-]{7,}\d": "<PHONE>",
                r"\b(?:\d{1,3}\.){3}\d{1,3}\b": "<IP_ADDRESS>"}

    def mask() -> pd.Series:
        masked = series
        for pattern, label in patterns.items():
            masked = masked.str.replace(pattern, label, regex=True)
        return masked

    series = timed("pii", mask, n, table)
    def drop_exact() -> pd.DataFrame:
        key = series.str.lower().str.replace(r"[\W_]+", " ", regex=True).str.strip()
        return pd.DataFrame({"text": series, "key": key}).drop_duplicates("key")

    frame = timed("exact dedup", drop_exact, n, table)
    sample = frame["text"].head(near_sample).tolist()
    started = time.perf_counter()
    shingle_sets = [set(zip(t.split(), t.split()[1:], t.split()[2:], strict=False))
                    for t in sample]
    for i, a in enumerate(shingle_sets):
        for b in shingle_sets[:i]:
            if len(a & b) / max(1, len(a | b)) > 0.85:
                break
    seconds = (time.perf_counter() - started) * (len(frame) / len(sample)) ** 2
    table.append((f"near dedup (pairwise on {len(sample):,}, extrapolated)", len(frame),
                  seconds, peak_mib()))
    timed("split", lambda: frame.sample(frac=1.0, random_state=0), len(frame), table)


def show(title: str, table: list) -> dict[str, float]:
    print(f"\n{title}")
    print(f"{'step':<44}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'peak MiB':>10}")
    speeds = {}
    for name, rows, seconds, peak in table:
        speeds[name.split(" (")[0]] = rows / seconds if seconds else float("inf")
        print(f"{name:<44}{rows:>10,}{seconds:>10.2f}{rows / seconds:>12,.0f}{peak:>10,.0f}")
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--near-sample", type=int, default=2_000,
                        help="rows for the brute-force near-dup baseline")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    texts = synthetic_tickets(args.rows)
    ours: list = []
    run_tuneline(texts, ours)
    base: list = []
    run_pandas(texts, base, args.near_sample)
    our_speed = show(f"tuneline ({args.rows:,} rows)", ours)
    base_speed = show("pandas baseline", base)
    combined = 1 / (1 / our_speed["normalise"] + 1 / our_speed["exact dedup"])
    print(f"\nnormalise + exact dedup: {combined:,.0f} rows/s (tuneline)")
    print("ratio tuneline / pandas (rows/s): " + ", ".join(
        f"{step} {our_speed[step] / base_speed[step]:.2f}x" for step in our_speed))


if __name__ == "__main__":
    main()
