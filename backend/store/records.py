"""The values the back end keeps in its durable store: one frozen dataclass per row kind.

These are what :class:`backend.store.repository.Store` takes and returns, the same for
SQLite and PostgreSQL. They carry no behaviour beyond a few derived properties, so the
OCPP translators, the HTTP API and the tests can build and compare them freely.

Conventions shared by every record:

* Times are timezone-aware UTC datetimes. The store refuses naive ones rather than
  guess their zone, and hands back UTC whatever zone it was given.
* Records are keyword-only: a record with a dozen optional fields is unreadable when
  built positionally, and keyword construction survives adding a field.
* A charger is named by the id it connects with (the last path segment of its
  websocket URL), a connector by its number on that charger.
* Energy is in Wh, as OCPP meters report it; 2.0.1 decimals are kept as floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Direction(enum.StrEnum):
    """Which way an OCPP frame went, seen from the back end."""

    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerRecord:
    """A charger as its last BootNotification described it, plus when we last heard from it.

    Attributes:
        charger_id: the charge point identity it connects with.
        ocpp_version: the websocket subprotocol it speaks (``"ocpp1.6"``, ``"ocpp2.0.1"``).
        vendor, model, serial, firmware: from BootNotification.
        boot_status: what we answered (``Accepted``, ``Pending``, ``Rejected``).
        registered_at: when it first booted against us. An upsert keeps the first value,
            so re-boots do not rewrite a charger's history.
        last_seen: the last time any frame arrived from it.
        online: whether it holds a websocket connection right now.
    """

    charger_id: str
    ocpp_version: str
    vendor: str
    model: str
    serial: str | None = None
    firmware: str | None = None
    boot_status: str | None = None
    registered_at: datetime
    last_seen: datetime
    online: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorRecord:
    """The current status of one connector, from its latest StatusNotification.

    Attributes:
        charger_id: the charger it belongs to.
        connector_id: the 1.6 ``connectorId`` (0 is the whole charger), or the 2.0.1
            ``connectorId`` within its EVSE.
        evse_id: the 2.0.1 ``evseId``; None for 1.6, which has no EVSE level.
        status: the status as the charger spelled it (``Available``, ``Charging``, ...).
        error_code: the 1.6 ``errorCode``; None for 2.0.1, which reports errors by events.
        updated_at: the notification's own timestamp (not when it arrived), so a status
            queued while offline does not overwrite a newer one.
    """

    charger_id: str
    connector_id: int
    evse_id: int | None = None
    status: str
    error_code: str | None = None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChange:
    """One StatusNotification in a connector's history; fields as in :class:`ConnectorRecord`."""

    charger_id: str
    connector_id: int
    evse_id: int | None = None
    status: str
    error_code: str | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionRecord:
    """A charging transaction, from its start (or first event) to its stop.

    Start fields are None in two cases that are kept on purpose rather than dropped: an
    *orphan stop* (a stop for a transaction the store never saw start, for example
    after a database restore) and a 2.0.1 transaction whose events arrived before its
    ``Started`` event.

    Attributes:
        charger_id: the charger the transaction runs on.
        tx_id: the 1.6 ``transactionId`` we assigned (an integer, as text) or the 2.0.1
            ``transactionId`` the charger chose. Unique per charger: 2.0.1 only promises
            uniqueness within one charging station.
        connector_id: the 1.6 ``connectorId`` or the 2.0.1 EVSE id (2.0.1 transactions
            belong to an EVSE).
        id_tag: the idTag / idToken that authorised it, if any.
        meter_start_wh, started_at: the meter reading and time at the start.
        meter_stop_wh, stopped_at, stop_reason: the same at the stop; ``stopped_at`` is
            also set when a rule closed the transaction.
        last_seq_no: the highest 2.0.1 ``seqNo`` seen; None for 1.6.
        offline: some event of the transaction happened while the charger was offline.
        closed_by_rule: why a rule closed it (a zombie left open by a reboot or a lost
            connection), or None. Kept when the charger's own stop arrives later and
            replaces the rule's stop time and reading.
    """

    charger_id: str
    tx_id: str
    connector_id: int | None = None
    id_tag: str | None = None
    meter_start_wh: float | None = None
    started_at: datetime | None = None
    meter_stop_wh: float | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    last_seq_no: int | None = None
    offline: bool = False
    closed_by_rule: str | None = None

    @property
    def is_open(self) -> bool:
        """True until a stop or a rule closes the transaction."""
        return self.stopped_at is None

    @property
    def is_orphan_stop(self) -> bool:
        """True for a stop whose transaction was never seen to start."""
        return self.started_at is None and self.stopped_at is not None

    @property
    def energy_wh(self) -> float | None:
        """Energy delivered by meter difference, when both readings are known."""
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionEventRecord:
    """One 2.0.1 TransactionEvent as the store kept it, once per (charger, transaction, seqNo).

    Attributes:
        event_type: ``Started``, ``Updated`` or ``Ended``.
        at: the event's own timestamp.
        trigger_reason: the 2.0.1 ``triggerReason``.
        offline: the event happened while the charger was offline.
        payload: the request payload as JSON text, for what the columns do not hold.
    """

    charger_id: str
    tx_id: str
    seq_no: int
    event_type: str
    at: datetime
    trigger_reason: str | None = None
    offline: bool = False
    payload: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValue:
    """One sampled value: one measurand, phase and location at one time.

    A reading repeated after a reconnect (same charger, connector, transaction, time,
    measurand, phase, location, context and value) is stored once.

    Attributes:
        tx_id: the transaction it belongs to, or None for a reading outside one.
        connector_id: as in :class:`TransactionRecord` (0 is the charger's main meter).
        measurand: as spelled by OCPP; 1.6 and 2.0.1 both default to
            ``Energy.Active.Import.Register`` when the charger omits it, and the caller
            fills that default in.
        value: the numeric value. Signed meter data is out of scope for now.
        unit, phase, location, context: as reported, or None when omitted.
    """

    charger_id: str
    connector_id: int
    tx_id: str | None = None
    at: datetime
    measurand: str
    value: float
    unit: str | None = None
    phase: str | None = None
    location: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IdTag:
    """An identifier a driver or vehicle authorises with, and what we answer for it.

    Attributes:
        tag: the idTag (1.6) or idToken (2.0.1) value.
        status: ``Accepted``, ``Blocked``, ``Expired``, ``Invalid``, ...
        vehicle_id: the fleet vehicle that carries it, when it is a vehicle's tag.
        expiry: when it stops being valid, or None.
    """

    tag: str
    status: str
    vehicle_id: str | None = None
    expiry: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingProfileSent:
    """A charging profile we sent to a charger, and its answer.

    Attributes:
        connector_id: the 1.6 connectorId or 2.0.1 evseId it was sent for (0: the charger).
        profile: the profile as the JSON text we sent, byte for byte.
        sent_at: when we sent it.
        result: the charger's answer (``Accepted``, ``Rejected``, ...), or None when no
            answer came (timeout, disconnect).
    """

    charger_id: str
    connector_id: int
    profile: str
    sent_at: datetime
    result: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageLogEntry:
    """One OCPP frame as it crossed the wire.

    Attributes:
        direction: in (from the charger) or out (to it).
        at: when it was received or sent.
        message_type: the MessageTypeId (2 CALL, 3 CALLRESULT, 4 CALLERROR), or None for a
            frame too broken to tell.
        message_id: the frame's MessageId, or None when unreadable.
        action: the CALL's action; for a CALLRESULT or CALLERROR, the action of the call
            it answers when the caller knows it.
        payload: the whole frame text as on the wire, so that a malformed frame is kept
            exactly as it came.
    """

    charger_id: str
    direction: Direction
    at: datetime
    message_type: int | None
    message_id: str | None
    action: str | None = None
    payload: str
