"""`index.retrieval.min_similarity: auto`: a similarity floor derived from the run's own training
questions, so that documents nobody tuned a floor for still get one.

Each training question (asked without passages, answered, deduplicated) is searched as a user's
would be. Where a shown passage quotes its reply (curate's `quotes`), the best cosine of the
shown passages is what an answerable question scores; with every passage quoting the reply left
out, as the evaluated `withheld` set is asked, the best cosine of what is shown instead is what
a question the documents do not answer scores. The floor is the lower of:

- the ANSWERABLE_DECLINED quantile of the answerable scores: at most 1 in 20 of them declined;
- the median of the withheld scores: no higher than declines half of those.

A training question is its section's heading, word for word, in an FAQ, so the answerable
scores of users' questions run lower than these; the median caps what that would cost. Over
four FAQs (Python, Django, Debian, fetchmail; 100 random 70/30 splits each, retrieval only),
the floor declined 2-7% of the held-out answerable questions and 21-49% of the withheld ones
(docs/log.md, 2026-12-08). Only training data is read: nothing evaluated shapes the floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ANSWERABLE_DECLINED = 0.05  # the share of answerable training questions the floor may decline
WITHHELD_QUANTILE = 0.5  # the floor never rises above what declines this share withheld
MIN_QUESTIONS = 10  # fewer answerable (or withheld) training questions: no floor is derived


@dataclass(frozen=True)
class DerivedFloor:
    """What `min_similarity: auto` resolved to, and from what."""

    value: float | None  # None: too few training questions to derive one (`reason`)
    answerable: int  # training questions shown a passage that quotes their reply
    withheld: int  # of them, those searched again with those passages left out
    answerable_quantile: float | None
    withheld_median: float | None
    reason: str = ""

    def describe(self) -> str:
        if self.value is None:
            return f"similarity floor (auto): none, {self.reason}"
        return (f"similarity floor (auto): {self.value:.3f}, the lower of the "
                f"{ANSWERABLE_DECLINED:.0%} quantile of {self.answerable} answerable training "
                f"questions' best cosine ({self.answerable_quantile:.3f}) and the median of "
                f"{self.withheld} with their answer withheld ({self.withheld_median:.3f})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floor_from_similarities(answerable: Sequence[float], withheld: Sequence[float]
                            ) -> DerivedFloor:
    """The floor of the module docstring from the two lists of best cosines."""
    import numpy as np

    if len(answerable) < MIN_QUESTIONS or len(withheld) < MIN_QUESTIONS:
        return DerivedFloor(None, len(answerable), len(withheld), None, None,
                            f"{len(answerable)} answerable and {len(withheld)} withheld "
                            f"training questions, fewer than {MIN_QUESTIONS}")
    low = float(np.quantile(answerable, ANSWERABLE_DECLINED))
    median = float(np.quantile(withheld, WITHHELD_QUANTILE))
    return DerivedFloor(round(min(low, median), 4), len(answerable), len(withheld),
                        round(low, 4), round(median, 4))


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
    """The floor for `retriever` from the training questions in `train_file`."""
    from tuneline.curate.conversation_split import SEARCHED_PER_SHOWN, quotes

    pairs = training_questions(train_file, abstention)
    if not pairs:
        return floor_from_similarities([], [])
    questions = [question for question, _ in pairs]
    vectors = retriever.embed(questions)
    top_k = retriever.settings.top_k
    wide = retriever.search_embedded(questions, vectors, SEARCHED_PER_SHOWN * top_k,
                                     floor=False)
    shown = [hits[:top_k] for hits in wide]
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
