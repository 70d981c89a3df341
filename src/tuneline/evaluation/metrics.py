"""Answer scoring: normalised fact containment and accuracy per set (pure, torch-free)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", text)
    no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", no_marks.lower()).strip()


def contains_fact(answer: str, fact: str) -> bool:
    """True when the normalised fact appears in the normalised answer on word boundaries."""
    needle = normalize(fact)
    return bool(needle) and f" {needle} " in f" {normalize(answer)} "


def accuracy(correct: Iterable[bool]) -> tuple[float, int]:
    """(share correct, count); 0.0 for an empty set."""
    flags = list(correct)
    return (sum(flags) / len(flags) if flags else 0.0), len(flags)


_ABSTENTION_MARKERS = tuple(normalize(m) for m in (
    "I don't have information", "I do not have information", "I don't know", "I do not know",
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


def is_correct(answer: str, item: dict) -> bool:
    """An eval item is answered right when its fact is contained, or, for an item that expects
    an abstention (`expect: "abstain"`), when the answer declines."""
    if item.get("expect") == "abstain":
        return is_abstention(answer, item.get("reference"))
    return contains_fact(answer, item["fact"])
