"""The floor `index.retrieval.min_similarity: auto` derives, per corpus and seed, and what it
declines at retrieval level, against no floor (the baseline, which declines nothing) and a
fixed floor (`--fixed`, 0.5 by default: the one chosen by hand on the Python FAQ's dev sets).

For each config and seed, curate runs (`tuneline curate CONFIG run.seed=N run.name=floor-sN`)
so the split is that seed's; the floor is derived from the training questions; then the
held-out questions (`reference`), the reworded trained ones (`reference_recall`) and the
withheld ones (held-out questions with every passage quoting their reply left out, as
evaluate asks them) are searched, and a question left without a passage counts as declined.
No model is trained: this measures what the floor shows, not how the model reads it. It reads
the dev sets unless --test.

    .venv/bin/python bench/similarity_floor.py examples/python-faq/tuneline.yaml
    .venv/bin/python bench/similarity_floor.py A/tuneline.yaml B/tuneline.yaml --seeds 0,1,2

A document corpus needs a config like the Python FAQ's (an FAQ source and a chunked one);
docs/benchmarks.md lists the Debian packages the figures there came from.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

SETS = ("reference", "reference_recall", "withheld")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="+")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fixed", type=float, default=0.5)
    parser.add_argument("--test", action="store_true", help="the test sets, not the dev sets")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())
    print("| corpus | seed | auto floor | declined with auto: held-out / reworded / withheld "
          f"| with {args.fixed} | with none |")
    print("|---|---|---|---|---|---|")
    for config in args.configs:
        shares: dict[str, list[list[float]]] = {"auto": [], "fixed": [], "none": []}
        for seed in (int(s) for s in args.seeds.split(",")):
            row = _one_seed(config.resolve(), seed, args.fixed, args.test)
            for name, declined in row["declined"].items():
                shares[name].append([d for d, _ in declined])
            print(f"| {config.parent.name} | {seed} | {_value(row['floor'])} | "
                  + " | ".join(_shares(row["declined"][n]) for n in ("auto", "fixed", "none"))
                  + " |", flush=True)
        medians = {n: [statistics.median(s) for s in zip(*rows, strict=True)]
                   for n, rows in shares.items() if rows}
        print(f"| {config.parent.name} | median | | "
              + " | ".join(" / ".join(f"{100 * m:.0f}%" for m in medians[n])
                           for n in ("auto", "fixed", "none")) + " |")


def _one_seed(config: Path, seed: int, fixed: float, test: bool) -> dict:
    from tuneline.artifacts import read_jsonl
    from tuneline.config import load_config
    from tuneline.evaluate.withheld import withhold_answers
    from tuneline.rag.retrieve import Retriever

    os.chdir(config.parent)  # relative paths in the config are the config's
    overrides = [f"run.seed={seed}", f"run.name=floor-s{seed}"]
    tuneline = Path(sys.executable).with_name("tuneline")
    subprocess.run([str(tuneline), "curate", str(config), *overrides],
                   check=True, capture_output=True)
    declined: dict[str, list[tuple[float, int]]] = {}
    floor = None
    for name, value in (("auto", "auto"), ("fixed", fixed), ("none", None)):
        floor_override = f"index.retrieval.min_similarity={'null' if value is None else value}"
        cfg = load_config(config, [*overrides, floor_override])
        retriever = Retriever.for_run(cfg)
        retriever.similarity_floor()
        if name == "auto":
            floor = retriever.derived_floor
        folder = cfg.run.runs_dir / cfg.run.name / "curate" / "eval"
        folder = folder if test else folder / "dev"
        declined[name] = []
        for set_name in SETS:
            items = [dict(item, set=set_name) for item in read_jsonl(folder / f"{set_name}.jsonl")]
            hits = retriever.search([item["question"] for item in items]) if items else []
            withhold_answers(retriever, items, list(range(len(items))), hits,
                             cfg.index.retrieval.top_k)
            bare = sum(not found for found in hits)
            declined[name].append((bare / len(items) if items else 0.0, len(items)))
        retriever.close()
    return {"floor": floor, "declined": declined}


def _value(floor) -> str:
    return "none (too few questions)" if floor.value is None else f"{floor.value:.3f}"


def _shares(declined: list[tuple[float, int]]) -> str:
    return " / ".join(f"{100 * share:.0f}% of {n}" for share, n in declined)


if __name__ == "__main__":
    main()
