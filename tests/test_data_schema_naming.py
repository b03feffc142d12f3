"""Schema introspection on a database named the way real ones are: tbl_ prefixes and camelCase."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from streamforge.data.source import DataSource


def test_prefixed_tables_and_camel_case_keys_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "inventory.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE tbl_items (id INTEGER PRIMARY KEY, itemName TEXT, unitCost REAL);
            CREATE TABLE dim_warehouse (warehouse_id INTEGER PRIMARY KEY, warehouseName TEXT);
            CREATE TABLE shipments (id INTEGER PRIMARY KEY, itemId INTEGER, warehouse_id INTEGER,
                                    shippedAt TEXT, qty INTEGER);
            """
        )
        db.executemany(
            "INSERT INTO tbl_items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(1, 40)]
        )
        db.executemany("INSERT INTO dim_warehouse VALUES (?, ?)", [(i, f"WH {i}") for i in range(1, 5)])
        db.executemany(
            "INSERT INTO shipments VALUES (?, ?, ?, ?, ?)",
            [(i, i % 39 + 1, i % 4 + 1, f"2025-01-{i % 28 + 1:02d}", i % 9) for i in range(1, 200)],
        )
    source = DataSource(path)
    try:
        keys = {(fk.table, fk.column, fk.ref_table) for fk in source.schema.foreign_keys}
        assert ("shipments", "itemId", "tbl_items") in keys
        assert ("shipments", "warehouse_id", "dim_warehouse") in keys
        labels = {t.name: t.label for t in source.schema.tables.values()}
        assert labels["tbl_items"] == "itemName" and labels["dim_warehouse"] == "warehouseName"
    finally:
        source.close()
