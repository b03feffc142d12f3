"""Data access: the read-only :class:`DataSource`, its introspected schema, the SQL guard, the sample db."""

from streamforge.data.sample import ensure_sample_db, write_sample_db
from streamforge.data.schema import ColumnInfo, ForeignKey, Schema, TableInfo
from streamforge.data.source import DataSource, QueryError, QueryResult
from streamforge.data.sqlguard import SQLRejected, guard_sql

__all__ = [
    "ColumnInfo",
    "DataSource",
    "ForeignKey",
    "QueryError",
    "QueryResult",
    "SQLRejected",
    "Schema",
    "TableInfo",
    "ensure_sample_db",
    "guard_sql",
    "write_sample_db",
]
