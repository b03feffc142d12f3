"""The SQL guard: exactly one read-only SELECT over known tables, built only from allowed parts.

Every statement that reaches a database goes through :func:`guard_sql`, the offline planner's own SQL
as much as an LLM's. The guard works on sqlglot's syntax tree, never on the text, and it is an
allow-list all the way down: every node of the tree must be

- a piece of query structure a dashboard needs (SELECT, FROM, JOIN, WHERE, GROUP BY, ORDER BY, LIMIT,
  CTEs, subqueries, set operations, arithmetic, comparisons, CASE, window clauses, casts to plain
  types), see ``_STRUCTURE``;
- a function sqlglot knows by class, from the aggregate, window, date/time, string, math and
  conditional families (``_FUNCTIONS``);
- or a function sqlglot does not know (``exp.Anonymous``) whose name is on the allow-list of the
  statement's dialect (``_ANONYMOUS``).

Everything else is refused with a reason naming it, so a function that reads a file, a setting or
another table through a string (``pg_read_file``, ``query_to_xml``, ``read_csv``, ``current_setting``,
``set_config``, ``load_extension``, ...), one that makes a large value from a small statement
(``printf``, ``repeat``, ``zeroblob``, ``generate_series``, ``range``, ``unnest``, a recursive CTE),
a schema-qualified function call, an operator given by name or a cast to a type like ``regclass`` is
refused because it is not on a list, not because someone thought to deny it.

Tables are resolved with sqlglot's scopes (:mod:`sqlglot.optimizer.scope`): a name is a CTE only where
that CTE is visible, every other table must be on the allow-list, and a CTE may not be named like a
system table or a table of the schema, so an engine that resolves a name differently from sqlglot
still reads nothing it should not. Table-valued functions in FROM are refused, and so is SQLite's
``x IN name``, which reads a table outside any FROM.

The statement is capped at :data:`MAX_SQL_CHARS` before it is parsed (parsing is the expensive part
and runs in the caller's thread: :class:`~streamforge.data.source.DataSource` runs it in a worker
thread, never on the event loop). What runs is the tree *re-rendered* for the dialect, without
comments, so a comment cannot hide a second statement and a trick the parser misreads fails closed.

Read-only connections (see :mod:`streamforge.data.source`) are the second wall; this one exists so a
bad statement is refused with a reason before it costs a connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.optimizer.scope import traverse_scope

__all__ = ["MAX_SQL_CHARS", "SQLRejected", "allowed_function_names", "guard_sql"]

MAX_SQL_CHARS = 20_000
"""The longest statement the guard parses; a dashboard query is a few hundred characters."""

_MAX_PAD = 64  # the longest lpad()/rpad() result allowed (a literal length, so no size attack)


class SQLRejected(ValueError):
    """A statement the guard refused; ``reason`` says why in words fit for a log or an LLM repair."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _classes(*names: str) -> frozenset[type[exp.Expr]]:
    """The sqlglot classes of these names that this version of sqlglot has."""
    return frozenset(getattr(exp, n) for n in names if isinstance(getattr(exp, n, None), type))


# The shape of a read-only query: statements, clauses, operators, literals. Matched by exact class,
# so a subclass sqlglot adds later is refused until it is listed.
_STRUCTURE = _classes(
    "Select", "Union", "Intersect", "Except", "Subquery", "With", "CTE", "TableAlias", "Table",
    "From", "Join", "Where", "Group", "Having", "Qualify", "Order", "Ordered", "Limit", "Offset",
    "Rollup", "Cube", "GroupingSets", "Values", "Tuple",
    "Identifier", "Column", "Star", "Alias", "Literal", "Boolean", "Null", "Paren", "Distinct",
    "Window", "WindowSpec", "Filter", "WithinGroup", "IgnoreNulls", "RespectNulls",
    "Interval", "DataType", "DataTypeParam", "Var", "AtTimeZone",
    "Add", "Sub", "Mul", "Div", "IntDiv", "Mod", "Neg", "DPipe",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitwiseLeftShift", "BitwiseRightShift",
    "EQ", "NEQ", "NullSafeEQ", "NullSafeNEQ", "GT", "GTE", "LT", "LTE",
    "Is", "In", "Between", "Like", "ILike", "Escape", "Not", "Any", "All",
)  # fmt: skip

