"""The leakage invariant at the end of curate: no training message states an evaluated fact.

Every training route (plain Q&A, invented-entity abstentions, RAG examples with their
distractors, reading practice) is checked message by message against every evaluated fact
(heldout and dev; `tuneline.leakage.LeakGuard`); an offending example is dropped and counted
per route in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuneline.errors import DataError
from tuneline.leakage import LeakGuard, message_text
from tuneline.rag.prompt import without_scaffolding

SHOWN_OFFENCES = 20  # offending examples named in the manifest's details


@dataclass
class LeakCheck:
    """What the check dropped: counts per route and the first offences (route, fact id, text)."""

    guarded_facts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    offences: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {f"dropped:leak:{route}": n for route, n in self.dropped.items() if n}

    def to_json(self) -> dict[str, Any]:
        return {"guarded_facts": self.guarded_facts, "dropped": dict(self.dropped),
                "offences": self.offences}


def drop_leaking(routes: dict[str, list[dict[str, Any]]], guard: LeakGuard
                 ) -> tuple[list[dict[str, Any]], LeakCheck]:
    """The training examples of every route that state no guarded fact, in route order.

    Raises:
        DataError: every training example states an evaluated fact (nothing is left to train).
    """
    check = LeakCheck(guarded_facts=len(guard))
    kept: list[dict[str, Any]] = []
    for route, examples in routes.items():
        check.dropped[route] = 0
        for example in examples:
            text = message_text(example)
            fact_id = guard.stated(without_scaffolding(text))  # the data, not the prompt's frame
            if fact_id is None:
                kept.append(example)
                continue
            check.dropped[route] += 1
            if len(check.offences) < SHOWN_OFFENCES:
                check.offences.append({"route": route, "fact_id": fact_id, "text": text[:300]})
    if not kept and any(routes.values()):
        raise DataError("curate: every training example states an evaluated (heldout or dev) "
                        "fact; lower curate.heldout_fraction / curate.dev_fraction or add data")
    return kept, check
