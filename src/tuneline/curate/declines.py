"""Declines in proportion: a model trained on as many declines as answers declines what it knows.

With invented entities, absent attributes, other qualifiers and gold-removed contexts each adding
declines, they made up half of the demo's training chats, and the tuned model declined a
phrasing it had not been trained on for two thirds of the facts it had learned (docs/log.md,
2026-12-03 evening). Per format (a bare question, or one with retrieved passages, since a decline
is learned per format), the declines are thinned, seeded and in proportion across their routes,
until they are at most `curate.max_decline_share` of that format's training chats. A question
whose context says no passage was found is a format of its own that this share does not limit:
declining there is always right, and its cue is in the prompt (thinned with the others on a
small table, most of them went, and the tuned+rag model answered invented entities from
memory). They are only kept from outnumbering the answers given with passages
(`curate.no_passage_declines_per_answer`): their number comes from the invented entities, not
the table's size, and an 11-row table trained 55 of them against 18 passage answers; its
retrieval model declined most questions with the gold passage in front of it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

from tuneline.evaluate.metrics import is_abstention
from tuneline.rag.prompt import INSTRUCTION, NO_PASSAGE


def is_decline(chat: dict[str, Any], abstention: str) -> bool:
    """The chat's answer declines (the configured abstention or a common refusal)."""
    return is_abstention(chat["messages"][-1]["content"], abstention)


def chat_format(chat: dict[str, Any]) -> str:
    """'rag' when the question comes with passages, 'no_passage' when it comes in the RAG
    format with none found, else 'plain'."""
    asked = next(m["content"] for m in chat["messages"] if m["role"] == "user")
    if not asked.startswith(INSTRUCTION):
        return "plain"
    return "no_passage" if NO_PASSAGE in asked else "rag"


def within_decline_budget(routes: dict[str, list[dict[str, Any]]],
                          max_share: dict[str, float], abstention: str, seed: int,
                          no_passage_per_answer: float | None = None
                          ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """`routes` with declines thinned to at most `max_share[format]` of each format's chats
    ('plain', 'rag'), the declines where no passage was found to at most
    `no_passage_per_answer` times the answers given with passages (None: all kept), and the
    counts `dropped:decline_budget:<route>` (only routes that lost some)."""
    rng = random.Random(seed)
    shapes = {(route, i): (chat_format(chat), is_decline(chat, abstention))
              for route, chats in routes.items() for i, chat in enumerate(chats)}
    answers = Counter(fmt for fmt, declines in shapes.values() if not declines)
    limits = {fmt: math.floor(share / (1 - share) * answers[fmt] + 1e-9)
              for fmt, share in max_share.items() if share < 1}
    if no_passage_per_answer is not None:  # counted against the answers given with passages
        limits["no_passage"] = math.floor(no_passage_per_answer * answers["rag"] + 1e-9)
    drop: set[tuple[str, int]] = set()
    for fmt, allowed in limits.items():
        declines = [key for key, (shape, declined) in shapes.items()
                    if shape == fmt and declined]
        if len(declines) > allowed:
            drop |= set(_thin(declines, len(declines) - allowed, rng))
    kept = {route: [c for i, c in enumerate(chats) if (route, i) not in drop]
            for route, chats in routes.items()}
    counts: dict[str, int] = {}
    for route, _ in sorted(drop):
        counts[f"dropped:decline_budget:{route}"] = counts.get(
            f"dropped:decline_budget:{route}", 0) + 1
    return kept, counts


def _thin(declines: list[tuple[str, int]], n_drop: int, rng: random.Random
          ) -> list[tuple[str, int]]:
    """`n_drop` of `declines`, each route losing in proportion to its share (largest
    remainders), chosen at random within the route."""
    by_route: dict[str, list[tuple[str, int]]] = {}
    for item in declines:
        by_route.setdefault(item[0], []).append(item)
    exact = {r: n_drop * len(items) / len(declines) for r, items in by_route.items()}
    quota = {r: math.floor(x) for r, x in exact.items()}
    for r in sorted(exact, key=lambda r: quota[r] - exact[r])[: n_drop - sum(quota.values())]:
        quota[r] += 1
    dropped = []
    for route, items in sorted(by_route.items()):
        dropped += rng.sample(items, quota[route])
    return dropped