# Functions sqlglot knows, allowed by class on every dialect.
_FUNCTIONS = _classes(
    # conditional logic and casts (the cast's target type is checked too)
    "And", "Or", "Case", "If", "Coalesce", "Nullif", "Greatest", "Least", "Exists", "Cast", "TryCast",
    # aggregates
    "Count", "CountIf", "Sum", "Avg", "Min", "Max", "Median", "Mode", "PercentileCont",
    "PercentileDisc", "ApproxDistinct", "Stddev", "StddevPop", "StddevSamp", "Variance",
    "VariancePop", "Corr", "CovarPop", "CovarSamp", "RegrSlope", "RegrIntercept", "RegrR2",
    "RegrCount", "RegrAvgx", "RegrAvgy", "RegrSxx", "RegrSyy", "RegrSxy", "AnyValue", "ArgMax",
    "ArgMin", "LogicalAnd", "LogicalOr", "First", "Last", "Grouping", "Skewness", "Kurtosis",
    # window functions
    "RowNumber", "Rank", "DenseRank", "PercentRank", "CumeDist", "Ntile", "Lag", "Lead",
    "FirstValue", "LastValue", "NthValue",
    # math
    "Abs", "Ceil", "Floor", "Round", "Trunc", "Sign", "Sqrt", "Cbrt", "Pow", "Exp", "Ln", "Log",
    "Pi", "Degrees", "Radians", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Atan2", "IsNan",
    "IsInf", "SafeDivide", "WidthBucket", "Rand",
    # strings (lpad/rpad only to a short literal length, see _check_function)
    "Lower", "Upper", "Initcap", "Length", "Trim", "Substring", "Left", "Right", "Concat",
    "ConcatWs", "Replace", "StrPosition", "SplitPart", "StartsWith", "EndsWith", "Contains",
    "Reverse", "Pad", "Typeof",
    # dates and times
    "CurrentDate", "CurrentTimestamp", "CurrentTime", "CurrentDatetime", "Date", "Datetime", "Time",
    "DateTrunc", "TimestampTrunc", "DatetimeTrunc", "TimeTrunc", "DateBin", "Extract",
    "DateAdd", "DateSub", "DateDiff", "DatetimeAdd", "DatetimeSub", "DatetimeDiff", "TimestampAdd",
    "TimestampSub", "TimestampDiff", "TimeAdd", "TimeSub", "TimeDiff", "TsOrDsAdd", "TsOrDsDiff",
    "Year", "Quarter", "Month", "Week", "WeekOfYear", "Day", "DayOfMonth", "DayOfWeek",
    "DayOfWeekIso", "DayOfYear", "Hour", "Minute", "Second", "Dayname", "Monthname", "LastDay",
    "AddMonths", "MonthsBetween", "MakeInterval", "JustifyDays", "JustifyHours", "JustifyInterval",
    "StrToTime", "StrToDate", "TimeToStr", "TimeToUnix", "UnixToTime", "UnixToStr", "ToChar",
    "ToNumber", "TsOrDsToDate", "TsOrDsToTimestamp", "TsOrDsToDatetime", "TimeStrToTime",
    "TimeStrToDate", "DateStrToDate", "DateToDateStr", "TimeToTimeStr", "DateFromParts",
    "TimestampFromParts",
)  # fmt: skip

# Functions sqlglot parses as exp.Anonymous, allowed by name for their own engine only.
_ANONYMOUS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        {"strftime", "julianday", "date", "datetime", "time", "unixepoch", "timediff", "total"}
    ),
    "duckdb": frozenset(
        {
            "age", "date_part", "datepart", "date_diff", "datediff", "date_sub", "datesub", "now",
            "today", "epoch_ms", "epoch_us", "make_time", "yearweek", "weekday", "isoyear",
            "century", "decade", "millisecond", "microsecond", "try_strptime", "isfinite", "every",
            "fsum", "favg", "ltrim", "rtrim", "btrim", "prefix", "suffix", "strip_accents",
        }
    ),
    "postgres": frozenset(
        {
            "age", "make_date", "make_time", "isfinite", "every", "octet_length", "ltrim", "rtrim",
            "clock_timestamp", "statement_timestamp", "transaction_timestamp",
        }
    ),
}  # fmt: skip

