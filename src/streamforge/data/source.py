"""DataSource: one read-only door to a database, with a row limit and a timeout.

Accepted locations (``STREAMFORGE_DATABASE_URL``):

- any SQLAlchemy URL: ``sqlite:///shop.db``, ``postgresql+psycopg://user@host/db``, ...;
- ``duckdb:///file.duckdb`` (opened with DuckDB's own driver, read-only);
- a folder of ``.csv`` / ``.parquet`` files: each file becomes a table of a DuckDB file built in a
  private temporary folder (removed on close) and opened read-only;
- nothing: the bundled sample database, built on first use under ``settings.data_dir``.

Read-only is enforced by the connection, not only by the guard (:mod:`streamforge.data.wall` says what
each engine refuses): SQLite is opened ``mode=ro`` with an authorizer that allows only reads of the
schema's tables and the guard's functions, DuckDB ``read_only`` with external access off and its
configuration locked, PostgreSQL sessions with ``default_transaction_read_only`` and one query per
server-side cursor, and a role that can write is refused at start unless allowed. Every statement also
goes through :func:`~streamforge.data.sqlguard.guard_sql` first: one path, one set of rules.

Bounds (:class:`Bounds`, ``STREAMFORGE_SQL_*``): every statement has a deadline (SQLite's progress
handler, DuckDB ``interrupt()`` and PostgreSQL's cancel request from a timer, plus PostgreSQL's
``statement_timeout``); rows are fetched a batch at a time against a byte budget; SQLite caps the
length of a value (``SQLITE_LIMIT_LENGTH``), DuckDB its memory, threads and spill files, PostgreSQL
``work_mem`` and ``temp_file_limit``.

DuckDB is used through its own driver rather than duckdb-engine because a connection must be shared
across worker threads (one cursor per query) and SQLAlchemy's pool would open a new, empty in-memory
database per connection.

Queries run in a worker thread (:meth:`DataSource.run`), never on the event loop.

Cancellation: a thread cannot be killed, so cancelling the task that awaits :meth:`DataSource.run`
(a client that went away) would leave its statement running to the timeout, holding a worker thread
and a connection. Instead ``run`` tells the database to stop: SQLite's progress handler sees the
flag, DuckDB's cursor is ``interrupt()``-ed, PostgreSQL gets a cancel request (sent from a short-lived
thread, since it is a blocking network call). Other dialects only skip a statement not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool
from sqlglot import exp

from streamforge.data.sample import ensure_sample_db
from streamforge.data.schema import RawColumn, RawTable, Schema, introspect
from streamforge.data.sqlguard import guard_sql
from streamforge.data.wall import WritableRoleError, pg_write_capabilities, sqlite_authorizer

if TYPE_CHECKING:
    from streamforge.config import Settings

__all__ = ["Bounds", "DataSource", "QueryError", "QueryResult", "WritableRoleError"]

log = logging.getLogger(__name__)

_FILE_SUFFIXES = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet"}


class QueryError(RuntimeError):
    """The database refused or aborted a statement (timeout included)."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Bounds:
    """What one statement may cost, enforced by the engine (``STREAMFORGE_SQL_*``, see config).

    ``max_result_bytes`` bounds the rows fetched (about: text and bytes by length, other values 16
    bytes) and, in SQLite, the longest string, blob or row (``SQLITE_LIMIT_LENGTH``). ``memory_limit``,
    ``threads`` and ``temp_limit`` are DuckDB's ``memory_limit``, ``threads`` and
    ``max_temp_directory_size``; ``work_mem`` and ``temp_limit`` are PostgreSQL's ``work_mem`` and
    ``temp_file_limit``. Sizes are written ``<n>kB|MB|GB|TB``, which both engines read.
    """

    max_result_bytes: int = 8_000_000
    memory_limit: str = "512MB"
    threads: int = 2
    temp_limit: str = "1GB"
    work_mem: str = "16MB"


_BATCH = 64  # rows fetched at a time, so a result is measured before it is all in memory


def _value_bytes(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray):
        return len(value) + 16
    if isinstance(value, memoryview):
        return value.nbytes + 16
    return 16


