"""DataSource: one read-only door to a database, with a row limit and a timeout.

Accepted locations (``STREAMFORGE_DATABASE_URL``):

- any SQLAlchemy URL: ``sqlite:///shop.db``, ``postgresql+psycopg://user@host/db``, ...;
- ``duckdb:///file.duckdb`` (opened with DuckDB's own driver, read-only);
- a folder of ``.csv`` / ``.parquet`` files: each file becomes a table in an in-memory DuckDB;
- nothing: the bundled sample database, built on first use under ``settings.data_dir``.

Read-only is enforced by the connection, not only by the guard: SQLite is opened with ``mode=ro``,
DuckDB files with ``read_only=True``, PostgreSQL sessions with ``default_transaction_read_only``.
CSV/Parquet folders are copied into memory, so even a write that got through could not touch the files,
and DuckDB's external access is switched off once they are loaded. Every statement also goes through
:func:`~streamforge.data.sqlguard.guard_sql` first: one path, one set of rules.

DuckDB is used through its own driver rather than duckdb-engine because a connection must be shared
across worker threads (one cursor per query) and SQLAlchemy's pool would open a new, empty in-memory
database per connection.

Queries run in a worker thread (:meth:`DataSource.run`), never on the event loop. Timeouts: SQLite uses
a progress handler, PostgreSQL ``statement_timeout``, DuckDB ``interrupt()`` from a timer.

Cancellation: a thread cannot be killed, so cancelling the task that awaits :meth:`DataSource.run`
(a client that went away) would leave its statement running to the timeout, holding a worker thread
and a connection. Instead ``run`` tells the database to stop: SQLite's progress handler sees the
flag, DuckDB's cursor is ``interrupt()``-ed, PostgreSQL gets a cancel request (sent from a short-lived
thread, since it is a blocking network call). Other dialects only skip a statement not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlglot import exp

from streamforge.data.sample import ensure_sample_db
from streamforge.data.schema import RawColumn, RawTable, Schema, introspect
from streamforge.data.sqlguard import guard_sql

if TYPE_CHECKING:
    from streamforge.config import Settings

__all__ = ["DataSource", "QueryError", "QueryResult"]

_FILE_SUFFIXES = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet"}


class QueryError(RuntimeError):
    """The database refused or aborted a statement (timeout included)."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _plain(value: Any) -> Any:
    """Database values as JSON-friendly Python: dates as ISO text, decimals as floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return value


class _Cancel:
    """How a coroutine stops the statement a worker thread runs for it.

    The thread registers a ``stop`` callable while its statement runs; :meth:`cancel` (from the event
    loop) sets the flag and, if a statement is registered, has a short-lived thread call ``stop``
    until the statement has ended: a request that lands while the statement is still being set up can
    be lost (DuckDB clears its interrupt flag when a query starts; a PostgreSQL cancel that arrives
    before the query does nothing), and a PostgreSQL cancel is a blocking network round trip that
    must not run on the event loop. Both sides take the lock, so a cancel never misses a registered
    statement.
    """

    _RETRY = 0.1  # seconds between two stop requests to a statement that is still running

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._lock = threading.Lock()
        self._running: tuple[Callable[[], None], threading.Event] | None = None

    @property
    def requested(self) -> bool:
        return self._flag.is_set()

    @contextlib.contextmanager
    def stopping_with(self, stop: Callable[[], None] | None) -> Iterator[None]:
        """While the block runs, :meth:`cancel` calls ``stop`` (None: the statement watches
        :attr:`requested` itself); a cancel that came first raises :class:`QueryError`."""
        finished = threading.Event()
        with self._lock:
            if self._flag.is_set():
                raise QueryError("cancelled before it started")
            if stop is not None:
                self._running = (stop, finished)
        try:
            yield
        finally:
            finished.set()
            with self._lock:
                self._running = None

    def cancel(self) -> None:
        with self._lock:
            self._flag.set()
            running = self._running
        if running is not None:
            threading.Thread(
                target=_keep_stopping, args=running, name="streamforge-sql-cancel", daemon=True
            ).start()


def _keep_stopping(stop: Callable[[], None], finished: threading.Event) -> None:
    while True:
        with contextlib.suppress(Exception):  # the statement may be finishing at this moment
            stop()
        if finished.wait(_Cancel._RETRY):
            return


class _Backend(Protocol):
    dialect: str

    def execute(
        self, sql: str, max_rows: int, timeout: float, cancel: _Cancel | None = None
    ) -> QueryResult: ...

    def describe(self) -> list[RawTable]: ...

    def close(self) -> None: ...


class _SQLAlchemyBackend:
    """SQLite, PostgreSQL and any other SQLAlchemy dialect."""

    def __init__(self, url: URL, timeout: float) -> None:
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        self._sqlite = backend == "sqlite"
        if self._sqlite:
            database = url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                path = Path(database).resolve()
                if not path.exists():
                    raise FileNotFoundError(f"no SQLite database at {path}")
                url = url.set(database=f"file:{path}?mode=ro", query={**url.query, "uri": "true"})
            connect_args["check_same_thread"] = False
        elif backend == "postgresql":
            options = f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)}"
            existing = url.query.get("options")
            if isinstance(existing, str):
                options = f"{existing} {options}"
            url = url.set(query={k: v for k, v in url.query.items() if k != "options"})
            connect_args["options"] = options
        self.dialect = {"postgresql": "postgres"}.get(backend, backend)
        self.engine: Engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
        if backend not in ("sqlite", "postgresql"):
            self._read_only_session()

    def _read_only_session(self) -> None:
        # Best effort for other dialects; the guard still refuses anything but SELECT.
        @sa.event.listens_for(self.engine, "connect")
        def _set_read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                with contextlib.suppress(Exception):  # a dialect without the statement
                    cur.execute("SET SESSION TRANSACTION READ ONLY")
            finally:
                cur.close()

    def execute(self, sql: str, max_rows: int, timeout: float, cancel: _Cancel | None = None) -> QueryResult:
        cancel = cancel or _Cancel()
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if self._sqlite and raw is not None:
                deadline = time.monotonic() + timeout
                raw.set_progress_handler(lambda: int(cancel.requested or time.monotonic() > deadline), 10_000)
            try:
                with cancel.stopping_with(self._stopper(raw)):
                    result = conn.exec_driver_sql(sql)
                    columns = list(result.keys())
                    rows = [tuple(r) for r in result.fetchmany(max_rows)]
            except sa.exc.DBAPIError as exc:
                raise QueryError(str(exc.orig).splitlines()[0] if exc.orig else str(exc)) from exc
            finally:
                if self._sqlite and raw is not None:
                    raw.set_progress_handler(None, 0)
                conn.rollback()
        return QueryResult(columns, rows)

    def _stopper(self, raw: Any) -> Callable[[], None] | None:
        """What stops this connection's statement from another thread (None: nothing can)."""
        if self._sqlite or raw is None:
            return None  # SQLite: the progress handler reads the flag itself
        stop: Callable[[], None] | None = getattr(raw, "cancel_safe", None) or getattr(raw, "cancel", None)
        return stop  # psycopg 3's cancel request; other drivers: None

    def describe(self) -> list[RawTable]:
        inspector = sa.inspect(self.engine)
        tables = []
        for name in sorted(inspector.get_table_names()) + sorted(inspector.get_view_names()):
            if name.startswith("sqlite_"):
                continue
            cols = tuple(
                RawColumn(c["name"], str(c["type"]), bool(c.get("nullable", True)))
                for c in inspector.get_columns(name)
            )
            pk = tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ())
            fks = tuple(
                (col, fk["referred_table"], ref)
                for fk in inspector.get_foreign_keys(name)
                for col, ref in zip(fk["constrained_columns"], fk["referred_columns"], strict=False)
            )
            tables.append(RawTable(name, cols, pk, fks))
        return tables

    def close(self) -> None:
        self.engine.dispose()


