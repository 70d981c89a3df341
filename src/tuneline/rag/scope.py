"""Does a question ask what the table holds? (index.retrieval.scope_margin)

Matching (tuneline.rag.matching) keeps the passages about the entity a question names, but a
real entity asked for something no column holds ("Who coached CROUSER Ryan?", "How long did
Fencing, Women's Foil Individual last?") still gets that entity's rows, and a small model reads
them as an answer. The question's *shape* tells: with the values it names masked ("Who coached
X?"), it is far from every question template the data is asked by ("Which country did X
represent at the Paris 2024 Olympics?"), while a new phrasing of a template question stays close.

The gate embeds the masked question (the index's embedder) and compares it (cosine) with the
templates' trained phrasings, masked the same way. The threshold comes from the templates
themselves: how similar the median trained phrasing is to its nearest other phrasing, less
`scope_margin`. (Until 2026-12-04 the least similar phrasing set it, and one lonely phrasing
such as "Which official name is listed for the country X?" let "What was X's winning score?"
through: on the dev sets of the demo and eight panel tables the median keeps every
answerable question (recall, heldout, variant names) in scope but one of 563 and every
absent-attribute question out, where the least similar kept 24 of 137 in; docs/log.md.)
Below it the question gets no passage, so the tuned model declines, as for an entity the data
lacks. The held-back phrasings (the recall set's) are never used, so evaluation
measures the gate on phrasings it did not see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneline.rag.matching import FieldValues, words

MASK = "X"
_PLACEHOLDER_RUN = re.compile(r"\{[^{}]+\}(?:[\s,|()'’]*\{[^{}]+\})*")
_TOKEN = re.compile(r"[+-]?\w+(?:['’]\w+)*")
_MASK_RUN = re.compile(rf"{MASK}(?:[\s,|()'’]*{MASK})+")


def template_shape(question: str) -> str:
    """A template question with each run of placeholders as one mask."""
    return _PLACEHOLDER_RUN.sub(MASK, question)


def question_shape(question: str, known: FieldValues) -> str:
    """A question with the words of the match field values it names (in full or in part) as
    one mask per run: "Who coached CROUSER Ryan?" → "Who coached X ?". In a question that
    writes names in capitals, a lower-case word stays unless a value writes it so: "What
    capital does Oregon have?" keeps "capital" although an airport is called "Capital", and
    "Owl monkey" is masked whole."""
    named, partly = known.named_in(question)
    named |= partly
    value_words = {w for values in named.values() for value in values for w in value}
    cased = any(t[:1].isupper() for t in _TOKEN.findall(question)[1:])

    def masked(token: re.Match[str]) -> str:
        text = token.group()
        folded = words(text)
        name_like = (not cased or not text.islower()
                     or any(c.isdigit() for c in text)
                     or all(known.written_in_lower_case(w) for w in folded))
        return MASK if folded and folded <= value_words and name_like else text

    return _MASK_RUN.sub(MASK, _TOKEN.sub(masked, question))


class ScopeGate:
    """In scope: the masked question is about as close to a template phrasing as the
    template phrasings are to each other (module docstring)."""

    def __init__(self, embedder: Any, template_questions: Sequence[str], known: FieldValues,
                 margin: float):
        shapes = sorted({template_shape(q) for q in template_questions})
        if len(shapes) < 2:
            raise ValueError("the scope gate needs at least two template phrasings")
        self.embedder, self.known = embedder, known
        self._shapes = embedder.embed(shapes)
        similarity = self._shapes @ self._shapes.T
        for i in range(len(shapes)):
            similarity[i, i] = -1.0
        self.threshold = float(np.median(similarity.max(axis=1))) - margin

    def similarity(self, questions: Sequence[str]) -> list[float]:
        """Each question's cosine similarity to its nearest template phrasing, masked."""
        masked = [question_shape(q, self.known) for q in questions]
        return [float(s) for s in (self.embedder.embed(masked) @ self._shapes.T).max(axis=1)]

    def in_scope(self, questions: Sequence[str]) -> list[bool]:
        return [s >= self.threshold for s in self.similarity(questions)]