def _fetch(
    fetchmany: Callable[[int], Sequence[Any]], max_rows: int, max_bytes: int, deadline: _Deadline
) -> list[tuple[Any, ...]]:
    """At most ``max_rows`` rows, a batch at a time; :class:`QueryError` past ``max_bytes`` or the
    deadline, before the rest of the answer is fetched."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while len(rows) < max_rows:
        batch = fetchmany(min(_BATCH, max_rows - len(rows)))
        if not batch:
            break
        for row in batch:
            size += sum(_value_bytes(v) for v in row)
            if size > max_bytes:
                raise QueryError(
                    f"the answer is larger than {max_bytes:,} bytes; ask for fewer rows or shorter values"
                )
            rows.append(tuple(row))
        deadline.check()
    return rows


class _Deadline:
    """The end of one statement's time: ``check`` raises once it has passed."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    @property
    def passed(self) -> bool:
        return time.monotonic() > self.at

    def error(self) -> QueryError:
        return QueryError(f"the statement ran past the time limit of {self.timeout:g} s")

    def check(self) -> None:
        if self.passed:
            raise self.error()


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
    bounds: Bounds

    def execute(
        self, sql: str, max_rows: int, timeout: float, cancel: _Cancel | None = None
    ) -> QueryResult: ...

    def describe(self) -> list[RawTable]: ...

    def close(self) -> None: ...