class _DuckDBBackend:
    """A DuckDB database file (read-only) or an in-memory copy of a folder of CSV/Parquet files."""

    dialect = "duckdb"

    def __init__(self, path: Path | None = None, folder: Path | None = None) -> None:
        if folder is not None:
            self._conn = duckdb.connect(":memory:")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _FILE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"no .csv or .parquet files in {folder}")
            for file in files:
                reader = _FILE_SUFFIXES[file.suffix.lower()]
                name = exp.to_identifier(file.stem).sql("duckdb")
                path_literal = exp.Literal.string(str(file)).sql("duckdb")
                self._conn.execute(f"CREATE TABLE {name} AS SELECT * FROM {reader}({path_literal})")
            self._conn.execute("SET enable_external_access = false")
        else:
            assert path is not None
            if not path.exists():
                raise FileNotFoundError(f"no DuckDB database at {path}")
            self._conn = duckdb.connect(str(path), read_only=True)
            self._conn.execute("SET enable_external_access = false")
        self._lock = threading.Lock()

    def execute(self, sql: str, max_rows: int, timeout: float, cancel: _Cancel | None = None) -> QueryResult:
        cancel = cancel or _Cancel()
        with self._lock:  # cursor() on a shared connection is not itself thread-safe
            cur = self._conn.cursor()
        timer = threading.Timer(timeout, cur.interrupt)
        timer.start()
        try:
            with cancel.stopping_with(cur.interrupt):
                cur.execute(sql)
                columns = [d[0] for d in cur.description or ()]
                rows = [tuple(r) for r in cur.fetchmany(max_rows)]
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()
            cur.close()
        return QueryResult(columns, rows)

    def describe(self) -> list[RawTable]:
        cur = self._conn.cursor()
        try:
            rows = cur.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            ).fetchall()
            pks = cur.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE constraint_type = 'PRIMARY KEY' AND schema_name = current_schema()"
            ).fetchall()
            fk_rows = cur.execute(
                "SELECT table_name, constraint_column_names, constraint_text FROM duckdb_constraints() "
                "WHERE constraint_type = 'FOREIGN KEY' AND schema_name = current_schema()"
            ).fetchall()
        finally:
            cur.close()
        columns: dict[str, list[RawColumn]] = {}
        for table, column, type_name, nullable in rows:
            columns.setdefault(table, []).append(RawColumn(column, type_name, nullable == "YES"))
        pk_of = {t: tuple(cols) for t, cols in pks}
        fks: dict[str, list[tuple[str, str, str]]] = {}
        for table, cols, text in fk_rows:
            # constraint_text: FOREIGN KEY (user_id) REFERENCES users(user_id)
            target = str(text).split("REFERENCES", 1)[-1].strip()
            ref_table, _, ref_cols = target.partition("(")
            for col, ref in zip(cols, ref_cols.rstrip(")").split(","), strict=False):
                fks.setdefault(table, []).append((col, ref_table.strip().strip('"'), ref.strip().strip('"')))
        return [
            RawTable(t, tuple(cols), pk_of.get(t, ()), tuple(fks.get(t, ()))) for t, cols in columns.items()
        ]

    def close(self) -> None:
        self._conn.close()


