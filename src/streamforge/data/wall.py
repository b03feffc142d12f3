"""The connection as a second wall: what each engine itself refuses, whatever SQL reaches it.

The guard (:mod:`streamforge.data.sqlguard`) decides on the statement's text; this module makes the
connection refuse the same things on its own, so a statement the guard wrongly let by (a parser that
reads it differently from the engine, a future bug) still cannot write, read outside the known tables
or escape to files and programs. Used by :mod:`streamforge.data.source`:

- **SQLite**: the file is opened ``mode=ro``, at most 0 databases may be attached
  (``SQLITE_LIMIT_ATTACHED``, which also stops ``VACUUM INTO``), and an authorizer callback
  (:func:`sqlite_authorizer`) allows only ``SELECT``, reads of the schema's tables in ``main`` and calls
  of the functions the guard allows (:func:`~streamforge.data.sqlguard.allowed_function_names`, the
  same list, not a copy). ``ATTACH``, ``VACUUM``, every ``PRAGMA``, temporary tables, recursive CTEs,
  ``sqlite_master`` and ``printf`` are refused by SQLite itself.
- **DuckDB**: see :class:`~streamforge.data.source._DuckDBBackend` (read-only, external access off,
  configuration locked).
- **PostgreSQL**: every connection starts with ``default_transaction_read_only=on``, every statement is
  run as a server-side cursor (``DECLARE ... CURSOR FOR``, which takes exactly one query: no
  ``COMMIT; DELETE ...``, no ``COPY``, no ``SET``) inside a transaction that is rolled back. The role
  is the real wall there: :func:`pg_write_capabilities` says what the role could do beyond reading,
  and the service refuses to start with such a role unless ``STREAMFORGE_ALLOW_WRITABLE_ROLE=true``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Set
from typing import Any

from streamforge.data.sqlguard import allowed_function_names

__all__ = ["WritableRoleError", "pg_write_capabilities", "sqlite_authorizer"]

# SQLite runs the LIKE operator (query structure to the guard) as the function like().
_SQLITE_OPERATOR_FUNCTIONS = frozenset({"like"})


class WritableRoleError(RuntimeError):
    """The database role can do more than read, and running with it was not allowed."""


def sqlite_authorizer(readable: Callable[[], Set[str]]) -> Callable[[int, Any, Any, Any, Any], int]:
    """An authorizer for :meth:`sqlite3.Connection.set_authorizer`: reads only.

    ``readable`` returns the lower-case names of the tables and views a statement may read (called on
    every read, so the set may be filled after the connection opened). Everything not allowed here is
    ``SQLITE_DENY``, so the statement fails to compile with "not authorized".
    """
    functions = allowed_function_names("sqlite") | _SQLITE_OPERATOR_FUNCTIONS

    def authorize(action: int, arg1: Any, arg2: Any, database: Any, _inner: Any) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            # database is None for a read of the table as a whole (COUNT(*)); only main otherwise
            if database in (None, "main") and isinstance(arg1, str) and arg1.lower() in readable():
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if str(arg2).lower() in functions else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_TRANSACTION:
            return sqlite3.SQLITE_OK  # the driver's own COMMIT/ROLLBACK; the file is read-only anyway
        return sqlite3.SQLITE_DENY

    return authorize


# What a role must not be able to do, as (description, query answering true when it can).
_PG_CHECKS: tuple[tuple[str, str], ...] = (
    ("is a superuser", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"),
    (
        "can create roles or databases",
        "SELECT rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user",
    ),
    (
        "is a member of a role that reads or writes server files, runs programs or signals backends",
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('pg_read_server_files', "
        "'pg_write_server_files', 'pg_execute_server_program', 'pg_signal_backend') "
        "AND pg_has_role(current_user, oid, 'MEMBER'))",
    ),
    (
        "can INSERT, UPDATE, DELETE or TRUNCATE a table",
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'f') AND n.nspname <> 'information_schema' "
        "AND n.nspname NOT LIKE 'pg\\_%' "
        "AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))",
    ),
    (
        "can CREATE in a schema",
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname <> 'information_schema' "
        "AND nspname NOT LIKE 'pg\\_%' AND has_schema_privilege(oid, 'CREATE'))",
    ),
    ("can CREATE in the database", "SELECT has_database_privilege(current_database(), 'CREATE')"),
)


def pg_write_capabilities(cursor: Any) -> list[str]:
    """What the connected PostgreSQL role can do beyond reading (empty: a SELECT-only role).

    ``cursor`` is a DB-API cursor of the connection. Temporary tables (``TEMP``, granted to PUBLIC by
    default) are not counted: the connection is read-only, so it cannot create them.
    """
    found = []
    for description, query in _PG_CHECKS:
        cursor.execute(query)
        row = cursor.fetchone()
        if row is not None and row[0]:
            found.append(description)
    return found
