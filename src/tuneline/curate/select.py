"""Shape the training facts: an informative TF-IDF subset, then per-category balancing."""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuneline._optional import require
from tuneline.curate.clean import fact_text

if TYPE_CHECKING:
    from tuneline.curate.config import BalanceConfig, SelectConfig
    from tuneline.synthesize.templates import Fact

# What a fact is grouped by when balancing; each key is a choice of BalanceConfig.by.
CATEGORY_OF: dict[str, Callable[[Fact], str]] = {
    "template": lambda fact: fact.template,
    "source": lambda fact: str(fact.source.get("source", "")),
    "kind": lambda fact: str(getattr(fact, "kind", "qa")),
}


def target_size(total: int, max_facts: int | None, fraction: float | None) -> int:
    """How many facts to keep: the smaller of `max_facts` and `fraction` of `total`."""
    size = total
    if fraction is not None:
        size = min(size, max(1, round(total * fraction)))
    if max_facts is not None:
        size = min(size, max_facts)
    return min(size, total)


def select_informative(
    facts: list[Fact], cfg: SelectConfig, seed: int
) -> tuple[list[Fact], dict[str, Any]]:
    """Keep the most informative facts plus those covering rare terms, in their original order.

    `1 - rare_term_share` of the kept facts are those with the highest mean TF-IDF over the
    terms of their first question and answer (facts made of words every fact uses score low);
    the rest are picked greedily, each time the fact covering the most rare terms (document
    frequency <= `rare_max_df`) that no kept fact covers yet. Ties fall to a seeded order.

    Returns the kept facts and details for the manifest.
    """
    size = target_size(len(facts), cfg.max_facts, cfg.fraction)
    if size >= len(facts):
        return list(facts), {"kept": len(facts), "candidates": len(facts)}
    scores, rare_terms = _tfidf_scores([fact_text(f) for f in facts], cfg.rare_max_df)
    order = _rank(facts, scores, seed)
    n_rare = round(size * cfg.rare_term_share)
    top = order[: size - n_rare]
    covered: set[int] = set().union(*(rare_terms[i] for i in top))
    rest = order[size - n_rare :]
    position = {index: rank for rank, index in enumerate(order)}
    by_coverage = _cover(rare_terms, rest, covered, n_rare, position)
    chosen = set(top) | set(by_coverage)
    filler = [i for i in rest if i not in chosen][: size - len(chosen)]
    chosen.update(filler)
    details = {
        "candidates": len(facts), "kept": len(chosen), "by_score": len(top),
        "by_rare_terms": len(by_coverage), "by_score_fill": len(filler),
        "rare_terms": len(set().union(*rare_terms)),
        "rare_terms_covered": len(set().union(*(rare_terms[i] for i in chosen))),
    }
    return [f for i, f in enumerate(facts) if i in chosen], details


def _tfidf_scores(texts: list[str], rare_max_df: int) -> tuple[list[float], list[set[int]]]:
    """Mean TF-IDF of each text's terms, and the ids of each text's rare terms."""
    text_module = require("sklearn.feature_extraction.text")
    # sublinear tf: a word repeated in one text should not outweigh a rarer word.
    vectorizer = text_module.TfidfVectorizer(stop_words="english", norm=None, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # nothing but stop words: every text is as (un)informative as another
        return [0.0] * len(texts), [set() for _ in texts]
    sums = matrix.sum(axis=1).A1
    sizes = matrix.getnnz(axis=1)
    scores = [float(s / n) if n else 0.0 for s, n in zip(sums, sizes, strict=True)]
    document_frequency = Counter(matrix.indices.tolist())
    rare = {term for term, df in document_frequency.items() if df <= rare_max_df}
    rows = [matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]] for i in range(len(texts))]
    return scores, [{int(t) for t in row if t in rare} for row in rows]


def _rank(facts: list[Fact], scores: list[float], seed: int) -> list[int]:
    """Fact indices by descending score; equal scores in a seeded order independent of input."""
    shuffled = sorted(range(len(facts)), key=lambda i: facts[i].fact_id)
    random.Random(seed).shuffle(shuffled)
    tiebreak = {index: rank for rank, index in enumerate(shuffled)}
    return sorted(range(len(facts)), key=lambda i: (-scores[i], tiebreak[i]))


def _cover(
    rare_terms: list[set[int]], candidates: list[int], covered: set[int], limit: int,
    position: dict[int, int],
) -> list[int]:
    """Greedy maximum coverage (lazy: a fact's gain only shrinks as more terms are covered)."""
    heap = [(-len(rare_terms[i] - covered), position[i], i) for i in candidates]
    heapq.heapify(heap)
    chosen: list[int] = []
    while heap and len(chosen) < limit:
        stale_gain, rank, index = heapq.heappop(heap)
        gain = len(rare_terms[index] - covered)
        if gain < -stale_gain:
            heapq.heappush(heap, (-gain, rank, index))
            continue
        if gain == 0:  # an up-to-date best gain of 0: nothing left covers a new rare term
            break
        chosen.append(index)
        covered |= rare_terms[index]
    return chosen


def balance_categories(
    facts: list[Fact], cfg: BalanceConfig, seed: int
) -> tuple[list[Fact], dict[str, Any]]:
    """Cap the facts per category (seeded sample), keeping the original order.

    Strategy 'cap' keeps at most `max_per_category` per category; 'equal' brings every category
    down to the smallest one's size (and under `max_per_category` when set).

    Returns the kept facts and `{"by", "strategy", "before", "after"}` counts per category.
    """
    category_of = CATEGORY_OF[cfg.by]
    groups: dict[str, list[int]] = defaultdict(list)
    for index, fact in enumerate(facts):
        groups[category_of(fact)].append(index)
    limit = _category_limit({name: len(g) for name, g in groups.items()}, cfg)
    rng = random.Random(seed)
    keep: set[int] = set()
    for name in sorted(groups):
        # Sorting by fact id first makes the sample independent of the input order.
        group = sorted(groups[name], key=lambda i: facts[i].fact_id)
        keep.update(rng.sample(group, limit) if len(group) > limit else group)
    kept = [f for i, f in enumerate(facts) if i in keep]
    details = {"by": cfg.by, "strategy": cfg.strategy,
               "before": _counts(facts, category_of), "after": _counts(kept, category_of)}
    return kept, details


def _category_limit(sizes: dict[str, int], cfg: BalanceConfig) -> int:
    limit = max(sizes.values(), default=0)
    if cfg.strategy == "equal":
        limit = min(sizes.values(), default=0)
    if cfg.max_per_category is not None:
        limit = min(limit, cfg.max_per_category)
    return limit


def _counts(facts: list[Fact], category_of: Callable[[Fact], str]) -> dict[str, int]:
    return dict(sorted(Counter(category_of(f) for f in facts).items()))
