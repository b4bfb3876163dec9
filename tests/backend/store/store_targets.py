"""The databases the store tests run against: SQLite and the machine's PostgreSQL.

PostgreSQL is expected at postgresql://postgres@127.0.0.1:5432/test (or as root), with
trust authentication; each test gets a schema of its own, dropped afterwards (the
fixtures are in this folder's conftest.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import psycopg

from backend.store import Store, open_store
from backend.store.migrations import Dialect

PG_CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Target:
    """A database a test can open as often as it likes."""

    dialect: Dialect
    url: str

    def open(self) -> Store:
        return open_store(self.url)

    def raw(self) -> Any:
        if self.dialect == "sqlite":
            return sqlite3.connect(self.url, isolation_level=None)
        return psycopg.connect(self.url)