# Target types of a cast: numbers, text, booleans, dates and times. Not regclass, xml, arrays, ...
_CAST_TYPES = frozenset(
    t
    for t in exp.DataType.Type
    if t.name
    in {
        "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "HUGEINT", "INT128", "UTINYINT",
        "USMALLINT", "UINT", "UBIGINT", "DECIMAL", "BIGDECIMAL", "FLOAT", "DOUBLE", "MONEY",
        "BOOLEAN", "TEXT", "VARCHAR", "NVARCHAR", "CHAR", "NCHAR", "BPCHAR", "DATE", "DATETIME",
        "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMESTAMPNTZ", "TIME", "TIMETZ", "INTERVAL",
    }
)  # fmt: skip

# Statement nodes named in the refusal when they turn up inside a query (a CTE that deletes, ...).
_WRITES = _classes(
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command",
    "Pragma", "Attach", "Detach", "Use", "Set", "Transaction", "Commit", "Rollback", "Copy",
    "LoadData", "Into", "Lock", "Grant", "Install", "Describe", "Analyze", "Kill", "Returning",
)  # fmt: skip

# Names of the engines' own tables and table functions (sqlite_master, pragma_database_list,
# pg_shadow, pg_settings, duckdb_databases, information_schema.*, ...): never a CTE's name.
_SYSTEM_PREFIXES = ("sqlite_", "pragma_", "pg_", "duckdb_", "information_schema")
_SYSTEM_NAMES = frozenset({"dbstat", "json_each", "json_tree", "generate_series", "fts3tokenize"})

# sqlite and duckdb compare identifiers without case, even quoted ones; the others fold unquoted ones.
_CASE_INSENSITIVE = frozenset({"sqlite", "duckdb"})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _is_system(name: str) -> bool:
    low = name.lower()
    return low.startswith(_SYSTEM_PREFIXES) or low in _SYSTEM_NAMES


def _fold(name: str, quoted: bool, dialect: str | None) -> str:
    """``name`` as the engine compares it. Only ASCII letters are folded: that is what SQLite and
    PostgreSQL do, and folding less than the engine can only make the guard refuse, never allow."""
    return name.translate(_ASCII_LOWER) if dialect in _CASE_INSENSITIVE or not quoted else name


def _normalize(tree: exp.Expr, dialect: str | None) -> exp.Expr:
    """A copy of ``tree`` with every identifier folded as the engine folds it, for name resolution.

    Done here rather than with sqlglot's ``normalize_identifiers``, which a comment in the statement
    (``/* sqlglot.meta case_sensitive */``) can switch off.
    """
    copy = tree.copy()
    for ident in copy.find_all(exp.Identifier):
        ident.set("this", _fold(ident.name, bool(ident.args.get("quoted")), dialect))
    return copy


def _function_name(node: exp.Expr, dialect: str | None) -> str:
    """The function's name as the statement spells it (for a refusal message)."""
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc):
        return node.name.lower()
    try:
        text = node.sql(dialect=dialect)
        first = node.this.sql(dialect=dialect) if isinstance(node.this, exp.Expr) else None
    except Exception:  # a node this dialect cannot render: its sqlglot name will do
        text, first = "", None
    head = re.match(r"\s*([A-Za-z_][\w.]*)\s*\(", text)
    if head and not (first and text.startswith(first)):  # not an operator form: `a ~ b`, `a COLLATE b`
        return head.group(1).lower()
    sql_names = getattr(type(node), "sql_names", None)
    return str(sql_names()[0]).lower() if callable(sql_names) else node.key


