"""The record every reader yields (a row with its file and line), and what readers share:
cell text, encoding detection, undecodable-byte errors."""

from __future__ import annotations

import codecs
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline.errors import DataError


@dataclass(frozen=True)
class Record:
    """One source row with its provenance."""

    source: str
    file: str
    line: int
    data: dict[str, str]
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file, "line": self.line, "key": self.key,
                "data": self.data}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls(source=obj["source"], file=obj["file"], line=obj["line"], data=obj["data"],
                   key=obj.get("key"))


def cell_text(value: Any) -> str:
    """A cell as text: None and NaN are empty, lists and objects are JSON, a whole float is an
    integer (a year column that pandas stored as floats because one was missing: 1766.0)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    return str(value)


def undecodable(path: Path, encoding: str, offset: int, reason: str) -> DataError:
    """The error for bytes that `encoding` cannot decode, at their offset in the file."""
    return DataError(f"{path}: bytes at offset {offset} are not valid {encoding} ({reason}); "
                     "set ingest.sources[].encoding to the file's encoding")


SAMPLE_BYTES = 64 * 1024


def resolve_encoding(path: Path, encoding: str) -> str:
    """`encoding` itself, or for 'auto': utf-8-sig when the file decodes as UTF-8, else a guess.

    The UTF-8 check reads the file in 1 MiB chunks, so a large UTF-8 file is never held whole.
    """
    if encoding != "auto":
        return encoding
    try:
        with path.open("rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
            if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError(f"{path}: looks like a binary file (NUL bytes), not text; "
                                "check the path")
            handle.seek(0)
            first_bad = first_bad_offset(handle)
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    if first_bad is None:
        return "utf-8-sig"
    try:
        from charset_normalizer import from_path
    except ImportError:
        from_path = None
    guess = from_path(path).best() if from_path is not None else None
    if guess is None:
        raise DataError(f"{path}: not UTF-8 (byte {first_bad}) and the encoding could not be "
                        "detected; set ingest.sources[].encoding, e.g. cp1252")
    return str(guess.encoding)


def first_bad_offset(handle: Any, encoding: str = "utf-8-sig") -> int | None:
    """Byte offset of the first byte `encoding` cannot decode, reading 1 MiB at a time."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    while chunk := handle.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return offset + exc.start
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None
