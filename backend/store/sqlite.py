"""The embedded default store: one SQLite file, through the standard library's ``sqlite3``.

Settings and why:

* ``journal_mode=WAL``: readers (the HTTP API, a report) do not block the writer, and a
  commit appends to the log instead of rewriting pages.
* ``synchronous=FULL``: every commit is fsynced before :meth:`commit` returns. With WAL,
  ``NORMAL`` already survives a crash of our process, but a power cut or kernel crash
  may lose the last commits. The back end answers a charger only after the write
  returns (a StartTransaction's ``transactionId``, the acceptance of a StopTransaction),
  and the charger then forgets its copy; losing that commit would lose a billable
  transaction. The live server shares one commit (one fsync) between all the messages
  that arrived while the previous one ran (:mod:`backend.store.group_commit`), so a
  clock-aligned burst of a whole depot's meter values costs a few fsyncs, not one each.
* ``busy_timeout`` of 5 s: another process (the CLI reading while the server writes)
  makes a writer wait instead of failing at once.
* ``isolation_level=None``: we issue ``BEGIN IMMEDIATE``/``COMMIT`` ourselves, so a write
  transaction takes the write lock at its start and cannot fail half-way on upgrade.
* ``check_same_thread=False`` with the store's lock: one connection shared by the
  server's threads, used by one at a time.

Timestamps are stored as ISO-8601 text, always UTC with microseconds and ``+00:00``
(fixed width), so comparing text compares times and equality is exact.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from backend.store.migrations import migrate
from backend.store.repository import StoreError
from backend.store.sql import SqlStore

_MIN_SQLITE = (3, 35, 0)  # RETURNING


class SqliteStore(SqlStore):
    """A :class:`backend.store.repository.Store` in one SQLite file (or ``":memory:"``)."""

    driver_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)
    reads_need_savepoint: ClassVar[bool] = False

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) and migrate the database at ``path``.

        Raises:
            StoreError: the file cannot be opened or is not a depotsim database this
                version can migrate.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old; the store needs 3.35 or newer")
        where = f"SQLite database {str(path)!r}"
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {where}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn, "sqlite")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot prepare {where}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        super().__init__(conn, where)
        self.path = path

    def _begin(self, write: bool) -> None:
        # Reads are single statements, atomic on their own; only writes need a transaction.
        if write:
            self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _time_in(self, value: datetime) -> Any:
        return value.isoformat(timespec="microseconds")

    def _time_out(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)
