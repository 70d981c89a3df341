"""Text compared as people read it: case, accents and punctuation folded; whole words only."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")


def strip_accents(text: str) -> str:
    """The text with its accents and other combining marks removed ("Léon" -> "Leon")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse whitespace."""
    return _NON_WORD.sub(" ", strip_accents(text).lower()).strip()


def contains_fact(answer: str, fact: str) -> bool:
    """True when the normalised fact appears in the normalised answer on word boundaries."""
    needle = normalize(fact)
    return bool(needle) and f" {needle} " in f" {normalize(answer)} "


# Function words that say nothing about the content (top terms, grounding of answers).
_STOP_TEXT = (
    "a about after all also an and any are as at be been but by can could did do does for from "
    "had has have he her his how i if in into is it its may more most no not of on or our she "
    "so than that the their them then there these they this to was we were what when where "
    "which who whom whose why will with would you your"
)
STOP_WORDS = frozenset(_STOP_TEXT.split())
