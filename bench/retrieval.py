"""Retrieval quality and speed per search mode on a run's evaluation sets.

It reads the dev sets (`eval/dev/`): a bench picks knobs, and knobs are never picked on the
test sets. Ours is the config's `index.retrieval` (mode, and matching with the question when
`match_question` is on); the baseline is plain vector search (MiniLM embeddings, what most RAG
stacks start with); the other modes are printed too. For every eval set whose questions have
a gold record (recall, heldout), the share of questions whose gold record, or a row stating
the same fact, is among the top k, for several k; for every set, the mean number of passages
returned (at the largest k) and the share left without any (what matching is for: nothing
in the index is about an invented entity); then queries/s and peak RSS. It needs a run whose
index and curate stages are done (`tuneline curate CONFIG` is enough).

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
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    ks = [int(k) for k in args.k.split(",")]

    from tuneline.artifacts import read_jsonl
    from tuneline.config import load_config
    from tuneline.evaluate.retrieval import gold_rank
    from tuneline.rag.retrieve import Retriever

    cfg = load_config(args.config, args.overrides)
    eval_dir = Path(cfg.run.runs_dir) / cfg.run.name / "curate" / "eval" / "dev"
    sets = {name: read_jsonl(eval_dir / f"{name}.jsonl")
            for name in ("recall", "heldout", "unanswerable")}
    ours = cfg.index.retrieval.mode + ("+match" if cfg.index.retrieval.match_question else "")
    variants = [*MODES, *([ours] if ours not in MODES else [])]
    found: dict[str, dict[str, list[float]]] = {}
    print(f"{'search':<22}{'set':<14}{'n':>4}" + "".join(f"{'top ' + str(k):>9}" for k in ks)
          + f"{'passages':>10}{'no passage':>12}{'queries/s':>11}")
    retriever = Retriever.for_run(cfg)  # one embedder and store for every variant
    for variant in variants:
        mode, _, match = variant.partition("+")
        retriever.settings = cfg.index.retrieval.model_copy(
            update={"mode": mode, "match_question": bool(match)})
        found[variant] = {}
        for name, items in sets.items():
            start = time.perf_counter()
            hits = retriever.search([item["question"] for item in items], max(ks))
            rate = len(items) / (time.perf_counter() - start)
            empty = sum(1 for h in hits if not h) / len(hits)
            mean_passages = sum(len(h) for h in hits) / len(hits)
            ranks = [gold_rank(item, h) for item, h in zip(items, hits, strict=True)]
            shares = ([sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in ks]
                      if name != "unanswerable" else [])
            found[variant][name] = shares or [empty]
            label = f"{variant} (ours)" if variant == ours else variant
            cells = "".join(f"{s:>9.1%}" for s in shares) or " " * 9 * len(ks)
            print(f"{label:<22}{name:<14}{len(items):>4}{cells}{mean_passages:>10.1f}"
                  f"{empty:>12.1%}{rate:>11.1f}")
    retriever.close()
    baseline = "vector"
    for name in sets:
        k = 3 if 3 in ks else ks[0]
        at = 0 if name == "unanswerable" else ks.index(k)
        ours_share, base_share = (found[v][name][at] for v in (ours, baseline))
        what = "no passage" if name == "unanswerable" else f"top {k}"
        ratio = f"{ours_share / base_share:.2f}x" if base_share else "n/a"
        print(f"{name}: {what} {ours} {ours_share:.1%} vs {baseline} {base_share:.1%} = {ratio}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
