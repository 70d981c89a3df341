"""Read tabular sources (and, via documents, text chunks) into records that keep file and line."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneline.artifacts import hash_file, hash_tree
from tuneline.errors import DataError
from tuneline.ingest.config import DOCUMENT_FORMATS, SourceConfig
from tuneline.ingest.records import (
    SAMPLE_BYTES,
    Record,
    cell_text,
    first_bad_offset,
    resolve_encoding,
    undecodable,
)
from tuneline.ingest.structured import read_structured, reads_structured

csv.field_size_limit(16 * 1024 * 1024)


_WHOLE_FLOAT = re.compile(r"-?\d+\.0+")


def read_csv(
    name: str, path: Path, delimiter: str | None = ",", encoding: str = "utf-8"
) -> Iterator[Record]:
    """Yield one Record per CSV row; raise DataError naming file:line on malformed input.

    `delimiter=None` sniffs it from the first lines; `encoding="auto"` detects the encoding.
    A column whose every value is a whole number written as a float ("1850.0": what pandas
    writes for an integer column with a gap) is read as integers, as `cell_text` reads such
    floats from JSON and Parquet; this takes a second pass over the file.
    """
    encoding = resolve_encoding(path, encoding)  # detected once for both passes
    whole = _whole_float_columns(_csv_records(name, path, delimiter, encoding))
    for record in _csv_records(name, path, delimiter, encoding):
        if whole:
            record = dataclasses.replace(record, data={
                k: v.partition(".")[0] if k in whole and v else v
                for k, v in record.data.items()})
        yield record


def _whole_float_columns(records: Iterator[Record]) -> set[str]:
    """Columns with at least one value, every one of them like 1850.0."""
    candidates: dict[str, bool] = {}
    for record in records:
        for column, value in record.data.items():
            value = value.strip()
            if value and candidates.get(column, True):
                candidates[column] = bool(_WHOLE_FLOAT.fullmatch(value))
    return {column for column, whole in candidates.items() if whole}


def _csv_records(
    name: str, path: Path, delimiter: str | None, encoding: str
) -> Iterator[Record]:
    try:
        handle = path.open(encoding=encoding, newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        try:
            if delimiter is None:
                delimiter = sniff_delimiter(handle)
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
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
            with path.open("rb") as raw:  # exc.start counts from the decoder's chunk, not the file
                offset = first_bad_offset(raw, encoding)
            raise undecodable(path, encoding, exc.start if offset is None else offset,
                              exc.reason) from None
        except csv.Error as exc:
            hint = ("; a field this large usually means an unclosed quote above this line"
                    if "field larger than field limit" in str(exc) else "")
            raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}{hint}") from None


def _check_header(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for position, column in enumerate(columns, start=1):
        if not column:
            raise DataError(f"{path}:1: column {position} has an empty name")
        if column in seen:
            raise DataError(f"{path}:1: column name '{column}' appears twice")
        seen.add(column)


_DELIMITERS = ",;\t|"


def sniff_delimiter(handle: Any) -> str:
    """The delimiter of a CSV file, from its first 64 KiB; the handle is rewound."""
    sample = handle.read(SAMPLE_BYTES)
    handle.seek(0)
    if not sample.strip():
        return ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = sample.splitlines()[0]
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","


def _row(path: Path | str, where: int | str, obj: Any) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{where}: expected a JSON object per record, got "
                        f"{type(obj).__name__}")
    return {str(k): cell_text(v) for k, v in obj.items()}


def read_jsonl(name: str, path: Path, encoding: str = "auto") -> Iterator[Record]:
    """One Record per JSON line (objects only); DataError names the line of bad JSON."""
    encoding = resolve_encoding(path, encoding)
    try:
        with path.open(encoding=encoding) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column "
                                    f"{exc.colno})") from None
                yield Record(name, str(path), number, _row(path, number, obj))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: bytes at offset {exc.start} are not valid {encoding}; "
                        "set ingest.sources[].encoding") from None


def read_json(name: str, path: Path, encoding: str = "auto") -> Iterator[Record]:
    """Records from a JSON array of objects (or an object holding exactly one such array).

    The record's `line` is the 1-based position in the array.
    """
    encoding = resolve_encoding(path, encoding)
    try:
        data = json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column "
                        f"{exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: bytes at offset {exc.start} are not valid {encoding}; "
                        "set ingest.sources[].encoding") from None
    if isinstance(data, dict):
        arrays = [v for v in data.values() if isinstance(v, list)]
        if len(arrays) != 1:
            raise DataError(f"{path}: expected a JSON array of records, or an object with "
                            f"exactly one array; found {len(arrays)} arrays")
        data = arrays[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for index, obj in enumerate(data, start=1):
        yield Record(name, str(path), index, _row(path, f"record {index}", obj))


def read_source(source: SourceConfig) -> Iterator[Record]:
    """Records of one configured source, whatever its kind, keyed by `source.key` when set."""
    for record in _read_any(source):
        if source.key is not None:
            if source.key not in record.data:
                raise DataError(f"{record.file}:{record.line}: key column '{source.key}' of "
                                f"source '{source.name}' is missing (columns: "
                                f"{sorted(record.data)})")
            record = dataclasses.replace(record, key=record.data[source.key])
        yield record


def _read_any(source: SourceConfig) -> Iterator[Record]:
    if source.format == "sql":
        from tuneline.ingest.sql import read_sql

        yield from read_sql(source)
        return
    assert source.path is not None  # guaranteed by SourceConfig's validation
    if source.format == "chat":
        from tuneline.ingest.chat_files import read_chat_file

        yield from read_chat_file(source.name, source.path, source.encoding)
    elif source.format == "feedback":
        yield from read_feedback(source.name, source.path)
    elif source.format in DOCUMENT_FORMATS and reads_structured(source):
        yield from read_structured(source)
    elif source.format in DOCUMENT_FORMATS:
        from tuneline.ingest.documents import read_documents

        yield from read_documents(source)
    elif source.format in ("csv", "tsv"):
        delimiter = source.delimiter
        if source.format == "tsv" and delimiter is None:
            delimiter = "\t"
        yield from read_csv(source.name, source.path, delimiter, source.encoding)
    elif source.format == "jsonl":
        yield from read_jsonl(source.name, source.path, source.encoding)
    elif source.format == "parquet":
        yield from read_parquet(source.name, source.path)
    else:
        yield from read_json(source.name, source.path, source.encoding)


def read_feedback(name: str, path: Path) -> Iterator[Record]:
    """The feedback store's trainable examples as conversation records (as format 'chat'
    gives them); none yet is no error: users have not rated anything."""
    from tuneline.ingest.chat_files import FORMAT, MESSAGES
    from tuneline.serve.feedback import FeedbackStore

    examples, _ = FeedbackStore(path, must_exist=True).examples()
    for number, example in enumerate(examples, start=1):
        yield Record(name, str(path), number,
                     {MESSAGES: json.dumps(example["messages"], ensure_ascii=False),
                      FORMAT: "feedback"})


def source_fingerprint(source: SourceConfig) -> str:
    """Content hash of a source: the file's bytes, every document in a folder, or for SQL and
    the feedback store the records they give now (a store's bytes change with every rating,
    its examples only when a trainable one arrives)."""
    if source.path is not None and source.path.is_dir() and source.format == "chat":
        return hash_tree(source.path)
    if source.path is not None and source.path.is_dir():
        from tuneline.ingest.documents import documents_fingerprint

        return documents_fingerprint(source.path, source.format)
    if source.path is not None and source.format != "feedback":
        return hash_file(source.path)
    digest = hashlib.sha256()
    for record in read_source(source):
        digest.update(json.dumps(record.data, sort_keys=True).encode())
    return digest.hexdigest()


def read_parquet(name: str, path: Path) -> Iterator[Record]:
    """One Record per Parquet row, streamed in batches; `line` is the 1-based row number."""
    from tuneline._optional import require

    parquet = require("pyarrow.parquet")
    try:
        handle = parquet.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid, a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    number = 0
    for batch in handle.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            yield Record(name, str(path), number, {str(k): cell_text(v) for k, v in row.items()})
