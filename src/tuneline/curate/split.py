"""Leakage-safe splits: every phrasing of a fact lands on the same side."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from tuneline.synthesize.templates import Fact


@dataclass
class FactSplit:
    """Facts assigned to train, validation, held-out test and held-out dev (for choosing knobs:
    the test facts are scored once per run, never tuned against)."""

    train: list[Fact] = field(default_factory=list)
    val: list[Fact] = field(default_factory=list)
    heldout: list[Fact] = field(default_factory=list)
    dev: list[Fact] = field(default_factory=list)


def split_by_fact(
    facts: list[Fact], heldout_fraction: float, val_fraction: float, seed: int,
    dev_fraction: float = 0.0,
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
        n_dev = _share(len(group), dev_fraction)
        split.heldout += group[:n_heldout]
        split.val += group[n_heldout : n_heldout + n_val]
        split.dev += group[n_heldout + n_val : n_heldout + n_val + n_dev]
        split.train += group[n_heldout + n_val + n_dev :]
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

    before = len(split.val) + len(split.heldout) + len(split.dev)
    split.val, split.heldout = unseen(split.val), unseen(split.heldout)
    split.dev = unseen(split.dev)
    return before - len(split.val) - len(split.heldout) - len(split.dev)


def split_recall(facts: list[Fact], dev_fraction: float, seed: int) -> tuple[list[Fact],
                                                                             list[Fact]]:
    """Trained facts whose held-back phrasing is asked in the test and in the dev recall set
    (disjoint facts, per template)."""
    split = split_by_fact(facts, 0.0, 0.0, seed, dev_fraction)
    return split.train, split.dev
