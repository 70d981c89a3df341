"""Read tabular sources into records that remember their file and line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline.errors import DataError

csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class Record:
    """One source row with its provenance."""

    source: str
    file: str
    line: int
    data: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file, "line": self.line, "data": self.data}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls(source=obj["source"], file=obj["file"], line=obj["line"], data=obj["data"])


def read_csv(
    name: str, path: Path, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[Record]:
    """Yield one Record per CSV row; raise DataError naming file:line on malformed input."""
    try:
        handle = path.open(encoding=encoding, newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise DataError(f"{path}:1: empty file or empty header row; expected column names")
            columns = [h.strip() for h in header]
            _check_header(path, columns)
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(columns):
                    raise DataError(
                        f"{path}:{reader.line_num}: expected {len(columns)} fields "
                        f"({', '.join(columns[:4])}...), got {len(fields)}; "
                        "check quoting and the delimiter"
                    )
                row = dict(zip(columns, fields, strict=True))
                yield Record(name, str(path), reader.line_num, row)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: bytes at offset {exc.start} are not valid {encoding} ({exc.reason}); "
                f"set ingest.sources[].encoding to the file's encoding"
            ) from None
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None


def _check_header(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for position, column in enumerate(columns, start=1):
        if not column:
            raise DataError(f"{path}:1: column {position} has an empty name")
        if column in seen:
            raise DataError(f"{path}:1: column name '{column}' appears twice")
        seen.add(column)
