"""Exact and near-duplicate detection (MinHash LSH over word shingles, via datasketch)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from tuneline._optional import require

_WORD = re.compile(r"\w+")
_NON_WORD = re.compile(r"[\W_]+")


# ASCII letters and digits kept, every other byte a separator: the bytes version of _NON_WORD.
_ASCII_WORD_BYTES = bytes(c if chr(c).isalnum() else 32 for c in range(128)) + b" " * 128


def exact_key(text: str) -> bytes:
    """Hash of the case-folded words: texts differing only in case, spacing or punctuation match."""
    if text.isascii():
        words = b" ".join(text.lower().encode().translate(_ASCII_WORD_BYTES).split())
    else:
        words = _NON_WORD.sub(" ", text.casefold()).strip().encode()
    return hashlib.blake2b(words, digest_size=16).digest()


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """Indices of texts whose exact key was already seen earlier in the sequence."""
    seen: set[bytes] = set()
    repeats = []
    for index, text in enumerate(texts):
        key = exact_key(text)
        if key in seen:
            repeats.append(index)
        seen.add(key)
    return repeats


def words(text: str) -> list[str]:
    """The case-folded words `shingles` is made of."""
    return _WORD.findall(text.casefold())


def shingles(text: str, size: int = 3) -> set[bytes]:
    """Word n-grams of the case-folded text (the whole text when it has fewer words)."""
    found = words(text)
    if len(found) <= size:
        return {" ".join(found).encode()}
    return {" ".join(found[i : i + size]).encode() for i in range(len(found) - size + 1)}


class NearDuplicateIndex:
    """MinHash LSH index: `add` texts, ask which indexed texts are near-duplicates of another."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle_size: int = 3):
        datasketch = require("datasketch")
        self._minhash = datasketch.MinHash
        # Building the hash permutations dominates the cost of a small batch; build them once.
        template = datasketch.MinHash(num_perm=num_perm)
        self._permutations = {"permutations": template.permutations, "scheme": template.scheme}
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self._lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._count = 0

    def signatures(self, texts: Sequence[str]) -> list[Any]:
        """MinHash signatures of many texts."""
        return self._minhash.bulk([list(shingles(t, self.shingle_size)) for t in texts],
                                  num_perm=self.num_perm, **self._permutations)

    def add(self, text: str, signature: Any = None) -> int:
        """Index `text` (or its precomputed signature); returns its id."""
        key = self._count
        signature = signature if signature is not None else self.signatures([text])[0]
        self._lsh.insert(key, signature, check_duplication=False)
        self._count += 1
        return key

    def query(self, text: str, signature: Any = None) -> list[int]:
        """Ids of indexed texts whose estimated Jaccard similarity is above the threshold."""
        signature = signature if signature is not None else self.signatures([text])[0]
        return sorted(self._lsh.query(signature))


_CHUNK = 10_000


def near_duplicates(texts: Sequence[str], threshold: float = 0.85) -> list[int]:
    """Indices of texts that nearly repeat an earlier text (the first of a cluster is kept).

    MinHash LSH makes this roughly linear in the number of texts, not quadratic.
    """
    index = NearDuplicateIndex(threshold)
    repeats = []
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start : start + _CHUNK]
        for offset, (text, signature) in enumerate(zip(chunk, index.signatures(chunk),
                                                       strict=True)):
            if index.query(text, signature):
                repeats.append(start + offset)
            else:
                index.add(text, signature)
    return repeats
