"""min_similarity: auto, a similarity floor derived from the run's own training questions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ANSWERABLE_DECLINED = 0.05  # the share of answerable training questions the floor may decline
WITHHELD_QUANTILE = 0.5  # the floor never rises above what declines this share withheld
MIN_QUESTIONS = 10  # fewer answerable training questions: no floor is derived


@dataclass(frozen=True)
class DerivedFloor:
    """What `min_similarity: auto` resolved to, and from what."""

    value: float | None  # None: too few training questions to derive one (`reason`)
    questions: int  # training questions shown a passage that quotes their reply
    answerable_quantile: float | None
    withheld_median: float | None
    reason: str = ""

    def describe(self) -> str:
        if self.value is None:
            return f"similarity floor (auto): none, {self.reason}"
        return (f"similarity floor (auto): {self.value:.3f}, the lower of the "
                f"{ANSWERABLE_DECLINED:.0%} quantile of {self.questions} answerable training "
                f"questions' best cosine ({self.answerable_quantile:.3f}) and their median "
                f"with the passages quoting the answer withheld ({self.withheld_median:.3f})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floor_from_similarities(answerable: Sequence[float], withheld: Sequence[float]
                            ) -> DerivedFloor:
    """The floor from each answerable training question's best cosine as shown (`answerable`)
    and as shown with every passage quoting its reply left out (`withheld`, as the evaluated
    `withheld` set is asked): the lower of

    - the ANSWERABLE_DECLINED quantile of `answerable`: at most 1 in 20 of them declined;
    - the median of `withheld`: no higher than declines half of them withheld.

    A training question is its section's heading, word for word, in an FAQ, so users'
    questions score lower than these; the median caps what that costs where unrelated sections
    of a one-topic corpus score high. Over four FAQs (100 random 70/30 splits each, retrieval
    only) it declined no more held-out answerable questions than a floor chosen by hand on
    one of them, and 21-49% of the withheld ones (docs/log.md, 2026-12-08)."""
    import numpy as np

    if len(answerable) < MIN_QUESTIONS:
        return DerivedFloor(None, len(answerable), None, None,
                            f"{len(answerable)} training questions were shown a passage "
                            f"quoting their answer, fewer than {MIN_QUESTIONS}")
    low = float(np.quantile(answerable, ANSWERABLE_DECLINED))
    median = float(np.quantile(withheld, WITHHELD_QUANTILE))
    return DerivedFloor(round(min(low, median), 4), len(answerable), round(low, 4),
                        round(median, 4))


def training_questions(train_file: Path, abstention: str) -> list[tuple[str, str]]:
    """(last question, reply) of the training chats asked without passages that answer, each
    question once."""
    from tuneline.artifacts import read_jsonl
    from tuneline.curate.declines import chat_format, is_decline

    pairs: dict[str, str] = {}
    for chat in read_jsonl(train_file):
        if chat_format(chat) != "plain" or is_decline(chat, abstention):
            continue
        messages = chat["messages"]
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        pairs.setdefault(question, messages[-1]["content"])
    return list(pairs.items())


def derive_floor(retriever: Any, train_file: Path, abstention: str) -> DerivedFloor:
    """The floor for `retriever` from the training questions in `train_file`, each searched
    as a user's question is (top_k, unfloored) and, for the withheld score, as evaluate asks
    the `withheld` set (searched wider, the passages quoting the reply left out)."""
    from tuneline.curate.conversation_split import SEARCHED_PER_SHOWN, quotes

    pairs = training_questions(train_file, abstention)
    if not pairs:
        return floor_from_similarities([], [])
    questions = [question for question, _ in pairs]
    vectors = retriever.embed(questions)
    top_k = retriever.settings.top_k
    shown = retriever.search_embedded(questions, vectors, top_k, floor=False)
    wide = retriever.search_embedded(questions, vectors, SEARCHED_PER_SHOWN * top_k,
                                     floor=False)
    left = [[h for h in hits if not quotes(h.passage.text, reply)][:top_k]
            for (_, reply), hits in zip(pairs, wide, strict=True)]
    shown_scores = retriever.similarities(vectors, shown)
    left_scores = retriever.similarities(vectors, left)
    answerable: list[float] = []
    withheld: list[float] = []
    for (_, reply), hits, scores, kept in zip(pairs, shown, shown_scores, left_scores,
                                              strict=True):
        if not any(quotes(h.passage.text, reply) for h in hits):
            continue
        answerable.append(max(scores))
        withheld.append(max(kept, default=-1.0))  # nothing left to show: declined at any floor
    return floor_from_similarities(answerable, withheld)