class DataSource:
    """A database opened read-only, its introspected schema, and the one way to run SQL on it."""

    def __init__(self, location: str | Path, *, row_limit: int = 1000, timeout: float = 10.0) -> None:
        self.row_limit = row_limit
        self.timeout = timeout
        self._backend = _open(location, timeout)
        self.dialect: str = self._backend.dialect
        self.identity = _identity(location)
        self._schema: Schema | None = None
        self._schema_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> DataSource:
        """``settings.database_url``, or the sample database under ``settings.data_dir`` when unset."""
        location: str | Path = settings.database_url or ensure_sample_db(settings.data_dir)
        return cls(location, row_limit=settings.sql_row_limit, timeout=settings.sql_timeout)

    @property
    def schema(self) -> Schema:
        """The introspected schema, computed on first use and cached for the life of the source."""
        if self._schema is None:
            with self._schema_lock:
                if self._schema is None:
                    raw = self._backend.describe()
                    names = [t.name for t in raw]

                    def execute(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
                        result = self._run(sql, names, 10_000)
                        return result.columns, result.rows

                    self._schema = introspect(raw, execute, self.quote)
        return self._schema

    @property
    def tables(self) -> list[str]:
        return list(self.schema.tables)

    def quote(self, identifier: str) -> str:
        """``identifier`` quoted for this source's dialect."""
        return exp.to_identifier(identifier, quoted=True).sql(self.dialect)

    def _run(
        self, sql: str, allowed: Sequence[str], limit: int, cancel: _Cancel | None = None
    ) -> QueryResult:
        safe = guard_sql(sql, allowed, self.dialect, limit)
        result = self._backend.execute(safe, limit, self.timeout, cancel)
        return QueryResult(result.columns, [tuple(_plain(v) for v in row) for row in result.rows])

    def guard(self, sql: str) -> str:
        """``sql`` as it would run here (guarded, LIMIT capped), or :class:`SQLRejected`.

        Blocking: it parses the statement (up to :data:`~streamforge.data.sqlguard.MAX_SQL_CHARS`
        characters, which takes a noticeable fraction of a second), so a coroutine calls it through
        ``asyncio.to_thread``, never directly on the event loop.
        """
        return guard_sql(sql, self.tables, self.dialect, self.row_limit)

    def run_sync(self, sql: str, *, cancel: _Cancel | None = None) -> QueryResult:
        """Guard and run one statement in the calling thread; for code that is already off the loop."""
        return self._run(sql, self.tables, self.row_limit, cancel)

    async def run(self, sql: str) -> QueryResult:
        """Guard and run one statement in a worker thread: the guard's parse, the first use of the
        schema and the database all run there, so the event loop never waits on any of them.

        Cancelling the awaiting task stops the statement in the database too (see the module docstring).
        """
        cancel = _Cancel()
        try:
            return await asyncio.to_thread(self.run_sync, sql, cancel=cancel)
        except asyncio.CancelledError:
            cancel.cancel()
            raise

    def close(self) -> None:
        self._backend.close()


def _identity(location: str | Path) -> str:
    """A stable key for caches: the same database gives the same identity, and no secret leaks."""
    text = str(location)
    if "://" in text:
        with contextlib.suppress(Exception):  # not a URL SQLAlchemy knows: hash it as written
            text = make_url(text).render_as_string(hide_password=True)
    else:
        text = str(Path(text).resolve())
    return "db:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _open(location: str | Path, timeout: float) -> _Backend:
    text = str(location)
    if "://" not in text:
        path = Path(text).expanduser()
        if path.is_dir():
            return _DuckDBBackend(folder=path)
        if path.suffix.lower() in (".duckdb", ".ddb"):
            return _DuckDBBackend(path=path)
        return _SQLAlchemyBackend(make_url(f"sqlite:///{path}"), timeout)
    url = make_url(text)
    if url.get_backend_name() == "duckdb":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise ValueError("an in-memory DuckDB has no tables to read; give a file or a folder")
        return _DuckDBBackend(path=Path(database).expanduser())
    return _SQLAlchemyBackend(url, timeout)
