"""Free-text replies graded against a reference reply (the reference set of held-out
conversations): ROUGE-L (the `rouge-score` package), cosine similarity of sentence embeddings
(the index's embedder, the bundled MiniLM by default) and SQuAD token F1, with bootstrap
intervals like every other score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tuneline._optional import require
from tuneline.evaluate.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    is_abstention,
    summarize,
    token_f1,
)

REFERENCE_METRICS = ("rouge_l", "similarity", "token_f1")
# (answers, references) -> one cosine similarity per pair
SimilarityFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def embedding_similarity(embedder: str) -> SimilarityFn:
    """Cosine similarity of each answer with its reference under `embedder`.

    Raises:
        MissingDependencyError: the rag extra (sentence-transformers, the MiniLM wheel) is
            not installed.
    """
    from tuneline.rag.embed import Embedder

    model = Embedder(embedder)

    def similarity(answers: Sequence[str], references: Sequence[str]) -> list[float]:
        if not answers:
            return []
        vectors = model.embed([*answers, *references])
        left, right = vectors[: len(answers)], vectors[len(answers):]
        return [max(0.0, float(v)) for v in (left * right).sum(axis=1)]

    return similarity


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure (longest common subsequence, Porter-stemmed) per pair."""
    scorer = require("rouge_score.rouge_scorer").RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(reference, answer)["rougeL"].fmeasure
            for answer, reference in zip(answers, references, strict=True)]


def score_references(answers: Sequence[str], items: Sequence[dict[str, Any]],
                     similarity: SimilarityFn | None, abstention: str | None = None
                     ) -> list[dict[str, float]]:
    """Per answer: rouge_l, similarity (when `similarity` is given), token_f1,
    abstention_rate (0/1) and mean_answer_words (its word count)."""
    references = [item["reference"] for item in items]
    rouge = rouge_l(answers, references)
    cosine = similarity(answers, references) if similarity is not None else None
    scores = []
    for i, (answer, reference) in enumerate(zip(answers, references, strict=True)):
        row = {"rouge_l": rouge[i]}
        if cosine is not None:
            row["similarity"] = cosine[i]
        row.update({"token_f1": token_f1(answer, reference),
                    "abstention_rate": float(is_abstention(answer, abstention)),
                    "mean_answer_words": float(len(answer.split()))})
        scores.append(row)
    return scores


def summarize_scores(scores: list[dict[str, float]], items: Sequence[dict[str, Any]],
                     category_key: str = "template", n_resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Means with bootstrap intervals, and the same per category (the conversation's source)."""
    summary = summarize(scores, n_resamples, seed)
    groups: dict[str, list[dict[str, float]]] = {}
    for row, item in zip(scores, items, strict=True):
        groups.setdefault(str(item.get(category_key)), []).append(row)
    if len(groups) > 1:
        summary["by_category"] = {name: summarize(rows, n_resamples, seed)
                                  for name, rows in sorted(groups.items())}
    return summary