def _check_function(node: exp.Expr, dialect: str | None) -> None:
    kind = type(node)
    if kind in (exp.Anonymous, exp.AnonymousAggFunc):
        if node.name.lower() in _ANONYMOUS.get(dialect or "", frozenset()):
            return
    elif kind in _FUNCTIONS:
        if kind in (exp.Cast, exp.TryCast):
            _check_cast(node, dialect)
        elif kind is exp.Pad:
            length = node.args.get("expression")
            if not (isinstance(length, exp.Literal) and length.is_int and int(length.name) <= _MAX_PAD):
                name = _function_name(node, dialect)
                raise SQLRejected(f"{name}() needs a literal length of at most {_MAX_PAD}")
        return
    raise SQLRejected(f"function {_function_name(node, dialect)}() is not allowed")


def _check_cast(node: exp.Expr, dialect: str | None) -> None:
    to = node.args.get("to")
    if (
        isinstance(to, exp.DataType)
        and to.this in _CAST_TYPES
        and all(isinstance(p, exp.DataTypeParam) for p in to.expressions)
    ):
        return
    target = to.sql(dialect=dialect) if isinstance(to, exp.Expr) else str(to)
    raise SQLRejected(f"a cast to {target} is not allowed (only numbers, text, booleans, dates, times)")


@cache
def allowed_function_names(dialect: str) -> frozenset[str]:
    """The lower-case names under which the engine of ``dialect`` runs the functions allowed here.

    For the connection's own check (SQLite's authorizer, see :mod:`streamforge.data.wall`): the
    allow-list above, as the engine sees it. What runs is the guard's re-rendering, so each allowed
    class is rendered for the dialect (``StrPosition`` becomes ``instr`` in SQLite, ``Greatest``
    ``max``) with its required arguments and with all of them, and every function name in the text
    is taken, together with sqlglot's own names of the class and the dialect's ``_ANONYMOUS`` names.
    """
    names: set[str] = set(_ANONYMOUS.get(dialect, frozenset()))
    for kind in _FUNCTIONS:
        sql_names = getattr(kind, "sql_names", None)
        if callable(sql_names):
            names.update(str(n).lower() for n in sql_names())
        required = [k for k, needed in kind.arg_types.items() if needed]
        for keys in (required, list(kind.arg_types)):
            args = {k: [exp.column("x")] if k == "expressions" else exp.column("x") for k in keys}
            try:
                text = kind(**args).sql(dialect=dialect, unsupported_level=ErrorLevel.IGNORE)
            except Exception:  # a combination of arguments the dialect cannot render
                continue
            names.update(m.lower() for m in re.findall(r"([A-Za-z_]\w*)\s*\(", text))
    return frozenset(names)


def _check_nodes(tree: exp.Expr, dialect: str | None) -> None:
    for node in tree.walk():
        kind = type(node)
        if kind in _WRITES:
            raise SQLRejected(f"{node.key.upper()} is not allowed in a read-only query")
        if isinstance(node, exp.Table | exp.Lateral) and not isinstance(node.this, exp.Identifier):
            if isinstance(node.this, exp.Func):
                name = _function_name(node.this, dialect)
                raise SQLRejected(f"table-valued function {name}() in FROM is not allowed")
            if isinstance(node, exp.Table):
                raise SQLRejected(f"only tables may appear in FROM, not {node.sql(dialect=dialect)}")
        if isinstance(node, exp.Func):
            _check_function(node, dialect)
        elif kind is exp.Dot:
            if isinstance(node.expression, exp.Func):
                name = f"{node.this.sql(dialect=dialect)}.{_function_name(node.expression, dialect)}"
                raise SQLRejected(f"schema-qualified function {name}() is not allowed")
            raise SQLRejected(f"{node.sql(dialect=dialect)}: only table.column references are allowed")
        elif kind not in _STRUCTURE:
            raise SQLRejected(f"{node.key.upper()} is not allowed in a dashboard query")
        elif kind is exp.Var and not isinstance(
            node.parent, exp.Func | exp.Interval | exp.DataTypeParam | exp.WindowSpec
        ):
            raise SQLRejected(f"{node.name} is not allowed here")
        elif kind is exp.DataType and not isinstance(node.parent, exp.Cast | exp.TryCast):
            raise SQLRejected(f"type {node.sql(dialect=dialect)} is not allowed here")
        elif kind is exp.With and node.args.get("recursive"):
            raise SQLRejected("WITH RECURSIVE is not allowed (its size has no bound)")
        elif kind is exp.In and (node.args.get("field") or node.args.get("unnest")):
            # SQLite reads `x IN name` as `x IN (SELECT * FROM name)`: a table no scope would see
            rhs = (node.args.get("field") or node.args["unnest"]).sql(dialect=dialect)
            raise SQLRejected(f"`IN {rhs}` is not allowed; write `IN (SELECT ... FROM ...)`")


