"""The `Store` protocol: everything the OCPP back end keeps across restarts.

The back end writes every fact that matters (chargers, connector statuses and their
history, transactions and their events, meter values, id tags, charging profiles sent,
and every OCPP frame) through this one interface. :func:`backend.store.factory.open_store`
picks the implementation from a URL: an embedded SQLite file by default
(:class:`backend.store.sqlite.SqliteStore`) or PostgreSQL
(:class:`backend.store.postgres.PostgresStore`), both built on
:class:`backend.store.sql.SqlStore`, so the two run the same queries.

Why the API looks the way it does:

* **Synchronous, one short transaction per call.** The simulator and the HTTP API call it
  directly or from a worker thread. No call holds a transaction open across an await or a
  network round trip, and every call that returns has committed, so an answer we send a
  charger after it is backed by durable data. The exception is :meth:`Store.log_message`:
  the frame log is diagnostics, so it is buffered and committed in batches
  (:meth:`Store.flush_messages`).
* **Group commit for the live server.** :meth:`Store.run_group` runs several units of work
  (each a callable making ordinary store calls, e.g. one OCPP message's handler) in one
  transaction committed once, with a savepoint per unit, so one failing unit is rolled
  back alone. Inside a group a store call does not commit on return; its caller learns
  the unit's writes are durable when the group's commit succeeded.
  :class:`backend.store.group_commit.GroupCommitter` feeds it from a queue: under a burst
  of messages, one fsync serves every message that arrived while the previous commit ran,
  instead of one fsync each.
* **Idempotent writes.** Chargers resend after a reconnect whatever they did not see
  answered. A repeated StartTransaction returns the transaction it already created, a
  repeated stop or TransactionEvent changes nothing, and a repeated meter reading or
  status is stored once. The return values say whether a call was new, so the caller can
  skip side effects it already performed.
* **Nothing dropped.** A stop for an unknown transaction becomes an orphan-stop row; a
  2.0.1 event for a transaction not yet started creates the transaction's row; a frame
  too broken to parse is logged verbatim.
* **Transactions are keyed by (charger, transaction id).** 2.0.1 only promises that a
  ``transactionId`` is unique within one charging station, and a charger moved from 1.6
  to 2.0.1 firmware may reuse numbers we assigned it, so every transaction method takes
  the charger id too.

Errors::

    DepotsimError
    └── StoreError                 a store operation failed; the message names the database
        ├── UnknownChargerError    an update for a charger the store has never registered
        └── CommitError            a group's transaction failed as a whole: none of its units' writes were kept

A database error is never swallowed: it becomes a :class:`StoreError` naming the
database (a PostgreSQL URL without its password) and the cause, and the call's
transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from backend.errors import DepotsimError
from backend.store.records import (
    ChargerRecord,
    ChargingProfileSent,
    ConnectorRecord,
    IdTag,
    MessageLogEntry,
    MeterValue,
    StatusChange,
    TransactionEventRecord,
    TransactionRecord,
)


class StoreError(DepotsimError):
    """A store operation failed: connection, schema, constraint or I/O."""


class UnknownChargerError(StoreError):
    """An update names a charger that never booted against this store."""


class CommitError(StoreError):
    """A group's transaction could not be begun or committed: no unit of it was kept.

    Every unit of the group gets it, including those that ran without error: their
    callers must not acknowledge anything the units did.
    """


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What one unit of a :meth:`Store.run_group` returned, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class Store(Protocol):
    """Durable state of the charging back end. Implementations are thread-safe."""

    # -- chargers ---------------------------------------------------------------------

    def upsert_charger(self, charger: ChargerRecord) -> ChargerRecord:
        """Register a charger or refresh its boot data; keeps the first ``registered_at``.

        Returns the stored record, whose ``registered_at`` may be older than the one given.
        """
        ...

    def get_charger(self, charger_id: str) -> ChargerRecord | None:
        """The charger, or None if it never booted against this store."""
        ...

    def list_chargers(self) -> list[ChargerRecord]:
        """Every registered charger, by id."""
        ...

    def set_online(self, charger_id: str, online: bool, at: datetime) -> None:
        """Mark a connect, disconnect or heartbeat; also sets ``last_seen``.

        Raises:
            UnknownChargerError: the charger is not registered.
        """
        ...

    # -- connectors and status history -------------------------------------------------

    def upsert_connector_status(self, connector: ConnectorRecord) -> bool:
        """Record a StatusNotification in the history and, unless older, as current status.

        A notification older than the current status (queued while offline) goes into
        the history at its own time without overwriting the newer status; an exact repeat
        is stored once.

        Returns:
            True when it became the connector's current status.
        """
        ...

    def list_connectors(self, charger_id: str | None = None) -> list[ConnectorRecord]:
        """Current connector statuses, of one charger or all, by charger, EVSE, connector."""
        ...

    def status_history(
        self,
        charger_id: str,
        connector_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StatusChange]:
        """A charger's status notifications in time order, ``since <= at < until``."""
        ...

    # -- transactions -------------------------------------------------------------------

    def start_transaction(
        self, charger_id: str, connector_id: int, id_tag: str, meter_start_wh: float, started_at: datetime
    ) -> tuple[TransactionRecord, bool]:
        """Record a 1.6 StartTransaction and assign its integer transaction id.

        Idempotent on (charger, connector, id tag, meter start, start time): a start
        repeated after a reconnect returns the transaction created the first time, so
        the charger gets the same ``transactionId`` again. Ids come from one increasing
        sequence and are never reused.

        Returns:
            The transaction and whether this call created it.
        """
        ...

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
        """Record the start of a 2.0.1 transaction whose id the charger chose.

        Idempotent on (charger, ``tx_id``). Fields still unknown on the stored row (an
        orphan stop, a row made by an earlier event, an id token given only after the
        start) are filled in; known ones are kept.

        Returns:
            The transaction and whether this call recorded its start.
        """
        ...

    def apply_transaction_event(self, event: TransactionEventRecord) -> bool:
        """Record a 2.0.1 TransactionEvent once per (charger, ``tx_id``, ``seq_no``).

        Events may arrive out of order (offline queues); each is accepted and
        ``last_seq_no`` becomes the highest seen. A transaction row is created if the
        event is the first news of it. The start and stop are applied by
        :meth:`open_transaction_event` and :meth:`stop_transaction`: call those whatever
        this returns, since they are idempotent too, so a crash between the two calls
        loses nothing.

        Returns:
            True when the event was new.
        """
        ...

    def transaction_events(self, charger_id: str, tx_id: str) -> list[TransactionEventRecord]:
        """A transaction's events by ``seq_no``."""
        ...

    def stop_transaction(
        self,
        charger_id: str,
        tx_id: str,
        meter_stop_wh: float | None,
        stopped_at: datetime,
        reason: str | None = None,
    ) -> tuple[TransactionRecord, bool]:
        """Record the charger's stop of a transaction (1.6 StopTransaction, 2.0.1 Ended).

        A repeated stop changes nothing. A stop for a transaction a rule already closed
        replaces the rule's stop time and reading (the charger knows better) and keeps
        ``closed_by_rule``. A stop for an unknown transaction is kept as an orphan stop.

        Returns:
            The transaction and whether this call applied the stop.
        """
        ...

    def close_zombies(
        self, charger_id: str, reason: str, at: datetime, connector_id: int | None = None
    ) -> list[TransactionRecord]:
        """Close by rule the transactions still open on a charger (or one connector).

        For when the charger cannot have them running any more (it rebooted, the
        connector reports Available). Only transactions started at or before ``at`` are
        closed; each gets ``stopped_at = at`` and ``closed_by_rule = reason``.

        Returns:
            The transactions closed, by start time.
        """
        ...

    def get_transaction(self, charger_id: str, tx_id: str) -> TransactionRecord | None:
        """One transaction, or None."""
        ...

    def list_transactions(
        self,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        open: bool | None = None,
    ) -> list[TransactionRecord]:
        """Transactions by start time (an orphan stop by its stop time), ``since <= t < until``.

        ``open`` True keeps only running ones, False only stopped ones. Rows with neither
        time (events but no start yet) only appear without a time filter, last.
        """
        ...

    # -- meter values ---------------------------------------------------------------------

    def add_meter_values(self, values: Iterable[MeterValue]) -> int:
        """Store sampled values in one transaction, each repeat once; returns how many were new."""
        ...

    def meter_values(self, charger_id: str, tx_id: str) -> list[MeterValue]:
        """A transaction's sampled values in time order."""
        ...

    # -- id tags ----------------------------------------------------------------------------

    def upsert_id_tag(self, tag: IdTag) -> None:
        """Add an id tag or replace its status, vehicle and expiry."""
        ...

    def get_id_tag(self, tag: str) -> IdTag | None:
        """The id tag, or None when unknown (the caller answers Invalid)."""
        ...

    def list_id_tags(self) -> list[IdTag]:
        """Every id tag, by tag."""
        ...

    # -- charging profiles --------------------------------------------------------------

    def record_profile_sent(self, profile: ChargingProfileSent) -> None:
        """Keep a charging profile we sent and the charger's answer."""
        ...

    def list_profiles(self, charger_id: str | None = None) -> list[ChargingProfileSent]:
        """Profiles sent, of one charger or all, in the order sent."""
        ...

    # -- message log ----------------------------------------------------------------------

    def log_message(self, entry: MessageLogEntry) -> None:
        """Keep one OCPP frame, in or out.

        Unlike every other write, this may return before the frame is committed: the log
        is diagnostics, so it is buffered and written in batches (see
        :meth:`flush_messages`); a crash loses at most the last batch.
        """
        ...

    def flush_messages(self) -> int:
        """Commit the frames :meth:`log_message` buffered; returns how many were written.

        :meth:`query_messages`, :meth:`purge_messages` and :meth:`close` flush first, so
        a reader of the same store always sees every frame logged before its call.
        """
        ...

    def query_messages(
        self,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[MessageLogEntry]:
        """The newest ``limit`` frames matching every filter given, newest first.

        ``since <= at < until``; page back by passing the oldest ``at`` seen as ``until``.
        """
        ...

    def purge_messages(self, older_than: datetime) -> int:
        """Delete frames logged before ``older_than`` (the retention cut-off); returns how many."""
        ...

    # -- group commit -----------------------------------------------------------------------

    def run_group(self, units: Sequence[Callable[[], Any]]) -> list[UnitOutcome]:
        """Run ``units`` in order in one transaction, committed once; one outcome per unit.

        Each unit runs inside a savepoint: one that raises has its writes rolled back and
        its exception in its outcome, and the others go on. Store calls a unit makes (from
        the calling thread) join the group's transaction, each in a savepoint of its own,
        so a failing call is still rolled back alone and later reads see earlier writes
        of the group. Only after the commit are the outcomes returned: a caller may then
        acknowledge its unit. If the transaction cannot be begun or committed, every
        outcome holds a :class:`CommitError` and nothing of the group is kept.
        """
        ...

    def close(self) -> None:
        """Release the database connection; later calls raise :class:`StoreError`."""
        ...
