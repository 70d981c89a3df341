"""Put the out-of-data questions (synthesize.out_of_data) on their origin facts' side.

The entities a question is asked about in evaluation are never the ones its kind is trained on:
the trained facts are halved (seeded), one half trains absent-attribute and other-qualifier
declines, the other half (with the heldout facts) is asked. Absent attributes are also held out
whole: the attributes asked in evaluation are never trained, so the set measures declining an
unforeseen question, not a learned one. Variant names are only asked, never trained.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tuneline.curate.formats import chat_examples, eval_items
from tuneline.synthesize.out_of_data import (
    ABSENT_ATTRIBUTE,
    KINDS,
    OTHER_QUALIFIER,
    UNANSWERABLE_KINDS,
    VARIANT_NAME,
)
from tuneline.synthesize.templates import Fact

HELD_OUT_ATTRIBUTES = 0.4  # share of the absent attributes asked only in evaluation


@dataclass
class ProbeSplit:
    """Out-of-data questions to train on, and to ask in the test and dev sets, per kind."""

    train: dict[str, list[Fact]] = field(default_factory=dict)
    test: dict[str, list[Fact]] = field(default_factory=dict)
    dev: dict[str, list[Fact]] = field(default_factory=dict)


def split_probes(probes: list[Fact], trained: list[Fact], heldout: list[Fact],
                 recall_test: list[Fact], recall_dev: list[Fact], dev: list[Fact],
                 seed: int) -> ProbeSplit:
    """Each probe on its origin fact's side (module docstring); a probe whose origin fact is
    neither trained nor evaluated (val, or dropped by select/balance) is not used."""
    rng = random.Random(seed)
    trained_ids = sorted(f.fact_id for f in trained)
    rng.shuffle(trained_ids)
    trains_probes = set(trained_ids[: len(trained_ids) // 2])
    test_origins = {f.fact_id for f in heldout + recall_test} - trains_probes
    dev_origins = {f.fact_id for f in dev + recall_dev} - trains_probes
    variant_test = {f.fact_id for f in heldout + recall_test}
    variant_dev = {f.fact_id for f in dev + recall_dev}
    attributes = sorted({p.source.get("probe", "") for p in probes
                         if p.kind == ABSENT_ATTRIBUTE})
    rng.shuffle(attributes)
    asked_attributes = set(attributes[: max(1, round(HELD_OUT_ATTRIBUTES * len(attributes)))]
                           if attributes else [])
    split = ProbeSplit({k: [] for k in UNANSWERABLE_KINDS}, {k: [] for k in KINDS},
                       {k: [] for k in KINDS})
    for probe in probes:
        origin = probe.source.get("origin")
        if probe.kind == VARIANT_NAME:
            side = "test" if origin in variant_test else "dev" if origin in variant_dev else None
        else:
            side = ("train" if origin in trains_probes else "test" if origin in test_origins
                    else "dev" if origin in dev_origins else None)
            if probe.kind == ABSENT_ATTRIBUTE and side is not None:
                asked = probe.source.get("probe") in asked_attributes
                side = side if (side == "train") != asked else None
        if side is not None:
            getattr(split, side)[probe.kind].append(probe)
    return split


def probe_chats(split: ProbeSplit, trained: slice) -> dict[str, list[dict[str, Any]]]:
    """Plain training chats per kind: the trained phrasings of other-qualifier questions, and
    every absent-attribute question (each has one phrasing)."""
    return {ABSENT_ATTRIBUTE: chat_examples(split.train[ABSENT_ATTRIBUTE], slice(None)),
            OTHER_QUALIFIER: chat_examples(split.train[OTHER_QUALIFIER], trained)}


def probe_eval_sets(facts: dict[str, list[Fact]], recall_only: slice
                    ) -> dict[str, list[dict[str, Any]]]:
    """Evaluation items per kind: absent-attribute questions as they are, the held-back
    phrasing of the others; the unanswerable kinds expect a decline."""
    sets = {}
    for kind in KINDS:
        phrasings = slice(None) if kind == ABSENT_ATTRIBUTE else recall_only
        items = eval_items(facts.get(kind, []), phrasings, kind)
        if kind in UNANSWERABLE_KINDS:
            items = [{**item, "expect": "abstain"} for item in items]
        sets[kind] = items
    return sets
