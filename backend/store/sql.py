"""The one SQL implementation of :class:`backend.store.repository.Store`, for both databases.

Every query is written once, in SQLite's ``?`` parameter style, with SQL that SQLite
(3.35 or newer, for ``RETURNING``) and PostgreSQL both accept: ``INSERT ... ON CONFLICT``,
partial and expression indexes, ``COALESCE``. A subclass supplies only what really differs:
how to begin and end a transaction, how a timestamp travels (ISO text in SQLite,
``timestamptz`` in PostgreSQL), which driver exceptions to translate, and the placeholder
spelling (:func:`to_pyformat` for psycopg).

Each public method runs in one short transaction under a lock, because both
implementations share a single connection between threads: simpler than a pool, and the
back end's write rate (OCPP messages) is far below what one connection sustains.

The message log is the exception: :meth:`SqlStore.log_message` only appends to an
in-memory buffer, written in one transaction when it holds :attr:`SqlStore.log_batch`
frames, on :meth:`SqlStore.flush_messages` (the server calls it every
``LOG_FLUSH_INTERVAL_S``), before a query or purge of the log, and on close. Why: the
log is diagnostics, and a committed (fsynced) write per frame in and per frame out
cost two of the three commits per OCPP message, the bottleneck of the server under
load. The price, accepted: a crash of the process loses at most the frames buffered
since the last flush (one batch, ~0.1 s of traffic under the server); another process
reading the database sees frames up to that late. Transactions, meter values and
everything else still commit before the call returns.

:meth:`SqlStore.run_group` is the group commit: it holds the lock and one write
transaction across several units of work, each in a ``SAVEPOINT``, and while it runs the
store calls those units make on its thread become savepoints of that transaction instead
of transactions of their own (the thread is recorded, so a call from another thread waits
for the lock as usual). Savepoints rather than one flat transaction, because a failed
statement must not take its neighbours with it: PostgreSQL refuses every statement after a
failure until the transaction or a savepoint is rolled back, and a unit that catches a
store error (the OCPP session answers InternalError and goes on) expects the call that
failed to have changed nothing, as outside a group.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Final, TypeVar

from backend.store.records import (
    ChargerRecord,
    ChargingProfileSent,
    ConnectorRecord,
    Direction,
    IdTag,
    MessageLogEntry,
    MeterValue,
    StatusChange,
    TransactionEventRecord,
    TransactionRecord,
)
from backend.store.repository import CommitError, StoreError, UnitOutcome, UnknownChargerError

_CHARGER = "charger_id, ocpp_version, vendor, model, serial, firmware, boot_status, registered_at, last_seen, online"
_CONNECTOR = "charger_id, evse_id, connector_id, status, error_code, updated_at"
_STATUS = "charger_id, evse_id, connector_id, status, error_code, at"
_TX = (
    "charger_id, tx_id, connector_id, id_tag, meter_start_wh, started_at, meter_stop_wh, stopped_at, "
    "stop_reason, last_seq_no, offline, closed_by_rule"
)
_EVENT = "charger_id, tx_id, seq_no, event_type, at, trigger_reason, offline, payload"
_METER = "charger_id, connector_id, tx_id, at, measurand, value, unit, phase, location, context"
_TAG = "tag, status, vehicle_id, expiry"
_PROFILE = "charger_id, connector_id, profile, sent_at, result"
_LOG = "charger_id, direction, at, message_type, message_id, action, payload"

# How many assigned 1.6 ids may turn out taken (by orphan stops the charger reported with
# ids of its own) before start_transaction gives up.
_MAX_ID_COLLISIONS = 1000

LOG_BATCH: Final = 500
"""Buffered message-log frames that trigger a write from :meth:`SqlStore.log_message` itself."""

log = logging.getLogger(__name__)


def _marks(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


@cache
def to_pyformat(query: str) -> str:
    """Turn a ``?``-style query into psycopg's ``%s`` style; no query here holds a literal ``?``."""
    return query.replace("%", "%%").replace("?", "%s")


def _evse_in(evse_id: int | None) -> int:
    return 0 if evse_id is None else evse_id


def _evse_out(evse_id: int) -> int | None:
    return None if evse_id == 0 else evse_id


@cache
def _names(columns: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in columns.split(","))


