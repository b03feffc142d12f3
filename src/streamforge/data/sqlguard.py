"""The SQL guard: exactly one read-only SELECT over known tables, with a capped LIMIT.

Every statement that reaches a database goes through :func:`guard_sql`, the offline planner's own SQL
as much as an LLM's. The guard works on sqlglot's syntax tree, never on the text: it parses, checks
every node against an allow-list of statement shapes and a deny-list of functions, then *re-renders*
the tree. What runs is therefore the statement sqlglot understood, without comments, so a comment
cannot hide a second statement and a trick the parser misreads fails closed (a parse error rejects).

Read-only connections (see :mod:`streamforge.data.source`) are the second wall; this one exists so a
bad statement is refused with a reason before it costs a connection.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

__all__ = ["SQLRejected", "guard_sql"]


class SQLRejected(ValueError):
    """A statement the guard refused; ``reason`` says why in words fit for a log or an LLM repair."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Functions that read files, load code, reach the network, inspect the server or stall it.
_DENIED_FUNCTIONS = frozenset(
    {
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "read_csv",
        "read_csv_auto",
        "read_parquet",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_ndjson",
        "read_ndjson_auto",
        "read_text",
        "read_blob",
        "read_xlsx",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "csv_scan",
        "sniff_csv",
        "glob",
        "iceberg_scan",
        "delta_scan",
        "sqlite_scan",
        "postgres_scan",
        "mysql_scan",
        "query",
        "query_table",
        "getenv",
        "http_get",
        "http_post",
        "install",
        "load",
        "lo_import",
        "lo_export",
        "lo_get",
        "lo_put",
        "dblink",
        "dblink_exec",
        "set_config",
        "current_setting",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "sleep",
        "benchmark",
        "randomblob",
        "zeroblob",
        "system",
        "shell",
    }
)
_DENIED_PREFIXES = ("pg_", "sqlite_", "duckdb_", "read_", "lo_", "dblink")

# Statement-level nodes that never belong inside a read-only query.
_DENIED_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "AlterTable",
        "TruncateTable",
        "Command",
        "Pragma",
        "Attach",
        "Detach",
        "Use",
        "Set",
        "Transaction",
        "Commit",
        "Rollback",
        "Copy",
        "LoadData",
        "Into",
        "Lock",
        "Grant",
        "Install",
        "Describe",
        "Analyze",
        "Kill",
    )
    if hasattr(exp, name)
)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _check_functions(tree: exp.Expression) -> None:
    for node in tree.find_all(exp.Func):
        name = _function_name(node)
        if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
            raise SQLRejected(f"function {name}() is not allowed")


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _check_tables(tree: exp.Expression, allowed: set[str]) -> None:
    ctes = _cte_names(tree)
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            # A table-valued function (read_csv(...), generate_series(...)) or a string path.
            raise SQLRejected(f"only tables may appear in FROM, not {table.this.sql()}")
        name = table.name.lower()
        qualified = ".".join(p.lower() for p in (table.catalog, table.db, table.name) if p)
        if qualified in allowed or (qualified == name and name in ctes):
            continue
        raise SQLRejected(f"unknown table {qualified!r}; known tables: {', '.join(sorted(allowed))}")


def _cap_limit(tree: exp.Query, limit: int) -> exp.Query:
    current = tree.args.get("limit")
    if isinstance(current, exp.Limit):
        value = current.expression
        if isinstance(value, exp.Literal) and value.is_int and int(value.name) <= limit:
            return tree
    return tree.limit(limit)


def guard_sql(sql: str, allowed_tables: Iterable[str], dialect: str | None, limit: int) -> str:
    """Return ``sql`` re-rendered for ``dialect`` if it is one safe SELECT; raise :class:`SQLRejected`.

    ``allowed_tables`` are the names the query may read (lower-cased; schema-qualified names are
    allowed only when listed qualified). ``limit`` caps the rows: a missing or larger LIMIT becomes it.
    """
    allowed = {t.lower() for t in allowed_tables}
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise SQLRejected(f"not valid SQL: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise SQLRejected(f"expected exactly one statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise SQLRejected(f"only SELECT is allowed, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _DENIED_NODES):
            raise SQLRejected(f"{node.key.upper()} is not allowed in a read-only query")
    _check_functions(tree)
    _check_tables(tree, allowed)
    capped = _cap_limit(tree, limit)
    return capped.sql(dialect=dialect, comments=False)
