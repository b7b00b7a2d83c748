"""A thin DB-API wrapper so every query is written once, with ``?`` placeholders, and runs on
SQLite (stdlib) or PostgreSQL (psycopg 3, the ``fleet`` extra)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ecolens.core.errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class DatabaseUrl:
    kind: str  # "sqlite" or "postgresql"
    target: str  # file path for SQLite, the libpq URL for PostgreSQL


def parse_database_url(url: str) -> DatabaseUrl:
    """``sqlite:///fleet.db`` (relative), ``sqlite:////var/lib/x.db`` (absolute),
    ``postgresql://user:pass@host:5432/db``; raises ValueError with the accepted forms."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(f"SQLite URL must be sqlite:///PATH, got {url!r}")
        return DatabaseUrl("sqlite", url[len("sqlite:///") :])
    if scheme in ("postgresql", "postgres"):
        return DatabaseUrl("postgresql", url)
    raise ValueError(f"database URL must start with sqlite:/// or postgresql://, got {url!r}")


class Database:
    """One connection, explicit transactions, ``?`` placeholders translated per driver."""

    def __init__(self, kind: str, connection: Any, description: str) -> None:
        self.kind = kind
        self.connection = connection
        self.description = description

    def sql(self, text: str) -> str:
        """``?`` placeholders for the driver: PostgreSQL's own ``$1, $2 …`` (psycopg's raw cursor
        sends the text as is; parsing ``%s`` in a batch insert of thousands of parameters cost
        more than the insert itself)."""
        if self.kind == "sqlite":
            return text
        return _numbered(text) if len(text) < 4096 else _numbered.__wrapped__(text)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Commit on success, roll back on error. SQLite takes the write lock at once
        (BEGIN IMMEDIATE) so two aggregators on one file queue instead of deadlocking."""
        if self.kind == "sqlite":
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")
        else:
            with self.connection.transaction():
                yield self

    @contextmanager
    def snapshot(self) -> Iterator[Database]:
        """A read-only view of one moment, for reads that must agree with each other while
        writers go on (SQLite: a deferred read transaction in WAL mode; PostgreSQL: REPEATABLE
        READ)."""
        if self.kind == "sqlite":
            self.connection.execute("BEGIN")
            try:
                yield self
            finally:
                self.connection.execute("COMMIT")
        else:
            with self.connection.transaction():
                self.connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield self

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the affected row count."""
        cursor = self.connection.execute(self.sql(text), tuple(params))
        return cursor.rowcount

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row (pipelined by psycopg); returns the summed row count."""
        if not rows:
            return 0
        if self.kind == "sqlite":
            return self.connection.executemany(self.sql(text), rows).rowcount
        with self.connection.cursor() as cursor:
            cursor.executemany(self.sql(text), rows)
            return cursor.rowcount

    def _rows_source(self, count: int, types: Sequence[str]) -> str:
        if self.kind == "sqlite":
            return "VALUES (" + ", ".join("?" * count) + ")"
        arrays = ", ".join(f"?::{kind}[]" for kind in types)
        columns = ", ".join(f"column{n}" for n in range(1, len(types) + 1))
        return f"SELECT * FROM unnest({arrays}) AS rows_in({columns})"

    def bulk(self, template: str, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> int:
        """One statement over many rows: ``template``'s ``{rows}`` is where they come from,
        named column1, column2 … SQLite runs it once a row (executemany: compiled once);
        PostgreSQL once, over arrays (``unnest``), so a batch is one statement, not hundreds.
        ``types`` are the PostgreSQL column types. Returns the affected row count."""
        if not rows:
            return 0
        text = template.format(rows=self._rows_source(len(types), types))
        if self.kind == "sqlite":
            return self.connection.executemany(text, rows).rowcount
        return self.execute(text, [list(column) for column in zip(*rows)])

    def bulk_returning(self, template: str, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> list:
        """``bulk`` for a statement with RETURNING: the rows it returns (SQLite: a row at a time)."""
        if not rows:
            return []
        text = template.format(rows=self._rows_source(len(types), types))
        if self.kind == "sqlite":
            out: list = []
            for row in rows:
                out += self.connection.execute(text, row).fetchall()
            return out
        return self.query(text, [list(column) for column in zip(*rows)])

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(self.sql(text), tuple(params)).fetchall())

    def close(self) -> None:
        self.connection.close()


@functools.lru_cache(maxsize=512)
def _numbered(text: str) -> str:
    """``?`` -> ``$1``, ``$2`` … (no statement here has a ``?`` inside a string literal)."""
    parts = text.split("?")
    return parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], 1))


def _open_sqlite(path: str, create: bool = True) -> Database:
    file = Path(path)
    if file.parent and not file.parent.exists():
        raise ConfigError(f"storage.url: folder does not exist: {file.parent}")
    if not create and not file.is_file():
        raise ConfigError(
            f"storage.url: no database at {file} (a typo? `ecolens aggregate` creates it on first start)"
        )
    try:
        connection = sqlite3.connect(str(file), timeout=60.0, isolation_level=None, check_same_thread=False)
        # WAL: readers (report, HTTP) never block the writer; NORMAL sync is durable
        # against process crashes, which is what the manual acknowledgement protects.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=60000")
    except sqlite3.Error as exc:
        raise ConfigError(f"storage.url: cannot open SQLite database {file}: {exc}") from exc
    return Database("sqlite", connection, f"sqlite:///{file}")


def _open_postgresql(url: str) -> Database:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            "PostgreSQL storage needs psycopg: pip install 'ecolens[fleet]'"
        ) from exc
    try:
        connection = psycopg.connect(
            url, autocommit=True, connect_timeout=10, cursor_factory=psycopg.RawCursor
        )
    except psycopg.Error as exc:
        raise ConfigError(f"storage.url: cannot connect to PostgreSQL: {exc}") from exc
    parts = urlsplit(url)
    return Database("postgresql", connection, f"postgresql://{parts.hostname}:{parts.port}{parts.path}")


def connect_database(url: str, create: bool = True) -> Database:
    """Connect, without touching the schema (``ecolens.fleet.storage.open_database`` migrates).
    ``create=False`` (readers such as ``report``): a SQLite file that does not exist is an
    error, not a new empty database."""
    try:
        parsed = parse_database_url(url)
    except ValueError as exc:
        raise ConfigError(f"storage.url: {exc}") from exc
    return _open_sqlite(parsed.target, create) if parsed.kind == "sqlite" else _open_postgresql(url)