_TIMES = frozenset({"registered_at", "last_seen", "updated_at", "at", "started_at", "stopped_at", "sent_at", "expiry"})
# Per-column conversions from what the drivers return. SQLite keeps booleans as 0/1, and
# its RETURNING hands back an integer parameter before REAL affinity makes it a float.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "online": bool,
    "offline": bool,
    "meter_start_wh": float,
    "meter_stop_wh": float,
    "value": float,
    "evse_id": _evse_out,
    "direction": Direction,
}
_R = TypeVar("_R")


class _Tx:
    """The statements of one transaction: thin over the DB-API connection."""

    def __init__(self, conn: Any, translate: Callable[[str], str]) -> None:
        self._conn = conn
        self._translate = translate

    def run(self, query: str, params: Sequence[Any] = ()) -> int:
        return int(self._conn.execute(self._translate(query), tuple(params)).rowcount)

    def one(self, query: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._translate(query), tuple(params)).fetchone()

    def many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many parameter rows: the driver loops in C (SQLite) or pipelines (psycopg)."""
        if rows:
            self._conn.cursor().executemany(self._translate(query), [tuple(row) for row in rows])

    def all(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._conn.execute(self._translate(query), tuple(params)).fetchall())


class SqlStore:
    """Shared queries over one DB-API connection; subclasses adapt the dialect."""

    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()
    reads_need_savepoint: ClassVar[bool] = True
    """Whether a failed read inside a group must be rolled back to keep the transaction usable
    (PostgreSQL refuses every later statement until it is; SQLite does not)."""

    def __init__(self, conn: Any, where: str) -> None:
        """Take an open, migrated connection; ``where`` names the database in errors."""
        self._conn: Any = conn
        self._where = where
        self._lock = threading.Lock()
        self.log_batch = LOG_BATCH
        self._log_buffer: list[MessageLogEntry] = []
        # Separate from _lock so that buffering a frame never waits for a commit in progress.
        self._log_buffer_lock = threading.Lock()
        self._group_thread: int | None = None
        """The thread running :meth:`run_group` now; its store calls join the group's transaction."""
        self.commits = 0
        """Transactions committed: one per write call outside a group, one per group."""

    # -- dialect hooks ---------------------------------------------------------------------

    def _translate(self, query: str) -> str:
        return query

    def _begin(self, write: bool) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _ensure_connected(self) -> None:
        """Reopen a connection the server dropped; SQLite has nothing to do."""

    def _time_in(self, value: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _tx(self, what: str, write: bool = True) -> Iterator[_Tx]:
        if self._group_thread == threading.get_ident():
            with self._in_group(what, write or self.reads_need_savepoint) as tx:
                yield tx
            return
        with self._lock:
            if self._conn is None:
                raise StoreError(f"cannot {what}: the store on {self._where} is closed")
            try:
                self._ensure_connected()
                self._begin(write)
                yield _Tx(self._conn, self._translate)
                self._commit()
                if write:
                    self.commits += 1
            except BaseException as exc:
                self._rollback_quietly()
                if isinstance(exc, self.driver_errors):
                    raise StoreError(f"cannot {what} on {self._where}: {exc}") from exc
                raise

    @contextmanager
    def _in_group(self, what: str, savepoint: bool) -> Iterator[_Tx]:
        """One store call inside the running group: a savepoint, so that its failure undoes only it."""
        if not savepoint:
            try:
                yield _Tx(self._conn, self._translate)
            except self.driver_errors as exc:
                raise StoreError(f"cannot {what} on {self._where}: {exc}") from exc
            return
        try:
            self._conn.execute("SAVEPOINT store_call")
            yield _Tx(self._conn, self._translate)
            self._conn.execute("RELEASE SAVEPOINT store_call")
        except BaseException as exc:
            # If this fails too the group's transaction is broken, and its commit will say so.
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK TO SAVEPOINT store_call")
                self._conn.execute("RELEASE SAVEPOINT store_call")
            if isinstance(exc, self.driver_errors):
                raise StoreError(f"cannot {what} on {self._where}: {exc}") from exc
            raise

    def run_group(self, units: Sequence[Callable[[], Any]]) -> list[UnitOutcome]:
        """See :meth:`Store.run_group`; holds the store's lock for the whole group."""
        if not units:
            return []
        with self._lock:
            if self._conn is None:
                closed = CommitError(f"cannot run a group of writes: the store on {self._where} is closed")
                return [UnitOutcome(error=closed) for _ in units]
            self._group_thread = threading.get_ident()
            try:
                self._ensure_connected()
                self._begin(True)
                outcomes = [self._run_unit(unit) for unit in units]
                self._commit()
                self.commits += 1
            except Exception as exc:
                self._rollback_quietly()
                log.error("a group of %d units of work was rolled back: %s", len(units), exc)
                failed = CommitError(f"cannot commit a group of {len(units)} writes on {self._where}: {exc}")
                failed.__cause__ = exc
                return [UnitOutcome(error=failed) for _ in units]
            except BaseException:
                self._rollback_quietly()
                raise
            finally:
                self._group_thread = None
        return outcomes

    def _run_unit(self, unit: Callable[[], Any]) -> UnitOutcome:
        """One unit in its savepoint; a savepoint statement that fails breaks the whole group (raises)."""
        self._conn.execute("SAVEPOINT unit")
        try:
            value = unit()
        except Exception as exc:
            self._conn.execute("ROLLBACK TO SAVEPOINT unit")
            self._conn.execute("RELEASE SAVEPOINT unit")
            return UnitOutcome(error=exc)
        self._conn.execute("RELEASE SAVEPOINT unit")
        return UnitOutcome(value=value)

    def _rollback_quietly(self) -> None:
        # The original error is the one worth reporting; a rollback on a dead connection
        # fails too and would only hide it.
        with contextlib.suppress(Exception):
            self._rollback()

    def close(self) -> None:
        """See :meth:`Store.close`; writes the buffered message log first; closing twice is harmless."""
        if self._conn is not None:
            self.flush_messages()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self.driver_errors as exc:
                raise StoreError(f"cannot close {self._where}: {exc}") from exc

    def _t(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise StoreError(f"naive datetime {value.isoformat()} given to the store; pass aware UTC datetimes")
        return self._time_in(value.astimezone(UTC))

    def _range(self, column: str, since: datetime | None, until: datetime | None) -> list[tuple[str, Any]]:
        conditions = []
        if since is not None:
            conditions.append((f"{column} >= ?", self._t(since)))
        if until is not None:
            conditions.append((f"{column} < ?", self._t(until)))
        return conditions

    @staticmethod
    def _where_clause(conditions: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
        if not conditions:
            return "", []
        return " WHERE " + " AND ".join(sql for sql, _ in conditions), [value for _, value in conditions]

    # -- row mapping ------------------------------------------------------------------------

    def _record(self, cls: type[_R], columns: str, row: Sequence[Any]) -> _R:
        """Build a record from a row; column names are the record's field names."""
        fields: dict[str, Any] = {}
        for name, value in zip(_names(columns), row, strict=True):
            if value is not None:
                convert = _CONVERT.get(name)
                if convert is not None:
                    value = convert(value)
                elif name in _TIMES:
                    value = self._time_out(value)
            fields[name] = value
        return cls(**fields)

    def _transaction(self, row: Sequence[Any]) -> TransactionRecord:
        return self._record(TransactionRecord, _TX, row)

    def _get_tx(self, tx: _Tx, charger_id: str, tx_id: str) -> TransactionRecord | None:
        row = tx.one(f"SELECT {_TX} FROM transactions WHERE charger_id = ? AND tx_id = ?", (charger_id, tx_id))
        return None if row is None else self._transaction(row)

    # -- chargers ---------------------------------------------------------------------------

    def upsert_charger(self, charger: ChargerRecord) -> ChargerRecord:
        """See :meth:`Store.upsert_charger`."""
        c = charger
        params = (c.charger_id, c.ocpp_version, c.vendor, c.model, c.serial, c.firmware, c.boot_status)
        times = (self._t(c.registered_at), self._t(c.last_seen), c.online)
        with self._tx("register a charger") as tx:
            row = tx.one(
                f"INSERT INTO chargers ({_CHARGER}) VALUES ({_marks(_CHARGER)}) ON CONFLICT (charger_id) DO UPDATE SET "
                "ocpp_version = excluded.ocpp_version, vendor = excluded.vendor, model = excluded.model, "
                "serial = excluded.serial, firmware = excluded.firmware, boot_status = excluded.boot_status, "
                f"last_seen = excluded.last_seen, online = excluded.online RETURNING {_CHARGER}",
                params + times,
            )
        return self._record(ChargerRecord, _CHARGER, row)

    def get_charger(self, charger_id: str) -> ChargerRecord | None:
        """See :meth:`Store.get_charger`."""
        with self._tx("read a charger", write=False) as tx:
            row = tx.one(f"SELECT {_CHARGER} FROM chargers WHERE charger_id = ?", (charger_id,))
        return None if row is None else self._record(ChargerRecord, _CHARGER, row)

    def list_chargers(self) -> list[ChargerRecord]:
        """See :meth:`Store.list_chargers`."""
        with self._tx("list chargers", write=False) as tx:
            rows = tx.all(f"SELECT {_CHARGER} FROM chargers ORDER BY charger_id")
        return [self._record(ChargerRecord, _CHARGER, row) for row in rows]

    def set_online(self, charger_id: str, online: bool, at: datetime) -> None:
        """See :meth:`Store.set_online`."""
        with self._tx("mark a charger online or offline") as tx:
            changed = tx.run(
                "UPDATE chargers SET online = ?, last_seen = ? WHERE charger_id = ?", (online, self._t(at), charger_id)
            )
            if changed == 0:
                raise UnknownChargerError(f"charger {charger_id!r} is not registered in {self._where}")

    # -- connectors -------------------------------------------------------------------------

    def upsert_connector_status(self, connector: ConnectorRecord) -> bool:
        """See :meth:`Store.upsert_connector_status`."""
        c = connector
        params = (c.charger_id, _evse_in(c.evse_id), c.connector_id, c.status, c.error_code, self._t(c.updated_at))
        with self._tx("record a connector status") as tx:
            tx.run(f"INSERT INTO status_changes ({_STATUS}) VALUES ({_marks(_STATUS)}) ON CONFLICT DO NOTHING", params)
            return (
                tx.run(
                    f"INSERT INTO connectors ({_CONNECTOR}) VALUES ({_marks(_CONNECTOR)}) "
                    "ON CONFLICT (charger_id, evse_id, connector_id) DO UPDATE SET status = excluded.status, "
                    "error_code = excluded.error_code, updated_at = excluded.updated_at "
                    "WHERE connectors.updated_at <= excluded.updated_at",
                    params,
                )
                > 0
            )

    def list_connectors(self, charger_id: str | None = None) -> list[ConnectorRecord]:
        """See :meth:`Store.list_connectors`."""
        where, params = self._where_clause([] if charger_id is None else [("charger_id = ?", charger_id)])
        with self._tx("list connectors", write=False) as tx:
            rows = tx.all(
                f"SELECT {_CONNECTOR} FROM connectors{where} ORDER BY charger_id, evse_id, connector_id", params
            )
        return [self._record(ConnectorRecord, _CONNECTOR, row) for row in rows]

    def status_history(
        self,
        charger_id: str,
        connector_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StatusChange]:
        """See :meth:`Store.status_history`."""
        conditions: list[tuple[str, Any]] = [("charger_id = ?", charger_id)]
        if connector_id is not None:
            conditions.append(("connector_id = ?", connector_id))
        where, params = self._where_clause(conditions + self._range("at", since, until))
        with self._tx("read status history", write=False) as tx:
            rows = tx.all(f"SELECT {_STATUS} FROM status_changes{where} ORDER BY at, id", params)
        return [self._record(StatusChange, _STATUS, row) for row in rows]

    # -- transactions -----------------------------------------------------------------------

    def start_transaction(
        self, charger_id: str, connector_id: int, id_tag: str, meter_start_wh: float, started_at: datetime
    ) -> tuple[TransactionRecord, bool]:
        """See :meth:`Store.start_transaction`."""
        key = (charger_id, connector_id, id_tag, meter_start_wh, self._t(started_at))
        find = (
            f"SELECT {_TX} FROM transactions WHERE id_origin = 'csms' AND charger_id = ? AND connector_id = ? "
            "AND id_tag = ? AND meter_start_wh = ? AND started_at = ?"
        )
        with self._tx("start a transaction") as tx:
            for _ in range(_MAX_ID_COLLISIONS):
                row = tx.one(find, key)
                if row is not None:
                    return self._transaction(row), False
                (new_id,) = tx.one("INSERT INTO csms_transaction_ids DEFAULT VALUES RETURNING id")
                row = tx.one(
                    "INSERT INTO transactions (charger_id, tx_id, id_origin, connector_id, id_tag, meter_start_wh, "
                    f"started_at) VALUES (?, ?, 'csms', ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {_TX}",
                    (charger_id, str(new_id), *key[1:]),
                )
                if row is not None:
                    return self._transaction(row), True
                # Either another process stored the same start meanwhile (found on the next
                # pass) or this charger already used the id for a transaction of its own.
            raise StoreError(f"cannot start a transaction on {self._where}: no free transaction id found")

    def open_transaction_event(
        self,
        charger_id: str,
        tx_id: str,
        connector_id: int,
        started_at: datetime,
        id_tag: str | None = None,
        meter_start_wh: float | None = None,
        offline: bool = False,
    ) -> tuple[TransactionRecord, bool]:
        """See :meth:`Store.open_transaction_event`."""
        values = (connector_id, id_tag, meter_start_wh, self._t(started_at), offline)
        with self._tx("open a transaction") as tx:
            existing = self._get_tx(tx, charger_id, tx_id)
            if existing is None:
                row = tx.one(
                    "INSERT INTO transactions (charger_id, tx_id, id_origin, connector_id, id_tag, meter_start_wh, "
                    "started_at, offline) VALUES (?, ?, 'charger', ?, ?, ?, ?, ?) "
                    f"ON CONFLICT DO NOTHING RETURNING {_TX}",
                    (charger_id, tx_id, *values),
                )
                if row is not None:
                    return self._transaction(row), True
            row = tx.one(
                "UPDATE transactions SET connector_id = COALESCE(connector_id, ?), id_tag = COALESCE(id_tag, ?), "
                "meter_start_wh = COALESCE(meter_start_wh, ?), started_at = COALESCE(started_at, ?), "
                f"offline = (offline OR ?) WHERE charger_id = ? AND tx_id = ? RETURNING {_TX}",
                (*values, charger_id, tx_id),
            )
            return self._transaction(row), existing is None or existing.started_at is None

    def apply_transaction_event(self, event: TransactionEventRecord) -> bool:
        """See :meth:`Store.apply_transaction_event`."""
        e = event
        with self._tx("record a transaction event") as tx:
            new = tx.run(
                f"INSERT INTO transaction_events ({_EVENT}) VALUES ({_marks(_EVENT)}) ON CONFLICT DO NOTHING",
                (e.charger_id, e.tx_id, e.seq_no, e.event_type, self._t(e.at), e.trigger_reason, e.offline, e.payload),
            )
            if new == 0:
                return False
            tx.run(
                "INSERT INTO transactions (charger_id, tx_id, id_origin, last_seq_no, offline) "
                "VALUES (?, ?, 'charger', ?, ?) ON CONFLICT (charger_id, tx_id) DO UPDATE SET "
                "last_seq_no = CASE WHEN transactions.last_seq_no IS NULL "
                "OR transactions.last_seq_no < excluded.last_seq_no "
                "THEN excluded.last_seq_no ELSE transactions.last_seq_no END, "
                "offline = (transactions.offline OR excluded.offline)",
                (e.charger_id, e.tx_id, e.seq_no, e.offline),
            )
            return True

    def transaction_events(self, charger_id: str, tx_id: str) -> list[TransactionEventRecord]:
        """See :meth:`Store.transaction_events`."""
        with self._tx("read transaction events", write=False) as tx:
            rows = tx.all(
                f"SELECT {_EVENT} FROM transaction_events WHERE charger_id = ? AND tx_id = ? ORDER BY seq_no",
                (charger_id, tx_id),
            )
        return [self._record(TransactionEventRecord, _EVENT, row) for row in rows]

    def stop_transaction(
        self,
        charger_id: str,
        tx_id: str,
        meter_stop_wh: float | None,
        stopped_at: datetime,
        reason: str | None = None,
    ) -> tuple[TransactionRecord, bool]:
        """See :meth:`Store.stop_transaction`."""
        stop = (meter_stop_wh, self._t(stopped_at), reason)
        with self._tx("stop a transaction") as tx:
            row = tx.one(
                "INSERT INTO transactions (charger_id, tx_id, id_origin, meter_stop_wh, stopped_at, stop_reason, "
                f"stopped_by) VALUES (?, ?, 'charger', ?, ?, ?, 'charger') ON CONFLICT DO NOTHING RETURNING {_TX}",
                (charger_id, tx_id, *stop),
            )
            if row is not None:  # an orphan stop: kept, so billing can reconcile it later
                return self._transaction(row), True
            row = tx.one(
                "UPDATE transactions SET meter_stop_wh = ?, stopped_at = ?, stop_reason = ?, stopped_by = 'charger' "
                f"WHERE charger_id = ? AND tx_id = ? AND (stopped_by IS NULL OR stopped_by = 'rule') RETURNING {_TX}",
                (*stop, charger_id, tx_id),
            )
            if row is not None:
                return self._transaction(row), True
            existing = self._get_tx(tx, charger_id, tx_id)
            if existing is None:  # cannot happen: the insert above found the row
                raise StoreError(f"transaction {tx_id!r} of {charger_id!r} vanished from {self._where}")
            return existing, False

    def close_zombies(
        self, charger_id: str, reason: str, at: datetime, connector_id: int | None = None
    ) -> list[TransactionRecord]:
        """See :meth:`Store.close_zombies`."""
        conditions: list[tuple[str, Any]] = [
            ("charger_id = ?", charger_id),
            ("stopped_at IS NULL AND (started_at IS NULL OR started_at <= ?)", self._t(at)),
        ]
        if connector_id is not None:
            conditions.append(("connector_id = ?", connector_id))
        where, params = self._where_clause(conditions)
        with self._tx("close zombie transactions") as tx:
            rows = tx.all(
                f"UPDATE transactions SET stopped_at = ?, closed_by_rule = ?, stopped_by = 'rule'{where} "
                f"RETURNING {_TX}",
                [self._t(at), reason, *params],
            )
        closed = [self._transaction(row) for row in rows]
        return sorted(closed, key=lambda t: (t.started_at is None, t.started_at or at, t.tx_id))

    def get_transaction(self, charger_id: str, tx_id: str) -> TransactionRecord | None:
        """See :meth:`Store.get_transaction`."""
        with self._tx("read a transaction", write=False) as tx:
            return self._get_tx(tx, charger_id, tx_id)

    def list_transactions(
        self,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        open: bool | None = None,
    ) -> list[TransactionRecord]:
        """See :meth:`Store.list_transactions`."""
        when = "COALESCE(started_at, stopped_at)"
        conditions = [] if charger_id is None else [("charger_id = ?", charger_id)]
        conditions += self._range(when, since, until)
        where, params = self._where_clause(conditions)
        if open is not None:
            where += (" AND " if where else " WHERE ") + ("stopped_at IS NULL" if open else "stopped_at IS NOT NULL")
        order = f" ORDER BY ({when} IS NULL), {when}, charger_id, tx_id"
        with self._tx("list transactions", write=False) as tx:
            rows = tx.all(f"SELECT {_TX} FROM transactions{where}{order}", params)
        return [self._transaction(row) for row in rows]

    # -- meter values -----------------------------------------------------------------------

    def add_meter_values(self, values: Iterable[MeterValue]) -> int:
        """See :meth:`Store.add_meter_values`."""
        rows = [
            (v.charger_id, v.connector_id, v.tx_id, self._t(v.at), v.measurand, v.value, v.unit, v.phase, v.location)
            + (v.context,)
            for v in values
        ]
        query = f"INSERT INTO meter_values ({_METER}) VALUES ({_marks(_METER)}) ON CONFLICT DO NOTHING"
        with self._tx("store meter values") as tx:
            return sum(tx.run(query, row) for row in rows)

    def meter_values(self, charger_id: str, tx_id: str) -> list[MeterValue]:
        """See :meth:`Store.meter_values`."""
        with self._tx("read meter values", write=False) as tx:
            rows = tx.all(
                f"SELECT {_METER} FROM meter_values WHERE charger_id = ? AND tx_id = ? ORDER BY at, id",
                (charger_id, tx_id),
            )
        return [self._record(MeterValue, _METER, row) for row in rows]

    # -- id tags ----------------------------------------------------------------------------

    def upsert_id_tag(self, tag: IdTag) -> None:
        """See :meth:`Store.upsert_id_tag`."""
        with self._tx("store an id tag") as tx:
            tx.run(
                f"INSERT INTO id_tags ({_TAG}) VALUES ({_marks(_TAG)}) ON CONFLICT (tag) DO UPDATE SET "
                "status = excluded.status, vehicle_id = excluded.vehicle_id, expiry = excluded.expiry",
                (tag.tag, tag.status, tag.vehicle_id, self._t(tag.expiry)),
            )

    def get_id_tag(self, tag: str) -> IdTag | None:
        """See :meth:`Store.get_id_tag`."""
        with self._tx("read an id tag", write=False) as tx:
            row = tx.one(f"SELECT {_TAG} FROM id_tags WHERE tag = ?", (tag,))
        return None if row is None else self._record(IdTag, _TAG, row)

    def list_id_tags(self) -> list[IdTag]:
        """See :meth:`Store.list_id_tags`."""
        with self._tx("list id tags", write=False) as tx:
            rows = tx.all(f"SELECT {_TAG} FROM id_tags ORDER BY tag")
        return [self._record(IdTag, _TAG, row) for row in rows]

    # -- charging profiles ------------------------------------------------------------------

    def record_profile_sent(self, profile: ChargingProfileSent) -> None:
        """See :meth:`Store.record_profile_sent`."""
        p = profile
        with self._tx("record a charging profile") as tx:
            tx.run(
                f"INSERT INTO charging_profiles_sent ({_PROFILE}) VALUES ({_marks(_PROFILE)})",
                (p.charger_id, p.connector_id, p.profile, self._t(p.sent_at), p.result),
            )

    def list_profiles(self, charger_id: str | None = None) -> list[ChargingProfileSent]:
        """See :meth:`Store.list_profiles`."""
        where, params = self._where_clause([] if charger_id is None else [("charger_id = ?", charger_id)])
        with self._tx("list charging profiles", write=False) as tx:
            rows = tx.all(f"SELECT {_PROFILE} FROM charging_profiles_sent{where} ORDER BY sent_at, id", params)
        return [self._record(ChargingProfileSent, _PROFILE, row) for row in rows]

    # -- message log ------------------------------------------------------------------------

    def log_message(self, entry: MessageLogEntry) -> None:
        """See :meth:`Store.log_message`: buffered, written in batches (see the module docstring)."""
        if self._conn is None:
            raise StoreError(f"cannot log a message: the store on {self._where} is closed")
        self._t(entry.at)  # a naive time fails here, in the caller, not later in a flush
        with self._log_buffer_lock:
            self._log_buffer.append(entry)
            full = len(self._log_buffer) >= self.log_batch
        # Not from inside a group: the frames would share its fate, and the server's flush
        # task writes them within a few milliseconds anyway.
        if full and self._group_thread != threading.get_ident():
            self.flush_messages()

    def pending_messages(self) -> int:
        """How many logged frames are buffered, not yet written."""
        with self._log_buffer_lock:
            return len(self._log_buffer)

    def flush_messages(self) -> int:
        """Write the buffered message log in one transaction; returns how many frames were written.

        Never raises for a frame the database refuses: the batch is then retried one frame
        per transaction and a frame that still fails is dropped with a logged error, so one
        bad frame cannot block the log (it is diagnostics). A closed store raises
        :class:`StoreError` like every other call.
        """
        with self._log_buffer_lock:
            batch, self._log_buffer = self._log_buffer, []
        if not batch:
            return 0
        try:
            self._insert_messages(batch)
            return len(batch)
        except StoreError:
            if self._conn is None:
                raise
        written = 0
        for entry in batch:
            try:
                self._insert_messages([entry])
                written += 1
            except StoreError:
                log.exception("dropped a %s frame of %s from the message log", entry.direction, entry.charger_id)
        return written

    def _insert_messages(self, entries: list[MessageLogEntry]) -> None:
        rows = [
            (e.charger_id, str(e.direction), self._t(e.at), e.message_type, e.message_id, e.action, e.payload)
            for e in entries
        ]
        with self._tx("log messages") as tx:
            tx.many(f"INSERT INTO message_log ({_LOG}) VALUES ({_marks(_LOG)})", rows)

    def query_messages(
        self,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[MessageLogEntry]:
        """See :meth:`Store.query_messages`."""
        conditions = [] if charger_id is None else [("charger_id = ?", charger_id)]
        if action is not None:
            conditions.append(("action = ?", action))
        where, params = self._where_clause(conditions + self._range("at", since, until))
        self.flush_messages()
        with self._tx("query the message log", write=False) as tx:
            rows = tx.all(f"SELECT {_LOG} FROM message_log{where} ORDER BY at DESC, id DESC LIMIT ?", [*params, limit])
        return [self._record(MessageLogEntry, _LOG, row) for row in rows]

    def purge_messages(self, older_than: datetime) -> int:
        """See :meth:`Store.purge_messages`."""
        self.flush_messages()
        with self._tx("purge the message log") as tx:
            return tx.run("DELETE FROM message_log WHERE at < ?", (self._t(older_than),))
