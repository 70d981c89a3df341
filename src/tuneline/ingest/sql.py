"""Read a SQL query or table through SQLAlchemy (any database it has a driver for)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from tuneline._optional import require
from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.records import Record, cell_text

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BATCH_ROWS = 10_000


def expand_env(url: str) -> str:
    """Replace ${VAR} with the environment's value; DataError names a missing variable."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise DataError(f"database URL uses ${{{name}}} but that environment variable "
                            "is not set")
        return os.environ[name]

    return _ENV_VAR.sub(value, url)


def display_url(url: str) -> str:
    """The URL with any password hidden, for provenance and messages."""
    sqlalchemy = require("sqlalchemy")
    try:
        return sqlalchemy.engine.make_url(expand_env(url)).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<invalid database URL>"


def read_sql(source: SourceConfig) -> Iterator[Record]:
    """One Record per result row; provenance is the URL (password hidden) and the row key."""
    sqlalchemy = require("sqlalchemy")
    assert source.url is not None
    shown = display_url(source.url)
    try:
        engine = sqlalchemy.create_engine(expand_env(source.url))
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise DataError(f"source '{source.name}': cannot use database URL {shown}: "
                        f"{exc}") from None
    if source.query is not None:
        statement = sqlalchemy.text(source.query)
    else:
        schema, _, name = str(source.table).rpartition(".")
        table = sqlalchemy.table(name, schema=schema or None)
        statement = sqlalchemy.select(sqlalchemy.text("*")).select_from(table)
    where = f"{shown} ({'query' if source.query is not None else 'table ' + str(source.table)})"
    try:
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(statement)
            columns = list(map(str, result.keys()))
            number = 0
            while batch := result.fetchmany(_BATCH_ROWS):
                for row in batch:
                    number += 1
                    data = {c: cell_text(v) for c, v in zip(columns, row, strict=True)}
                    yield Record(source.name, where, number, data)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DataError(f"source '{source.name}' ({where}): {message}") from None
    finally:
        engine.dispose()
