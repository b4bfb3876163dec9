"""Versioned schema migrations for the SQLite and PostgreSQL stores.

The schema is a numbered list of :class:`Migration` steps, each with its SQL in both
dialects. :func:`migrate` applies the steps a database has not had yet, each in its own
transaction together with its row in ``schema_version``, so a failing step leaves the
database at the last good version and the next start retries from there. Running it
again is a no-op, and every store runs it when it opens.

Rules for adding a step:

* Append; never edit a released step. A database remembers which versions it has, not
  what they said.
* Statements are separated by ``;`` and must not contain one themselves (no triggers or
  string literals with semicolons): the runner splits on it, because ``sqlite3``'s
  ``executescript`` would commit in the middle of our transaction.
* Both dialects must end with the same tables and columns; the shared queries in
  :mod:`backend.store.repository` rely on it.

Concurrency: two processes opening the same database at once both call :func:`migrate`.
SQLite serialises them with ``BEGIN IMMEDIATE``; PostgreSQL with a transaction-scoped
advisory lock keyed on the current schema. Each re-reads the version under the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from backend.store.repository import StoreError

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version, what it does, and its SQL in each dialect."""

    version: int
    description: str
    sqlite: str
    postgresql: str

    def statements(self, dialect: Dialect) -> list[str]:
        """The step's statements for ``dialect``, split on ``;``."""
        script = self.sqlite if dialect == "sqlite" else self.postgresql
        return [statement.strip() for statement in script.split(";") if statement.strip()]


# Version 1 is written once with type placeholders: the dialects differ only in the
# column types below, and two hand-kept copies of a dozen tables would drift.
# Timestamps are ISO-8601 text in SQLite (fixed width, always UTC with microseconds, so
# text order is time order) and timestamptz in PostgreSQL.
_TYPES: Final[dict[Dialect, dict[str, str]]] = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "ts": "TEXT",
        "real": "REAL",
        "bool": "INTEGER",
        "false": "0",
    },
    "postgresql": {
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "ts": "TIMESTAMPTZ",
        "real": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "false": "FALSE",
    },
}

_V1: Final = """
CREATE TABLE chargers (
    charger_id TEXT PRIMARY KEY,
    ocpp_version TEXT NOT NULL,
    vendor TEXT NOT NULL,
    model TEXT NOT NULL,
    serial TEXT,
    firmware TEXT,
    boot_status TEXT,
    registered_at {ts} NOT NULL,
    last_seen {ts} NOT NULL,
    online {bool} NOT NULL DEFAULT {false}
);
-- evse_id 0 stands for "no EVSE level" (OCPP 1.6): a primary key cannot hold NULL.
CREATE TABLE connectors (
    charger_id TEXT NOT NULL,
    evse_id INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (charger_id, evse_id, connector_id)
);
CREATE TABLE status_changes (
    id {id},
    charger_id TEXT NOT NULL,
    evse_id INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    at {ts} NOT NULL
);
CREATE UNIQUE INDEX status_changes_once
    ON status_changes (charger_id, evse_id, connector_id, at, status, (COALESCE(error_code, '')));
-- Rows only carry the 1.6 transaction id sequence; identity and AUTOINCREMENT never reuse
-- an id, even one whose transaction row was later removed.
CREATE TABLE csms_transaction_ids (
    id {id}
);
-- id_origin: 'csms' for 1.6 ids we assigned, 'charger' for 2.0.1 ids and orphan stops.
-- stopped_by: 'charger' once the charger's own stop arrived, 'rule' for a rule's close.
CREATE TABLE transactions (
    charger_id TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    id_origin TEXT NOT NULL CHECK (id_origin IN ('csms', 'charger')),
    connector_id INTEGER,
    id_tag TEXT,
    meter_start_wh {real},
    started_at {ts},
    meter_stop_wh {real},
    stopped_at {ts},
    stop_reason TEXT,
    stopped_by TEXT CHECK (stopped_by IN ('charger', 'rule')),
    last_seq_no INTEGER,
    offline {bool} NOT NULL DEFAULT {false},
    closed_by_rule TEXT,
    PRIMARY KEY (charger_id, tx_id)
);
-- A 1.6 StartTransaction repeated after a reconnect carries the same five values.
CREATE UNIQUE INDEX transactions_start_once
    ON transactions (charger_id, connector_id, id_tag, meter_start_wh, started_at)
    WHERE id_origin = 'csms';
CREATE INDEX transactions_open ON transactions (charger_id, connector_id) WHERE stopped_at IS NULL;
CREATE INDEX transactions_started_at ON transactions (started_at);
CREATE TABLE transaction_events (
    charger_id TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    seq_no INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    at {ts} NOT NULL,
    trigger_reason TEXT,
    offline {bool} NOT NULL DEFAULT {false},
    payload TEXT,
    PRIMARY KEY (charger_id, tx_id, seq_no)
);
CREATE TABLE meter_values (
    id {id},
    charger_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    tx_id TEXT,
    at {ts} NOT NULL,
    measurand TEXT NOT NULL,
    value {real} NOT NULL,
    unit TEXT,
    phase TEXT,
    location TEXT,
    context TEXT
);
CREATE UNIQUE INDEX meter_values_once ON meter_values (
    charger_id, connector_id, (COALESCE(tx_id, '')), at, measurand, value,
    (COALESCE(phase, '')), (COALESCE(location, '')), (COALESCE(context, ''))
);
CREATE INDEX meter_values_by_transaction ON meter_values (charger_id, tx_id, at);
CREATE TABLE id_tags (
    tag TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    vehicle_id TEXT,
    expiry {ts}
);
CREATE TABLE charging_profiles_sent (
    id {id},
    charger_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    profile TEXT NOT NULL,
    sent_at {ts} NOT NULL,
    result TEXT
);
CREATE INDEX charging_profiles_sent_by_charger ON charging_profiles_sent (charger_id, sent_at);
CREATE TABLE message_log (
    id {id},
    charger_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    at {ts} NOT NULL,
    message_type INTEGER,
    message_id TEXT,
    action TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX message_log_at ON message_log (at);
CREATE INDEX message_log_by_charger ON message_log (charger_id, at)
"""


