"""Retrieval quality and speed per search mode on a run's evaluation sets.

Ours is the config's `index.retrieval.mode`; the baseline is plain vector search (MiniLM
embeddings, what most RAG stacks start with); hybrid is printed too. For every eval set whose
questions have a gold record (recall, heldout), the share of questions whose gold record, or a
row stating the same fact, is among the top k, for several k; then queries/s and peak RSS. It
needs a run whose index and curate stages are done (`tuneline curate CONFIG` is enough).

    .venv/bin/python bench/retrieval.py examples/paris2024/tuneline.yaml
    .venv/bin/python bench/retrieval.py CONFIG --k 1,3,5 run.runs_dir=/tmp/runs
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

MODES = ("vector", "hybrid", "text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, as for `tuneline run`")
    parser.add_argument("--k", default="1,2,3,4,6", help="comma-separated cut-offs")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]

    from tuneline.artifacts import read_jsonl
    from tuneline.config import load_config
    from tuneline.evaluation.retrieval import gold_rank
    from tuneline.rag.retrieve import Retriever

    cfg = load_config(args.config, args.overrides)
    eval_dir = Path(cfg.run.runs_dir) / cfg.run.name / "curate" / "eval"
    sets = {name: read_jsonl(eval_dir / f"{name}.jsonl") for name in ("recall", "heldout")}
    ours = cfg.index.retrieval.mode
    found: dict[str, dict[str, list[float]]] = {}
    print(f"{'mode':<22}{'set':<9}{'n':>4}" + "".join(f"{'top ' + str(k):>9}" for k in ks)
          + f"{'queries/s':>11}")
    retriever = Retriever.for_run(cfg)  # one embedder and store for every mode
    for mode in MODES:
        retriever.settings = cfg.index.retrieval.model_copy(update={"mode": mode})
        found[mode] = {}
        for name, items in sets.items():
            start = time.perf_counter()
            hits = retriever.search([item["question"] for item in items], max(ks))
            rate = len(items) / (time.perf_counter() - start)
            ranks = [gold_rank(item, h) for item, h in zip(items, hits, strict=True)]
            shares = [sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in ks]
            found[mode][name] = shares
            label = f"{mode} (ours)" if mode == ours else mode
            print(f"{label:<22}{name:<9}{len(items):>4}" + "".join(f"{s:>9.1%}" for s in shares)
                  + f"{rate:>11.1f}")
    retriever.close()
    baseline = "vector"
    for name in sets:
        k = 3 if 3 in ks else ks[0]
        ours_share, base_share = (found[m][name][ks.index(k)] for m in (ours, baseline))
        ratio = f"{ours_share / base_share:.2f}x" if base_share else "n/a"
        print(f"{name}: top {k} {ours} {ours_share:.1%} vs {baseline} {base_share:.1%} = {ratio}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
