"""Exact and near-duplicate detection (MinHash LSH over word shingles, via datasketch)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from tuneline._optional import require

_WORD = re.compile(r"\w+")


def exact_key(text: str) -> str:
    """Hash of the case-folded words: texts differing only in case, spacing or punctuation match."""
    return hashlib.blake2b(" ".join(_WORD.findall(text.casefold())).encode(),
                           digest_size=16).hexdigest()


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """Indices of texts whose exact key was already seen earlier in the sequence."""
    seen: set[str] = set()
    repeats = []
    for index, text in enumerate(texts):
        key = exact_key(text)
        if key in seen:
            repeats.append(index)
        seen.add(key)
    return repeats


def shingles(text: str, size: int = 3) -> set[bytes]:
    """Word n-grams of the case-folded text (the whole text when it has fewer words)."""
    words = _WORD.findall(text.casefold())
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


class NearDuplicateIndex:
    """MinHash LSH index: `add` texts, ask which indexed texts are near-duplicates of another."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle_size: int = 3):
        datasketch = require("datasketch")
        self._datasketch = datasketch
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self._lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._count = 0

    def signature(self, text: str):  # noqa: ANN201 - datasketch type
        minhash = self._datasketch.MinHash(num_perm=self.num_perm)
        minhash.update_batch(list(shingles(text, self.shingle_size)))
        return self._datasketch.LeanMinHash(minhash)

    def add(self, text: str) -> int:
        """Index `text`; returns its id."""
        key = self._count
        self._lsh.insert(key, self.signature(text), check_duplication=False)
        self._count += 1
        return key

    def query(self, text: str) -> list[int]:
        """Ids of indexed texts whose estimated Jaccard similarity is above the threshold."""
        return sorted(self._lsh.query(self.signature(text)))


def near_duplicates(texts: Sequence[str], threshold: float = 0.85) -> list[int]:
    """Indices of texts that nearly repeat an earlier text (the first of a cluster is kept)."""
    index = NearDuplicateIndex(threshold)
    repeats = []
    for position, text in enumerate(texts):
        if index.query(text):
            repeats.append(position)
        else:
            index.add(text)
    return repeats