class _SQLAlchemyBackend:
    """SQLite, PostgreSQL and any other SQLAlchemy dialect."""

    def __init__(self, url: URL, timeout: float, bounds: Bounds | None = None) -> None:
        self.bounds = bounds or Bounds()
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        self._sqlite = backend == "sqlite"
        self._postgres = backend == "postgresql"
        self._readable: frozenset[str] = frozenset()  # SQLite: what the authorizer lets a statement read
        if self._sqlite:
            database = url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                path = Path(database).resolve()
                if not path.exists():
                    raise FileNotFoundError(f"no SQLite database at {path}")
                url = url.set(database=f"file:{path}?mode=ro", query={**url.query, "uri": "true"})
            connect_args["check_same_thread"] = False
        elif self._postgres:
            options = (
                f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)} "
                f"-c work_mem={self.bounds.work_mem}"
            )
            existing = url.query.get("options")
            if isinstance(existing, str):
                options = f"{existing} {options}"
            url = url.set(query={k: v for k, v in url.query.items() if k != "options"})
            connect_args["options"] = options
        self.dialect = {"postgresql": "postgres"}.get(backend, backend)
        self.engine: Engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
        # Introspection reads the catalogue (sqlite_master, PRAGMA table_info), which the statements'
        # connections refuse: it gets its own, short-lived connections.
        self._inspect_engine: Engine = (
            sa.create_engine(url, connect_args=connect_args, poolclass=NullPool)
            if self._sqlite
            else self.engine
        )
        if self._sqlite:
            with self._inspect_engine.connect() as conn:
                names = sa.inspect(conn).get_table_names() + sa.inspect(conn).get_view_names()
            self._readable = frozenset(n.lower() for n in names if not n.lower().startswith("sqlite_"))
            self._sqlite_wall()
        elif self._postgres:
            self._postgres_wall()
        else:
            self._read_only_session()

    def _sqlite_wall(self) -> None:
        authorize = sqlite_authorizer(lambda: self._readable)
        length = max(self.bounds.max_result_bytes, 1000)

        @sa.event.listens_for(self.engine, "connect")
        def _lock_down(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # no ATTACH, no VACUUM INTO
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
            dbapi_conn.set_authorizer(authorize)

    def _postgres_wall(self) -> None:
        temp_limit = self.bounds.temp_limit
        warned: list[str] = []

        @sa.event.listens_for(self.engine, "connect")
        def _bound_temp_files(dbapi_conn: Any, _record: Any) -> None:
            # temp_file_limit is for superusers (or a GRANT SET ON PARAMETER): a SELECT-only role gets
            # it from ALTER ROLE ... SET temp_file_limit (docs/security.md); without either, say so once.
            try:
                dbapi_conn.execute(f"SET temp_file_limit = '{temp_limit}'")
                dbapi_conn.commit()
                return
            except Exception as exc:
                dbapi_conn.rollback()
                reason = str(exc).splitlines()[0]
            row = dbapi_conn.execute("SELECT current_setting('temp_file_limit')").fetchone()
            dbapi_conn.rollback()
            if row is not None and row[0] == "-1" and not warned:
                warned.append(reason)
                log.warning(
                    "temp files of a statement are not bounded: cannot set temp_file_limit (%s); "
                    "set it on the role (ALTER ROLE ... SET temp_file_limit, docs/security.md)",
                    reason,
                )

    def write_capabilities(self) -> list[str]:
        """What this connection's role can do beyond reading (PostgreSQL only; elsewhere empty)."""
        if not self._postgres:
            return []
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                return pg_write_capabilities(cur)
            finally:
                cur.close()
                conn.rollback()

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
        deadline = _Deadline(timeout)
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if self._sqlite and raw is not None:
                raw.set_progress_handler(lambda: int(cancel.requested or deadline.passed), 10_000)
            stop = self._stopper(raw)
            # The deadline stops the statement in the database, also between two fetches of a cursor.
            timer = threading.Timer(timeout, stop) if stop is not None else None
            if self._postgres:
                # One query as a server-side cursor: DECLARE takes exactly one SELECT, and the rows come
                # a batch at a time, so the byte budget is checked before the answer is all in memory.
                conn = conn.execution_options(stream_results=True, max_row_buffer=_BATCH)
            try:
                with cancel.stopping_with(stop):
                    if timer is not None:
                        timer.start()
                    result = conn.exec_driver_sql(sql)
                    columns = list(result.keys())
                    rows = _fetch(result.fetchmany, max_rows, self.bounds.max_result_bytes, deadline)
                    result.close()
            except sa.exc.DBAPIError as exc:
                if deadline.passed and not cancel.requested:
                    raise deadline.error() from exc
                raise QueryError(str(exc.orig).splitlines()[0] if exc.orig else str(exc)) from exc
            finally:
                if timer is not None:
                    timer.cancel()
                if self._sqlite and raw is not None:
                    raw.set_progress_handler(None, 0)
                conn.rollback()
        return QueryResult(columns, rows)

    def _stopper(self, raw: Any) -> Callable[[], None] | None:
        """What stops this connection's statement from another thread (None: nothing can)."""
        if self._sqlite or raw is None:
            return None  # SQLite: the progress handler reads the flag and the deadline itself
        stop: Callable[[], None] | None = getattr(raw, "cancel_safe", None) or getattr(raw, "cancel", None)
        return stop  # psycopg 3's cancel request; other drivers: None

    def describe(self) -> list[RawTable]:
        inspector = sa.inspect(self._inspect_engine)
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
        if self._sqlite:
            self._readable = frozenset(t.name.lower() for t in tables)
        return tables

    def close(self) -> None:
        self.engine.dispose()
        if self._inspect_engine is not self.engine:
            self._inspect_engine.dispose()


class _DuckDBBackend:
    """A DuckDB database file, or a copy of a folder of CSV/Parquet files; both opened read-only.

    The connection is the wall: ``read_only`` (no statement writes the database), the engine bounds
    (``memory_limit``, ``threads``, ``max_temp_directory_size``, spilling to a private temporary
    folder), then ``enable_external_access = false`` (no file, no URL, no ATTACH, no COPY, no
    extension) and ``lock_configuration = true`` (no ``SET`` or ``RESET`` can undo any of it). A folder
    is loaded into a DuckDB file in that temporary folder and reopened read-only, so a statement
    cannot change its rows either; the folder is removed on :meth:`close`.
    """

    dialect = "duckdb"

    def __init__(
        self, path: Path | None = None, folder: Path | None = None, bounds: Bounds | None = None
    ) -> None:
        self.bounds = bounds or Bounds()
        self._work = Path(tempfile.mkdtemp(prefix="streamforge-duckdb-"))
        # removed on close, or when the backend is collected or the process exits without a close
        self._remove_work = weakref.finalize(self, shutil.rmtree, self._work, ignore_errors=True)
        try:
            if folder is not None:
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _FILE_SUFFIXES)
                if not files:
                    raise FileNotFoundError(f"no .csv or .parquet files in {folder}")
                path = self._work / "streamforge_folder.duckdb"
                loader = duckdb.connect(str(path))
                try:
                    for file in files:
                        reader = _FILE_SUFFIXES[file.suffix.lower()]
                        name = exp.to_identifier(file.stem).sql("duckdb")
                        path_literal = exp.Literal.string(str(file)).sql("duckdb")
                        loader.execute(f"CREATE TABLE {name} AS SELECT * FROM {reader}({path_literal})")
                finally:
                    loader.close()
            assert path is not None
            if not path.exists():
                raise FileNotFoundError(f"no DuckDB database at {path}")
            temp = self._work / "spill"
            temp.mkdir()
            config: dict[str, str | bool | int | float | list[str]] = {
                "memory_limit": self.bounds.memory_limit,
                "threads": self.bounds.threads,
                "max_temp_directory_size": self.bounds.temp_limit,
                "temp_directory": str(temp),
            }
            self._conn = duckdb.connect(str(path), read_only=True, config=config)
            # In this order: the temporary folder cannot be set once external access is off.
            self._conn.execute("SET enable_external_access = false")
            self._conn.execute("SET lock_configuration = true")
        except BaseException:
            self._remove_work()
            raise
        self._lock = threading.Lock()

    def execute(self, sql: str, max_rows: int, timeout: float, cancel: _Cancel | None = None) -> QueryResult:
        cancel = cancel or _Cancel()
        deadline = _Deadline(timeout)
        with self._lock:  # cursor() on a shared connection is not itself thread-safe
            cur = self._conn.cursor()
        timer = threading.Timer(timeout, cur.interrupt)
        timer.start()
        try:
            with cancel.stopping_with(cur.interrupt):
                cur.execute(sql)
                columns = [d[0] for d in cur.description or ()]
                rows = _fetch(cur.fetchmany, max_rows, self.bounds.max_result_bytes, deadline)
        except duckdb.Error as exc:
            if deadline.passed and not cancel.requested:
                raise deadline.error() from exc
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
        self._remove_work()


