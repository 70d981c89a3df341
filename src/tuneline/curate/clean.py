"""Text normalisation applied before dedup and training (pure)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneline.curate.config import CurateConfig
    from tuneline.synthesize.templates import Fact

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


# Single-line ASCII text without these needs only its spaces and tabs collapsed (NFKC leaves
# ASCII alone), which str.split does at C speed.
_ASCII_SLOW_PATH = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def normalize_text(text: str) -> str:
    """NFKC, no control or zero-width characters, single spaces, at most one blank line."""
    if text.isascii() and not _ASCII_SLOW_PATH.search(text):
        return " ".join(text.split())
    return _normalize_full(text)


def _normalize_full(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if "\n" not in text:
        return _SPACES.sub(" ", text).strip()
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def clean_facts(facts: list[Fact], cfg: CurateConfig) -> tuple[list[Fact], dict[str, int]]:
    """Normalise and redact every text of every fact, then drop exact and near duplicates.

    Returns the kept facts and counts: `pii:<TYPE>` masked, `dropped:exact_duplicate`,
    `dropped:near_duplicate`.
    """
    from tuneline.curate.dedup import exact_duplicates, near_duplicates
    from tuneline.curate.pii import make_redactor
    from tuneline.synthesize.out_of_data import KINDS as OUT_OF_DATA_KINDS

    redactor = make_redactor(tuple(cfg.pii.entities), cfg.pii.default_region, cfg.pii.engine) \
        if cfg.pii.enabled else None

    def clean(text: str) -> str:
        text = normalize_text(text) if cfg.normalize else text
        return redactor.redact(text) if redactor is not None else text

    cleaned = [dataclasses.replace(f, fact=clean(f.fact), answer=clean(f.answer),
                                   questions=[clean(q) for q in f.questions]) for f in facts]
    masked = redactor.counts if redactor is not None else {}
    counts = {f"pii:{entity}": n for entity, n in sorted(masked.items())}
    # Out-of-data questions restate their origin fact on purpose (another year, a variant
    # name): they go with their origin, which is deduplicated, and are not compared here.
    compared = [i for i, f in enumerate(cleaned) if f.kind not in OUT_OF_DATA_KINDS]
    texts = [fact_text(cleaned[i]) for i in compared]
    drop: set[int] = set()
    if cfg.dedup.exact:
        exact = exact_duplicates(texts)
        drop.update(compared[i] for i in exact)
        counts["dropped:exact_duplicate"] = len(exact)
    if cfg.dedup.near:
        remaining = [j for j in range(len(texts)) if compared[j] not in drop]
        near = near_duplicates([texts[j] for j in remaining], cfg.dedup.threshold)
        drop.update(compared[remaining[j]] for j in near)
        counts["dropped:near_duplicate"] = len(near)
    return [f for i, f in enumerate(cleaned) if i not in drop], counts


def fact_text(fact: Fact) -> str:
    """The text that identifies a fact for duplicate checks: its first question and its answer."""
    return f"{fact.questions[0]}\n{fact.answer}"
