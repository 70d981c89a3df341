"""Answer scoring (pure, torch-free): strict accuracy (the first value claimed is the reference,
and no other value of the asked column is named), normalised containment beside it, SQuAD-style
exact match and token F1, hallucination and abstention rates, bootstrap confidence intervals.

Strict scoring needs the table's values (`Vocabulary`); an item whose template has none (the
general probe, LLM-written facts) falls back to containment."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneline.evaluate.claims import Vocabulary
from tuneline.report.results import FACT_RATES
from tuneline.text import contains_fact, normalize


def accuracy(correct: Iterable[bool]) -> tuple[float, int]:
    """(share correct, count); 0.0 for an empty set."""
    flags = list(correct)
    return (sum(flags) / len(flags) if flags else 0.0), len(flags)


_ABSTENTION_MARKERS = tuple(normalize(m) for m in (
    "I don't have information", "I do not have information", "I don't know", "I do not know",
    # what the RAG prompt asks for when the passages hold no answer
    "I don't have that information", "I do not have that information",
    "no information", "not in my data", "no record", "not available", "I'm not sure",
    "I am not sure", "cannot answer", "can't answer", "unable to answer", "not aware of",
))


def is_abstention(answer: str, trained_abstention: str | None = None) -> bool:
    """Does the answer decline (a common refusal phrase, or the abstention answer trained)?"""
    text = f" {normalize(answer)} "
    markers = _ABSTENTION_MARKERS
    if trained_abstention:
        markers = (*markers, normalize(trained_abstention))
    return any(f" {m} " in text for m in markers if m)


# "The passages don't mention it.": a decline only where it is the passages that lack it.
_LACKING = tuple(normalize(m) for m in (
    "don't mention", "do not mention", "doesn't mention", "does not mention", "don't contain",
    "do not contain", "doesn't contain", "does not contain", "don't say", "do not say"))
_SOURCE_WORDS = frozenset({"passage", "passages", "document", "documents", "context", "text"})
_LEADING_SENTENCES = 3


def opens_with_decline(answer: str, trained_abstention: str | None = None) -> bool:
    """Whether the answer opens with a decline: the trained one word for word, or a decline
    (`is_abstention`, or the passages said to lack it) in its first sentence after any apology
    or echoed question ("Sorry. I don't have that information.")."""
    if trained_abstention and normalize(answer).startswith(normalize(trained_abstention)):
        return True
    for sentence in re.split(r"(?<=[.!?])\s+", answer.strip())[:_LEADING_SENTENCES]:
        text = f" {normalize(sentence)} "
        lacking = (any(f" {m} " in text for m in _LACKING)
                   and not _SOURCE_WORDS.isdisjoint(text.split()))
        if lacking or is_abstention(sentence, trained_abstention):
            return True
        if not (re.search(r"\b(?:sorry|apologi[sz]e)", sentence, re.IGNORECASE)
                or sentence.endswith("?")):
            return False
    return False


def contains_reference(answer: str, item: dict) -> bool:
    """Lenient: the fact (or one of its `aliases`) appears anywhere in the answer, or, for an
    item that expects an abstention (`expect: "abstain"`), the answer declines anywhere."""
    if item.get("expect") == "abstain":
        return is_abstention(answer, item.get("reference"))
    return any(contains_fact(answer, fact) for fact in (item["fact"], *item.get("aliases", ())))


@dataclass(frozen=True)
class Verdict:
    """How one answer is scored: strictly (`correct`, `abstained`, `hallucinated`) and leniently
    (`contains`); `claims` are the table values the answer names for the asked column."""

    correct: bool
    contains: bool
    abstained: bool
    hallucinated: bool
    claims: tuple[str, ...] = ()


NO_VOCABULARY = Vocabulary()


def judge_answer(answer: str, item: dict, vocabulary: Vocabulary = NO_VOCABULARY) -> Verdict:
    """Strict verdict on one answer.

    - correct: the first value claimed for the asked column is the reference and no other
      value of that column is named ("China, Japan or France" is wrong even when one is right);
    - abstained: it declines and claims nothing (a hedge plus a claim is not a decline);
    - hallucinated: not empty, not correct, not a decline.

    For an item that expects an abstention, a claim is any value of any column the vocabulary
    holds. Without a vocabulary for the item's template (the general probe), correct is
    containment without a decline: "I don't have information about that in my Paris 2024
    data." does not answer "What is the capital of France?"; a decline that holds the
    reference is neither correct nor a clean decline.
    """
    contains = contains_reference(answer, item)
    if not normalize(answer):
        return Verdict(False, contains, False, False)
    abstaining = item.get("expect") == "abstain"
    declines = is_abstention(answer, item.get("reference") if abstaining else None)
    template = None if abstaining else item.get("template")
    if abstaining and ("withhold" in item or not vocabulary.by_template):
        # No table values to tell a claim by (documents): the answer must open with a decline;
        # "No, you cannot use it ... It is not available for commercial use." claims.
        abstained = opens_with_decline(answer, item.get("reference"))
        return Verdict(abstained, contains, abstained, not abstained)
    if not (vocabulary.by_template if abstaining else vocabulary.knows(template)):
        correct = contains and not declines
        abstained = declines and not contains
        return Verdict(correct, contains, abstained, not (correct or abstained))
    claims = tuple(vocabulary.claims(answer, template, item.get("question", "")))
    abstained = declines and not claims
    if abstaining:
        correct = abstained
    else:
        golds = {normalize(g) for g in (item["fact"], *item.get("aliases", ()))}
        correct = bool(claims) and all(claim in golds for claim in claims)
    return Verdict(correct, contains, abstained, not (correct or abstained), claims)


# --- Answer-level scores beyond containment (SQuAD-style exact match and token F1) ----------

_ARTICLES = frozenset({"a", "an", "the"})
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _tokens(text: str) -> list[str]:
    """SQuAD normalisation on top of `normalize`: words, articles dropped."""
    return [t for t in normalize(text).split() if t not in _ARTICLES]


def gold_answers(item: dict) -> list[str]:
    """What an answer is compared with: the reference answer and, for answerable items, the
    bare fact (the short span) and its aliases, whichever are non-empty."""
    golds = [item.get("reference") or ""]
    if item.get("expect") != "abstain":
        golds += [item.get("fact") or "", *item.get("aliases", ())]
    return [g for g in golds if _tokens(g)]


def exact_match(answer: str, golds: Iterable[str]) -> bool:
    """The normalised answer equals a non-empty normalised gold answer."""
    tokens = _tokens(answer)
    return bool(tokens) and any(tokens == _tokens(g) for g in golds)


def token_f1(answer: str, gold: str) -> float:
    """SQuAD token F1: harmonic mean of token precision and recall (multiset overlap)."""
    pred, ref = _tokens(answer), _tokens(gold)
    if not pred or not ref:
        return 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_token_f1(answer: str, golds: Iterable[str]) -> float:
    """Token F1 against the closest gold answer (SQuAD takes the max over references)."""
    return max((token_f1(answer, g) for g in golds), default=0.0)


def score(answer: str, item: dict, vocabulary: Vocabulary = NO_VOCABULARY
          ) -> dict[str, float]:
    """Every per-answer score for one eval item, as numbers (booleans as 0/1)."""
    verdict = judge_answer(answer, item, vocabulary)
    golds = gold_answers(item)
    return {
        "accuracy": float(verdict.correct),
        "exact_match": float(exact_match(answer, golds)),
        "containment": float(verdict.contains),
        "token_f1": best_token_f1(answer, golds),
        "hallucination_rate": float(verdict.hallucinated),
        "abstention_rate": float(verdict.abstained),
        "mean_answer_words": float(len(answer.split())),
    }


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `values`; deterministic given `seed`."""
    return _bootstrap({"v": values}, n_resamples, seed, confidence)["v"]