def _without_comments(script: str) -> str:
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        version=1,
        description="chargers, connectors, status history, transactions, events, meter values, "
        "id tags, charging profiles sent, message log",
        sqlite=_without_comments(_V1.format(**_TYPES["sqlite"])),
        postgresql=_without_comments(_V1.format(**_TYPES["postgresql"])),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1].version

_CREATE_VERSION_TABLE: Final[dict[Dialect, str]] = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL "
    "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
}


def migrate(conn: Any, dialect: Dialect) -> list[int]:
    """Bring the database behind ``conn`` to :data:`LATEST_VERSION`.

    Args:
        conn: an open ``sqlite3.Connection`` (with no transaction in progress; the stores
            open it with ``isolation_level=None``) or ``psycopg.Connection``.
        dialect: which of the two it is.

    Returns:
        The versions applied by this call, in order; empty when the schema was current.

    Raises:
        StoreError: the database is newer than this code, or a step failed (the steps
            before it stay applied).
    """
    applied: list[int] = []
    for migration in MIGRATIONS:
        if _apply_if_pending(conn, dialect, migration):
            applied.append(migration.version)
    return applied


def current_version(conn: Any, dialect: Dialect) -> int:
    """The highest schema version recorded in the database, 0 for an empty database."""
    if dialect == "sqlite":
        row = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        return 0 if row is None else _recorded_version(conn)
    # psycopg: a block of its own, so the read neither leaves a transaction open nor ends
    # one the caller had started.
    with conn.transaction():
        (table,) = conn.execute("SELECT to_regclass('schema_version')").fetchone()
        return 0 if table is None else _recorded_version(conn)


def _recorded_version(conn: Any) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _apply_if_pending(conn: Any, dialect: Dialect, migration: Migration) -> bool:
    """Apply one step under the migration lock unless the database already has it."""
    if dialect == "sqlite":
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = _apply_locked(conn, dialect, migration)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return done
    # psycopg: commits on leaving the block, rolls back on an exception.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('depotsim.migrate:' || current_schema()))")
        return _apply_locked(conn, dialect, migration)


def _apply_locked(conn: Any, dialect: Dialect, migration: Migration) -> bool:
    conn.execute(_CREATE_VERSION_TABLE[dialect])
    version = _recorded_version(conn)
    if version > LATEST_VERSION:
        raise StoreError(
            f"the database schema is at version {version}, newer than this depotsim knows "
            f"({LATEST_VERSION}); upgrade depotsim or use another database"
        )
    if version >= migration.version:
        return False
    for statement in migration.statements(dialect):
        conn.execute(statement)
    placeholder = "?" if dialect == "sqlite" else "%s"
    conn.execute(
        f"INSERT INTO schema_version (version, description) VALUES ({placeholder}, {placeholder})",
        (migration.version, migration.description),
    )
    return True
