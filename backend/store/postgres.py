"""The production store: PostgreSQL through psycopg 3.

One connection, shared by the server's threads under the store's lock, with autocommit
off: each store method is one transaction, committed before it returns. A pool would
buy concurrency the back end does not need (its writes are short and follow the OCPP
message rate) at the price of a dependency and more failure modes.

The session time zone is set to UTC so ``timestamptz`` values come back in UTC. A
connection the server dropped (restart, failover, idle timeout) is reopened on the next
call; the call that met the failure raises :class:`StoreError`, and the caller decides
whether to retry (the store's writes are idempotent where OCPP resends).

The URL is any libpq URL; ``?options=-csearch_path%3Dmy_schema`` selects a schema, which
is how the tests isolate themselves. Error messages show the URL without its password.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from backend.store.migrations import migrate
from backend.store.repository import StoreError
from backend.store.sql import SqlStore, to_pyformat


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for error messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal lost its brackets in hostname
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "<unparseable database URL>"


class PostgresStore(SqlStore):
    """A :class:`backend.store.repository.Store` in a PostgreSQL database."""

    driver_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)

    def __init__(self, url: str) -> None:
        """Connect to ``url`` and migrate the schema.

        Raises:
            StoreError: the server cannot be reached or refuses us, or the schema cannot
                be migrated; the message names the URL without its password.
        """
        self._url = url
        where = f"PostgreSQL {redact_url(url)}"
        conn = self._connect(where)
        try:
            migrate(conn, "postgresql")
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot migrate the schema of {where}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        super().__init__(conn, where)

    def _connect(self, where: str) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._url, autocommit=False)
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {where}: {exc}") from exc
        return conn

    def _ensure_connected(self) -> None:
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect(self._where)

    def _translate(self, query: str) -> str:
        return to_pyformat(query)

    def _begin(self, write: bool) -> None:
        """psycopg opens the transaction on the first statement."""

    def _commit(self) -> None:
        self._conn.commit()

    def _rollback(self) -> None:
        self._conn.rollback()

    def _time_in(self, value: datetime) -> Any:
        return value

    def _time_out(self, value: Any) -> datetime:
        result: datetime = value.astimezone(UTC)
        return result
