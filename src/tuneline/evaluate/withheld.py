"""The `withheld` set: held-out questions asked where the documents hold no answer.

Retrieval leaves out every passage that quotes the question's reply (curate's `quotes`), so
the passages a +rag variant reads hold no answer and the reply expected is the decline: what
the served model does when a user asks what the documents do not say. A closed-book variant
reads no passages, so for it the question is not unanswerable: it does not answer this set.
A passage restating the reply in other words is not withheld, so a few such questions may
still be answerable from what remains."""

from __future__ import annotations

from typing import Any

from tuneline.curate.conversation_split import (
    SEARCHED_PER_SHOWN,
    WITHHELD_SET,
    quotes,
)


def closed_book_positions(items: list[dict[str, Any]]) -> list[int]:
    """The positions of the items a closed-book variant answers: all but the withheld set."""
    return [i for i, item in enumerate(items) if item["set"] != WITHHELD_SET]


def placed(texts: list[str], positions: list[int], size: int) -> list[str | None]:
    """`texts` at their items' `positions` in a list of `size`; None where nothing answered."""
    answers: list[str | None] = [None] * size
    for position, text in zip(positions, texts, strict=True):
        answers[position] = text
    return answers


def withhold_answers(retriever: Any, items: list[dict[str, Any]], chosen: list[int],
                     hits: list[list[Any]], top_k: int) -> None:
    """Replace the hits of each withheld item (`items[chosen[n]]`) with its top_k hits that do
    not quote its reply."""
    withheld = [n for n, i in enumerate(chosen)
                if items[i]["set"] == WITHHELD_SET and items[i].get("withhold")]
    if not withheld:
        return
    wider = retriever.search([items[chosen[n]]["question"] for n in withheld],
                             SEARCHED_PER_SHOWN * top_k)
    for n, found in zip(withheld, wider, strict=True):
        reply = items[chosen[n]]["withhold"]
        hits[n] = [h for h in found if not quotes(h.passage.text, reply)][:top_k]