class DataSource:
    """A database opened read-only, its introspected schema, and the one way to run SQL on it."""

    def __init__(
        self,
        location: str | Path,
        *,
        row_limit: int = 1000,
        timeout: float = 10.0,
        bounds: Bounds | None = None,
        allow_writable_role: bool = True,
        concurrency: int = 4,
    ) -> None:
        """Open ``location`` (see the module docstring).

        ``allow_writable_role``: with a PostgreSQL role that can do more than read (a superuser, a
        role with INSERT on a table, ...) a warning is logged, and with ``False`` the source refuses to
        open (:class:`WritableRoleError`). :meth:`from_settings`, the service's way in, passes
        ``STREAMFORGE_ALLOW_WRITABLE_ROLE`` (false by default); a caller building a source by hand
        owns its connection and gets the warning only.

        ``concurrency``: at most this many statements of :meth:`run` at once, in the source's own
        threads (so slow statements neither starve the default thread pool nor each other without
        bound); a statement that waited longer than ``timeout`` for a slot is refused.
        """
        self.row_limit = row_limit
        self.timeout = timeout
        self.bounds = bounds or Bounds()
        self.concurrency = concurrency
        self._backend = _open(location, timeout, self.bounds)
        try:
            self._check_role(allow_writable_role)
        except BaseException:
            self._backend.close()
            raise
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="streamforge-sql")
        self.dialect: str = self._backend.dialect
        self.identity = _identity(location)
        self._schema: Schema | None = None
        self._schema_lock = threading.Lock()

    def _check_role(self, allow: bool) -> None:
        capabilities: list[str] = getattr(self._backend, "write_capabilities", list)()
        if not capabilities:
            return
        what = "; ".join(capabilities)
        if not allow:
            raise WritableRoleError(
                f"the database role can do more than read ({what}); connect as a SELECT-only role "
                "(see docs/security.md) or set STREAMFORGE_ALLOW_WRITABLE_ROLE=true to run anyway"
            )
        log.warning(
            "the database role can do more than read (%s): only the SQL guard and read-only "
            "transactions stand between a model's SQL and a write; use a SELECT-only role",
            what,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> DataSource:
        """``settings.database_url``, or the sample database under ``settings.data_dir`` when unset."""
        location: str | Path = settings.database_url or ensure_sample_db(settings.data_dir)
        bounds = Bounds(
            max_result_bytes=settings.sql_max_result_bytes,
            memory_limit=settings.sql_memory_limit,
            threads=settings.sql_threads,
            temp_limit=settings.sql_temp_limit,
            work_mem=settings.sql_work_mem,
        )
        return cls(
            location,
            row_limit=settings.sql_row_limit,
            timeout=settings.sql_timeout,
            bounds=bounds,
            allow_writable_role=settings.allow_writable_role,
            concurrency=settings.sql_concurrency,
        )

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
        queued = time.monotonic()

        def work() -> QueryResult:
            waited = time.monotonic() - queued
            if waited > self.timeout:  # a slot came too late: the caller's time is gone
                raise QueryError(
                    f"the database is busy ({self.concurrency} statements running); waited {waited:.1f} s"
                )
            return self.run_sync(sql, cancel=cancel)

        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, context.run, work)
        except asyncio.CancelledError:
            cancel.cancel()  # a statement still queued is dropped by the pool; a running one stopped
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
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


def _open(location: str | Path, timeout: float, bounds: Bounds) -> _Backend:
    text = str(location)
    if "://" not in text:
        path = Path(text).expanduser()
        if path.is_dir():
            return _DuckDBBackend(folder=path, bounds=bounds)
        if path.suffix.lower() in (".duckdb", ".ddb"):
            return _DuckDBBackend(path=path, bounds=bounds)
        return _SQLAlchemyBackend(make_url(f"sqlite:///{path}"), timeout, bounds)
    url = make_url(text)
    if url.get_backend_name() == "duckdb":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise ValueError("an in-memory DuckDB has no tables to read; give a file or a folder")
        return _DuckDBBackend(path=Path(database).expanduser(), bounds=bounds)
    return _SQLAlchemyBackend(url, timeout, bounds)
