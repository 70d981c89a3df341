"""Look each row up in another source by key (ingest.sources[].join), never multiplying rows."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tuneline.errors import DataError
from tuneline.ingest.config import JoinConfig
from tuneline.ingest.records import Record


@dataclass
class Lookup:
    """The other side of a join, held in memory: key → the columns to bring."""

    source: str
    columns: list[str]
    rows: dict[tuple[str, ...], dict[str, str]]


def build_lookup(join: JoinConfig, records: Iterable[Record]) -> Lookup:
    """Index the records of `join.source` by their join key.

    Rows with an empty key part are left out: an empty key never matches.

    Raises:
        DataError: a join column or a requested column is missing, or a key appears twice
            (a lookup finds one row per key; several would silently multiply rows).
    """
    key_columns = [right for _, right in join.pairs()]
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    seen: dict[str, None] = {}  # every column met, in order (JSON rows may differ)
    for record in records:
        key = _key(record, key_columns)
        seen.update(dict.fromkeys(record.data))
        if not all(key):
            continue
        if key in rows:
            raise DataError(
                f"{record.file}:{record.line}: source '{join.source}' has "
                f"{_describe(key_columns, key)} more than once; a join looks up one row per "
                "key: remove the duplicates, or join on more columns"
            )
        rows[key] = {c: v for c, v in record.data.items() if c not in key_columns}
    columns = join.columns or [c for c in seen if c not in key_columns]
    missing = [c for c in columns if c not in seen]
    if missing and seen:
        raise DataError(f"join columns {missing} are not in source '{join.source}' (columns: "
                        f"{', '.join(seen)}); fix join.columns")
    return Lookup(join.source, columns, rows)


def apply_join(
    records: Iterable[Record], join: JoinConfig, lookup: Lookup, tally: Counter[str]
) -> Iterator[Record]:
    """Records with the looked-up columns added; provenance (file, line, key) is unchanged.

    Unmatched rows get empty strings (`how: left`) or are dropped (`how: inner`); `tally`
    counts 'matched' and 'unmatched' rows.
    """
    key_columns = [left for left, _ in join.pairs()]
    for record in records:
        key = _key(record, key_columns)
        found = lookup.rows.get(key) if all(key) else None
        tally["matched" if found is not None else "unmatched"] += 1
        if found is None and join.how == "inner":
            continue
        yield dataclasses.replace(record, data=_merge(record, join, lookup.columns, found or {}))


def _merge(
    record: Record, join: JoinConfig, columns: list[str], found: dict[str, str]
) -> dict[str, str]:
    data = dict(record.data)
    for column in columns:
        if join.prefix is not None:
            name = join.prefix + column
        else:
            name = f"{join.source}_{column}" if column in record.data else column
        if name in data:
            raise DataError(f"{record.file}:{record.line}: joining '{join.source}' would "
                            f"overwrite column '{name}' of source '{record.source}'; set "
                            "join.prefix or join.columns")
        data[name] = found.get(column, "")
    return data


def _key(record: Record, columns: list[str]) -> tuple[str, ...]:
    try:
        return tuple(record.data[column] for column in columns)
    except KeyError as exc:
        raise DataError(
            f"{record.file}:{record.line}: join column '{exc.args[0]}' is not in source "
            f"'{record.source}' (columns: {', '.join(record.data)}); fix join.on"
        ) from None


def _describe(columns: list[str], key: tuple[str, ...]) -> str:
    return ", ".join(f"{column} = {value!r}" for column, value in zip(columns, key, strict=True))