def _check_tables(tree: exp.Expr, allowed: set[str], dialect: str | None) -> None:
    """Every table is a CTE visible where it is named, or on the allow-list; CTEs shadow nothing."""
    for with_ in tree.find_all(exp.With):
        names = [cte.alias_or_name for cte in with_.expressions]
        for name in names:
            if _is_system(name):
                raise SQLRejected(f"a CTE may not be named like the system table {name!r}")
            if name.lower() in {t.lower() for t in allowed}:
                raise SQLRejected(f"a CTE may not be named like the table {name!r}; choose another name")
        if len(set(names)) != len(names):
            raise SQLRejected("two CTEs have the same name")
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as exc:
        raise SQLRejected(f"cannot resolve the tables: {str(exc).splitlines()[0]}") from exc
    placed: set[int] = set()
    for scope in scopes:
        for table in scope.tables:
            placed.add(id(table))
            parts = [p for p in (table.catalog, table.db, table.name) if p]
            if len(parts) == 1 and table.name in scope.cte_sources:
                continue  # a CTE visible here
            qualified = ".".join(parts)
            if qualified in allowed:
                continue
            if any(_is_system(p) for p in parts):
                raise SQLRejected(f"system table {qualified!r} is not allowed")
            raise SQLRejected(f"unknown table {qualified!r}; known tables: {', '.join(sorted(allowed))}")
    for table in tree.find_all(exp.Table):
        if id(table) not in placed:  # a table reference no query scope owns: refuse, do not guess
            raise SQLRejected(f"table {table.sql(dialect=dialect)} is not in a place a query reads from")


def _cap_limit(tree: exp.Query, limit: int) -> exp.Query:
    current = tree.args.get("limit")
    if isinstance(current, exp.Limit):
        value = current.expression
        if isinstance(value, exp.Literal) and value.is_int and int(value.name) <= limit:
            return tree
    return tree.limit(limit)


def guard_sql(sql: str, allowed_tables: Iterable[str], dialect: str | None, limit: int) -> str:
    """Return ``sql`` re-rendered for ``dialect`` if it is one safe SELECT; raise :class:`SQLRejected`.

    ``allowed_tables`` are the names the query may read, as the schema spells them (schema-qualified
    names are allowed only when listed qualified). ``limit`` caps the rows: a missing or larger LIMIT
    becomes it. CPU-bound (parsing): call it from a worker thread when an event loop is waiting.
    """
    if len(sql) > MAX_SQL_CHARS:
        raise SQLRejected(f"the statement is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}")
    allowed = {_fold(t, True, dialect) for t in allowed_tables}
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        if len(statements) != 1:
            raise SQLRejected(f"expected exactly one statement, got {len(statements)}")
        tree = statements[0]
        if type(tree) not in (exp.Select, exp.Union, exp.Intersect, exp.Except):
            raise SQLRejected(f"only SELECT is allowed, not {tree.key.upper()}")
        assert isinstance(tree, exp.Query)
        _check_nodes(tree, dialect)
        _check_tables(_normalize(tree, dialect), allowed, dialect)
        return _cap_limit(tree, limit).sql(dialect=dialect, comments=False)
    except SqlglotError as exc:
        raise SQLRejected(f"not valid SQL: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise SQLRejected("the statement is nested too deeply") from exc
