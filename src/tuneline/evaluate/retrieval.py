"""Retrieval quality on the evaluation sets: recall@k and MRR of each item's gold record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneline.evaluate.metrics import bootstrap_ci
from tuneline.rag.passages import Hit
from tuneline.rag.record_passages import answering_provenances, gold_provenance, provenance


def gold_rank(item: dict[str, Any], hits: Sequence[Hit]) -> int | None:
    """1-based rank of the first hit that states the item's answer (its gold record or a row
    stating the same fact); None when none was retrieved (or the item has no gold record,
    e.g. an unanswerable question)."""
    answering = answering_provenances(item)
    for rank, hit in enumerate(hits, start=1):
        if provenance(hit.passage) in answering:
            return rank
    return None


def retrieval_metrics(items: Sequence[dict[str, Any]], hits: Sequence[Sequence[Hit]],
                      positions: Sequence[int], k: int | None = None) -> dict[str, Any]:
    """{"metrics": {set: {k, n, no_passage, recall_at_k, mrr, ci95}}, "items": {position:
    {retrieved, gold_rank}}}. `no_passage` is the share of a set's questions left without any
    passage (by index.retrieval.match_question or min_similarity); a set whose items have no
    gold record (unanswerable) gets no recall_at_k, mrr or ci95."""
    per_item: dict[int, dict[str, Any]] = {}
    by_set: dict[str, list[int | None]] = {}
    empty: dict[str, list[float]] = {}
    k = k or max((len(h) for h in hits), default=0)
    for position, item, found in zip(positions, items, hits, strict=True):
        rank = gold_rank(item, found)
        per_item[position] = {"retrieved": [h.passage.id for h in found], "gold_rank": rank}
        empty.setdefault(item["set"], []).append(0.0 if found else 1.0)
        if gold_provenance(item) is not None:
            by_set.setdefault(item["set"], []).append(rank)
    metrics: dict[str, Any] = {
        name: {"k": k, "n": len(flags), "no_passage": sum(flags) / len(flags)}
        for name, flags in empty.items()}
    for name, ranks in by_set.items():
        found_at_k = [1.0 if r is not None else 0.0 for r in ranks]
        reciprocal = [1.0 / r if r is not None else 0.0 for r in ranks]
        metrics[name] |= {
            "recall_at_k": sum(found_at_k) / len(ranks),
            "mrr": sum(reciprocal) / len(ranks),
            "ci95": {"recall_at_k": bootstrap_ci(found_at_k), "mrr": bootstrap_ci(reciprocal)},
        }
    return {"metrics": metrics, "items": per_item}