def _bootstrap(
    columns: dict[str, Sequence[float]], n_resamples: int, seed: int, confidence: float
) -> dict[str, tuple[float, float]]:
    """Percentile intervals for the mean of each column, resampling rows jointly."""
    n = len(next(iter(columns.values()), []))
    if n == 0:
        return {k: (0.0, 0.0) for k in columns}
    rng = random.Random(seed)
    indices = range(n)
    means: dict[str, list[float]] = {k: [] for k in columns}
    for _ in range(n_resamples):
        sample = rng.choices(indices, k=n)
        for k, col in columns.items():
            means[k].append(sum(col[i] for i in sample) / n)
    tail = (1 - confidence) / 2
    out = {}
    for k, ms in means.items():
        ms.sort()
        lo = ms[int(tail * (n_resamples - 1))]
        hi = ms[int(round((1 - tail) * (n_resamples - 1)))]
        out[k] = (lo, hi)
    return out


def summarize(
    scores: list[dict[str, float]], n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Means of `score` rows (their keys; FACT_RATES when there are none), with `n` and a
    bootstrap 95% interval (`ci95`) for each."""
    columns = {k: [s[k] for s in scores] for k in (scores[0] if scores else FACT_RATES)}
    n = len(scores)
    summary: dict[str, Any] = {k: (sum(col) / n if n else 0.0) for k, col in columns.items()}
    summary["n"] = n
    summary["ci95"] = {k: list(v) for k, v in
                       _bootstrap(columns, n_resamples, seed, 0.95).items()}
    return summary


GROUP_KEY = "group"  # eval items' leading key value (curate.formats.eval_items)


def summarize_items(
    answers: Sequence[str], items: Sequence[dict], category_key: str = "template",
    n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
    vocabulary: Vocabulary = NO_VOCABULARY,
) -> dict[str, Any]:
    """`summarize` over all items, plus `by_category` (per `category_key` value) and
    `by_group` (per the items' `group`: an event's discipline) when the items carry them."""
    scores = [score(a, item, vocabulary) for a, item in zip(answers, items, strict=True)]
    summary = summarize(scores, n_resamples, seed)
    for name, key in (("by_category", category_key), ("by_group", GROUP_KEY)):
        groups: dict[str, list[dict[str, float]]] = {}
        for s, item in zip(scores, items, strict=True):
            if item.get(key) is not None:
                groups.setdefault(str(item[key]), []).append(s)
        if groups:
            summary[name] = {value: summarize(rows, n_resamples, seed)
                             for value, rows in sorted(groups.items())}
    return summary
