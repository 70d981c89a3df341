"""Leakage-safe splits: every phrasing of a fact lands on the same side."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from tuneline.synthesize.templates import Fact


@dataclass
class FactSplit:
    """Facts assigned to train, validation and held-out test."""

    train: list[Fact] = field(default_factory=list)
    val: list[Fact] = field(default_factory=list)
    heldout: list[Fact] = field(default_factory=list)


def split_by_fact(
    facts: list[Fact], heldout_fraction: float, val_fraction: float, seed: int
) -> FactSplit:
    """Split facts per template (stratified), seeded, so each template is on every side."""
    by_template: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_template[fact.template].append(fact)
    split = FactSplit()
    rng = random.Random(seed)
    for name in sorted(by_template):
        group = sorted(by_template[name], key=lambda f: f.fact_id)
        rng.shuffle(group)
        n_heldout = _share(len(group), heldout_fraction)
        n_val = _share(len(group), val_fraction)
        split.heldout += group[:n_heldout]
        split.val += group[n_heldout : n_heldout + n_val]
        split.train += group[n_heldout + n_val :]
    return split


def _share(total: int, fraction: float) -> int:
    """Round a share, keeping at least one item when the fraction is positive and total > 2."""
    if fraction <= 0:
        return 0
    return max(1 if total > 2 else 0, round(total * fraction))


def drop_leaks(split: FactSplit, threshold: float) -> int:
    """Remove val/heldout facts that nearly duplicate a training fact; returns how many.

    Splitting by fact keeps each fact's phrasings on one side, but two rows can still state
    near-identical facts under different keys; evaluating on one after training on the other
    would overstate what the model generalises.
    """
    from tuneline.curate.clean import fact_text
    from tuneline.curate.dedup import NearDuplicateIndex

    index = NearDuplicateIndex(threshold)
    train_texts = [fact_text(f) for f in split.train]
    for text, signature in zip(train_texts, index.signatures(train_texts), strict=True):
        index.add(text, signature)

    def unseen(facts: list[Fact]) -> list[Fact]:
        texts = [fact_text(f) for f in facts]
        return [fact for fact, text, signature in zip(facts, texts, index.signatures(texts),
                                                       strict=True)
                if not index.query(text, signature)]

    before = len(split.val) + len(split.heldout)
    split.val, split.heldout = unseen(split.val), unseen(split.heldout)
    return before - len(split.val) - len(split.heldout)
