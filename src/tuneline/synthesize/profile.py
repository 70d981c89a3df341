"""What a column holds, as the template suggester and its phrasing see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ColumnProfile:
    """What a column holds, inferred from its name and a sample of its values."""

    name: str
    words: list[str]
    unit: str | None
    kind: str  # integer float date boolean url email identifier free_text categorical text
    rows: int
    filled: int
    distinct: int
    top: str
    top_count: int
    avg_len: float
    avg_words: float = 1.0  # words per value: names have a few, prose and lists more

    @property
    def uniqueness(self) -> float:
        return self.distinct / self.filled if self.filled else 0.0

    @property
    def blank_share(self) -> float:
        return 1 - self.filled / self.rows if self.rows else 1.0
