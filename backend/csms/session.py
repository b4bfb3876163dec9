"""One charger's OCPP session, sans-I/O: a text frame in, the frames to send back out.

:class:`ChargePointSession` is the central system's side of one websocket connection. It
owns no socket, no task and no clock of its own: a driver (the websocket server in
:mod:`backend.server.ocpp_server`, a test, later the simulator) hands it every text
message with :meth:`ChargePointSession.receive` and sends whatever it returns. Domain
events go to the ``bus_sink`` callable, in the order the facts were stored; the driver
publishes them on the bus.

What happens to a message:

1. :func:`backend.ocpp.framing.decode` reads it against the actions this session
   handles (:data:`SUPPORTED_ACTIONS`). A frame that breaks OCPP-J is answered with the
   CALLERROR the codec chose and never reaches a handler; the session stays usable.
2. The frame is logged in the store verbatim (even a broken one), then the route map of
   the connection's version (:data:`ROUTE_MAPS`) picks the handler for its action, which
   stores what it says, through the store's idempotent calls, so a charger resending
   after a reconnect changes nothing twice.
3. The handler answers with the ``ocpp`` library's ``call_result`` dataclass of that
   version; :func:`backend.csms.payloads.as_payload` turns it into the JSON object the
   library would send, which is checked against the action's response schema, logged and
   returned.

Routing is the library's: each handler is marked with ``ocpp.routing.on`` and the
library's ``Action`` enum of a version, and ``ocpp.routing.create_route_map`` builds one
route map per version from them, so an action a version does not define cannot route on
it. The dispatch loop is ours, not ``ocpp.ChargePoint.route_message``: that one reads the
socket and sends itself, drops a frame it cannot parse without an answer, and turns
any handler exception into a CALLERROR; here the spec-exact codec
(:mod:`backend.ocpp.framing`) answers every broken frame, the driver owns the socket, and
a store failure becomes an InternalError the charger resends after (see below). Nothing
sets ``on(..., skip_schema_validation=True)``: every request and reply is validated.

Handlers are version-neutral where the two versions mean the same thing (BootNotification,
Heartbeat, StatusNotification, Authorize, MeterValues, DataTransfer, the notifications)
and version-specific where they do not (1.6 Start/StopTransaction, 2.0.1
TransactionEvent); a version-neutral one answers with the ``call_result`` class of the
connection's version.

A store failure is answered with an InternalError CALLERROR and logged with its traceback:
the charger keeps its message and resends it, where an Accepted we could not back with a
write would lose it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Final

from ocpp.routing import create_route_map, on
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as types16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as types201
from ocpp.v201.enums import Action as Action201

from backend.csms.admission import BootAdmission
from backend.csms.config import CsmsConfig
from backend.csms.payloads import as_payload
from backend.csms.readings import ENERGY_REGISTER, POWER, SOC, latest, meter_values, parse_time
from backend.errors import DepotsimError
from backend.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    DomainEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from backend.ocpp.framing import (
    UNREADABLE_MESSAGE_ID,
    CallErrorFrame,
    CallFrame,
    CallResultFrame,
    Fault,
    FrameError,
    MessageType,
    OcppVersion,
    decode,
    encode_error,
    encode_result,
    reply_for,
    validate_result,
)
from backend.store import (
    ChargerRecord,
    ConnectorRecord,
    Direction,
    MessageLogEntry,
    MeterValue,
    Store,
    TransactionEventRecord,
    TransactionRecord,
    UnknownChargerError,
)
from sim.clock import Clock

log = logging.getLogger(__name__)

BusSink = Callable[[DomainEvent], None]
"""Where a session puts its domain events; the driver publishes them."""

REBOOT_REASON: Final = "charger rebooted"
AVAILABLE_REASON: Final = "connector reported Available"

_AUTH_STATUSES: Final[Mapping[OcppVersion, frozenset[str]]] = {
    OcppVersion.V16: frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}),
    OcppVersion.V201: frozenset(
        {
            "Accepted",
            "Blocked",
            "ConcurrentTx",
            "Expired",
            "Invalid",
            "NoCredit",
            "NotAllowedTypeEVSE",
            "NotAtThisLocation",
            "NotAtThisTime",
            "Unknown",
        }
    ),
}

_RESULTS: Final[Mapping[OcppVersion, ModuleType]] = {OcppVersion.V16: result16, OcppVersion.V201: result201}
"""Each version's ``call_result`` module: the replies of the version-neutral handlers."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as :meth:`ChargePointSession.read` decoded it, for :meth:`ChargePointSession.handle`."""

    raw: str
    """The text as received (invalid UTF-8 replaced), for the message log."""
    at: datetime
    """When it was read: the time of every fact it records that carries no time of its own."""
    frame: CallFrame | CallResultFrame | CallErrorFrame | FrameError
    """The decoded frame, or the error that says what is wrong with it (and its reply)."""


def wire_time(at: datetime) -> str:
    """An aware time as OCPP sends it: UTC, milliseconds, ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ChargePointSession:
    """The central system's side of one charger connection.

    Create one per accepted websocket connection, call :meth:`connected` once, then
    :meth:`receive` for every message and :meth:`disconnected` when it ends. Every call
    is synchronous and may block on the store, so an asyncio driver runs it in a worker
    thread (the server: inside a group commit, see :meth:`commit_failed`); calls for one
    session must not overlap.
    """

    def __init__(
        self,
        charger_id: str,
        version: OcppVersion | str,
        store: Store,
        bus_sink: BusSink,
        clock: Clock,
        config: CsmsConfig | None = None,
        admission: BootAdmission | None = None,
    ) -> None:
        """Bind a session to one charger identity and the subprotocol its connection negotiated.

        ``admission`` paces BootNotifications the config would accept; the server shares
        one across all its sessions (a per-session one would pace nothing). None admits
        every boot at once.
        """
        self.charger_id = charger_id
        self.version = OcppVersion(version)
        self._store = store
        self._emit = bus_sink
        self._clock = clock
        self._config = config if config is not None else CsmsConfig()
        self._admission = admission
        self._supported = SUPPORTED_ACTIONS[self.version]
        self._routes = ROUTE_MAPS[self.version]
        self._results = _RESULTS[self.version]
        self._pending: list[DomainEvent] = []
        self._samples: dict[str, tuple[int, datetime]] = {}
        """1.6 transaction id -> (distinct sample times seen, newest one): the seq_no of its updates."""
        self._meter_starts: dict[str, float] = {}
        """Transaction id -> its meter start once known (it never changes after), for TransactionUpdated."""

    # -- connection lifecycle --------------------------------------------------------------

    def connected(self) -> None:
        """The websocket was accepted: mark the charger online (if registered) and say so."""
        now = self._clock.now()
        self._mark_online(True, now)
        self._emit(ChargerOnline(at=now, charger_id=self.charger_id))

    def disconnected(self, reason: str = "connection_closed") -> None:
        """The websocket ended: mark the charger offline (if registered) and say why."""
        now = self._clock.now()
        self._mark_online(False, now)
        self._emit(ChargerOffline(at=now, charger_id=self.charger_id, reason=reason))

    def _mark_online(self, online: bool, now: datetime) -> None:
        # Not booted yet: its BootNotification registers it as online.
        with contextlib.suppress(UnknownChargerError):
            self._store.set_online(self.charger_id, online, now)

    # -- frames ------------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> list[str]:
        """Handle one websocket message; return the frames to send back, in order.

        The same as :meth:`handle` of :meth:`read`; a driver that wants the decoding done
        on another thread than the store work calls the two itself.

        Never raises for anything the charger sent. A :class:`backend.store.StoreError`
        while logging the frame itself propagates: nothing was handled, and the driver
        should close the connection so that the charger resends elsewhere or later.
        """
        return self.handle(self.read(text))

    def read(self, text: str | bytes) -> Incoming:
        """Decode and validate one websocket message, noting when it arrived; touches no store.

        Half of the work of a message, and the CPU-heavy half (JSON schema validation):
        the server does it on its event loop while the store writer thread is busy
        committing, then hands the result to :meth:`handle` there.
        """
        now = self._clock.now()
        raw = text if isinstance(text, str) else bytes(text).decode("utf-8", errors="replace")
        try:
            return Incoming(raw, now, decode(text, self.version, supported_actions=self._supported))
        except FrameError as err:
            return Incoming(raw, now, err)

    def handle(self, incoming: Incoming) -> list[str]:
        """Log a message :meth:`read` decoded, store what it says, and return the frames to send back.

        Raises only as :meth:`receive` does.
        """
        now, raw, frame = incoming.at, incoming.raw, incoming.frame
        if isinstance(frame, FrameError):
            err = frame
            unreadable = err.message_id == UNREADABLE_MESSAGE_ID and err.message_type is None
            readable_id = None if unreadable else err.message_id
            self._log(Direction.IN, now, err.message_type, readable_id, None, raw)
            if not err.should_reply:
                return []
            return [self._send(reply_for(err), MessageType.CALLERROR, err.message_id, None)]
        if isinstance(frame, CallResultFrame | CallErrorFrame):
            # The server routes answers to its own calls to the outbound queue before this
            # point; one that still arrives here answers nothing we sent: keep it in the log.
            kind = MessageType.CALLRESULT if isinstance(frame, CallResultFrame) else MessageType.CALLERROR
            self._log(Direction.IN, now, kind, frame.message_id, None, raw)
            log.info("%s: answer %s to no call of ours, logged", self.charger_id, frame.message_id)
            return []
        self._log(Direction.IN, now, MessageType.CALL, frame.message_id, frame.action, raw)
        return [self._handle(frame, now)]

    def commit_failed(self, incoming: Incoming, description: str) -> list[str]:
        """The store rolled back what :meth:`handle` wrote for ``incoming``: the frames to send instead.

        For a driver that runs :meth:`handle` inside a group commit
        (:class:`backend.store.group_commit.GroupCommitter`) whose commit then failed: the
        replies :meth:`handle` returned must not be sent, since they acknowledge writes
        that were not kept. A CALL gets an InternalError CALLERROR instead, so the charger
        keeps its message and resends it; anything else gets what it got before, which
        acknowledged nothing. What the session learnt from the lost writes (sample counts,
        transaction starts) is forgotten and read back from the store next time. The
        replies :meth:`handle` built stay in the message log, followed by this one.
        """
        self._samples.clear()
        self._meter_starts.clear()
        frame = incoming.frame
        if isinstance(frame, FrameError):
            if not frame.should_reply:
                return []
            return [self._send(reply_for(frame), MessageType.CALLERROR, frame.message_id, None)]
        if not isinstance(frame, CallFrame):
            return []
        return [self._internal_error(frame, f"not stored, resend: {description}")]

    def _handle(self, frame: CallFrame, now: datetime) -> str:
        events: list[DomainEvent] = []
        self._pending = events
        try:
            route = self._routes.get(frame.action)
            if route is None:  # decode answers these NotSupported before they get here
                return self._call_error(frame, "NotSupported", f"{frame.action} is not handled here")
            payload = as_payload(route["_on_action"](self, frame, now))
            validate_result(frame.action, payload, self.version, message_id=frame.message_id, fault=Fault.LOCAL)
            reply = encode_result(frame.message_id, payload)
        except FrameError as err:
            if err.fault is Fault.PEER:
                return self._send(reply_for(err), MessageType.CALLERROR, frame.message_id, frame.action)
            log.exception("%s: our %s reply broke OCPP-J", self.charger_id, frame.action)
            return self._internal_error(frame, "the central system built an invalid reply")
        except DepotsimError as err:
            log.exception("%s: %s failed", self.charger_id, frame.action)
            return self._internal_error(frame, str(err))
        finally:
            self._pending = []
        for event in events:
            self._emit(event)
        return self._send(reply, MessageType.CALLRESULT, frame.message_id, frame.action)

    def _internal_error(self, frame: CallFrame, description: str) -> str:
        return self._call_error(frame, "InternalError", description)

    def _call_error(self, frame: CallFrame, code: str, description: str) -> str:
        text = encode_error(CallErrorFrame(frame.message_id, code, description[:255], {}))
        return self._send(text, MessageType.CALLERROR, frame.message_id, frame.action)

    def _send(self, text: str, kind: MessageType, message_id: str, action: str | None) -> str:
        self._log(Direction.OUT, self._clock.now(), kind, message_id, action, text)
        return text

    def _log(
        self,
        direction: Direction,
        at: datetime,
        kind: int | None,
        message_id: str | None,
        action: str | None,
        text: str,
    ) -> None:
        self._store.log_message(
            MessageLogEntry(
                charger_id=self.charger_id,
                direction=direction,
                at=at,
                message_type=kind,
                message_id=message_id,
                action=action,
                payload=text,
            )
        )

    def _event(self, event: DomainEvent) -> None:
        # Held until the reply is built, so a failed handler publishes nothing half-done.
        self._pending.append(event)

    def _time(self, frame: CallFrame, field: str, text: str | None, now: datetime) -> datetime:
        return now if text is None else parse_time(text, field, self.version, frame.message_id)

    # -- handlers: both versions -------------------------------------------------------------

    def _boot_notification(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        if self.version is OcppVersion.V16:
            vendor, model = p["chargePointVendor"], p["chargePointModel"]
            serial = p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber")
            firmware = p.get("firmwareVersion")
        else:
            station = p["chargingStation"]
            vendor, model = station["vendorName"], station["model"]
            serial, firmware = station.get("serialNumber"), station.get("firmwareVersion")
        status = self._config.boot_status(self.charger_id)
        interval = self._config.heartbeat_interval_s
        if status == "Accepted" and self._admission is not None:
            admission = self._admission.admit(self.charger_id, now)
            if not admission.admitted:
                status, interval = "Pending", admission.retry_after_s
        self._store.upsert_charger(
            ChargerRecord(
                charger_id=self.charger_id,
                ocpp_version=self.version.value,
                vendor=vendor,
                model=model,
                serial=serial,
                firmware=firmware,
                boot_status=status,
                registered_at=now,
                last_seen=now,
                online=True,
            )
        )
        # Whatever the charger ran before it booted is gone: close it rather than leave it open.
        for tx in self._store.close_zombies(self.charger_id, REBOOT_REASON, now):
            self._zombie_closed(tx, now)
        self._event(
            ChargerBooted(
                at=now,
                charger_id=self.charger_id,
                ocpp_version=self.version.value.removeprefix("ocpp"),
                vendor=vendor,
                model=model,
                boot_status=status,
            )
        )
        return self._results.BootNotification(current_time=wire_time(now), interval=interval, status=status)

    def _heartbeat(self, frame: CallFrame, now: datetime) -> Any:
        self._mark_online(True, now)
        return self._results.Heartbeat(current_time=wire_time(now))

    def _status_notification(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        if self.version is OcppVersion.V16:
            evse_id, connector_id, status, error_code = None, p["connectorId"], p["status"], p["errorCode"]
        else:
            evse_id, connector_id, status, error_code = p["evseId"], p["connectorId"], p["connectorStatus"], None
        at = self._time(frame, "timestamp", p.get("timestamp"), now)
        record = ConnectorRecord(
            charger_id=self.charger_id,
            connector_id=connector_id,
            evse_id=evse_id,
            status=status,
            error_code=error_code,
            updated_at=at,
        )
        if self._store.upsert_connector_status(record):
            # 2.0.1 transactions belong to an EVSE, 1.6 ones to a connector (see TransactionRecord).
            reported = connector_id if evse_id is None else evse_id
            self._event(
                ConnectorStatusChanged(
                    at=at, charger_id=self.charger_id, connector_id=reported, status=status, error_code=error_code
                )
            )
            if status == "Available" and reported != 0:
                # Nothing can charge on a connector that is Available: a transaction still
                # open there lost its stop (a crash, a lost StopTransaction).
                for tx in self._store.close_zombies(self.charger_id, AVAILABLE_REASON, at, connector_id=reported):
                    self._zombie_closed(tx, at)
        return self._results.StatusNotification()

    def _authorize(self, frame: CallFrame, now: datetime) -> Any:
        if self.version is OcppVersion.V16:
            status = self._id_status(frame.payload["idTag"], now)
            return result16.Authorize(id_tag_info=types16.IdTagInfo(status=status))
        status = self._id_status(frame.payload["idToken"]["idToken"], now)
        return result201.Authorize(id_token_info=types201.IdTokenInfoType(status=status))

    def _id_status(self, tag: str, now: datetime) -> str:
        """Accept-all first, then the store's entry (the operator's word), then the allow list."""
        if self._config.accept_all_id_tags:
            return "Accepted"
        stored = self._store.get_id_tag(tag)
        if stored is not None:
            if stored.expiry is not None and stored.expiry <= now:
                return "Expired"
            return stored.status if stored.status in _AUTH_STATUSES[self.version] else "Invalid"
        return "Accepted" if tag in self._config.id_tags else "Invalid"

    def _meter_values(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        if self.version is OcppVersion.V16:
            connector_id, raw_tx = p["connectorId"], p.get("transactionId")
            tx_id = None if raw_tx is None else str(raw_tx)
        else:
            connector_id, tx_id = p["evseId"], None
        rows = meter_values(
            p["meterValue"],
            charger_id=self.charger_id,
            connector_id=connector_id,
            tx_id=tx_id,
            version=self.version,
            message_id=frame.message_id,
        )
        new = self._store.add_meter_values(rows)
        if new and tx_id is not None:
            self._updated(tx_id, self._sample_seq_no(tx_id, rows), rows, now)
        return self._results.MeterValues()

    def _sample_seq_no(self, tx_id: str, rows: Sequence[MeterValue]) -> int:
        """A 1.6 update's seq_no: how many distinct sample times the transaction has, which only grows.

        1.6 has no seqNo. Counted here rather than by re-reading the transaction's values
        on every MeterValues (quadratic in its length: the server's worst cost under load);
        the store is read once per transaction per connection, to continue after a
        reconnect. Only samples newer than the newest seen advance the count, so a late
        sample from an offline queue repeats the previous seq_no instead of skewing it.
        """
        known = self._samples.get(tx_id)
        if known is None:  # the rows just added are among these, so there is at least one
            stored = {row.at for row in self._store.meter_values(self.charger_id, tx_id)}
            count, newest = len(stored), max(stored)
        else:
            count, newest = known
            fresh = {row.at for row in rows if row.at > newest}
            count, newest = count + len(fresh), max(fresh, default=newest)
        self._samples[tx_id] = (count, newest)
        return count

    def _data_transfer(self, frame: CallFrame, now: datetime) -> Any:
        accepted = frame.payload["vendorId"] in self._config.accepted_data_transfer_vendors
        return self._results.DataTransfer(status="Accepted" if accepted else "UnknownVendorId")

    # Notifications we only keep in the message log and answer with an empty payload.

    def _diagnostics_status_notification(self, frame: CallFrame, now: datetime) -> Any:
        return result16.DiagnosticsStatusNotification()

    def _firmware_status_notification(self, frame: CallFrame, now: datetime) -> Any:
        return self._results.FirmwareStatusNotification()

    def _log_status_notification(self, frame: CallFrame, now: datetime) -> Any:
        return self._results.LogStatusNotification()

    def _security_event_notification(self, frame: CallFrame, now: datetime) -> Any:
        return self._results.SecurityEventNotification()

    def _notify_event(self, frame: CallFrame, now: datetime) -> Any:
        return result201.NotifyEvent()

    # -- handlers: 1.6 transactions ----------------------------------------------------------

    def _start_transaction(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        started_at = self._time(frame, "timestamp", p["timestamp"], now)
        status = self._id_status(p["idTag"], now)
        # Recorded whatever the tag's status: 1.6 §5.9 has the charger start first and stop
        # when we answer anything but Accepted, and that energy still flowed.
        tx, created = self._store.start_transaction(
            self.charger_id, p["connectorId"], p["idTag"], float(p["meterStart"]), started_at
        )
        if created:
            self._event(
                TransactionStarted(
                    at=started_at,
                    charger_id=self.charger_id,
                    tx_id=tx.tx_id,
                    connector_id=p["connectorId"],
                    id_tag=p["idTag"],
                    meter_start_wh=float(p["meterStart"]),
                )
            )
        return result16.StartTransaction(transaction_id=int(tx.tx_id), id_tag_info=types16.IdTagInfo(status=status))

    def _stop_transaction(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        tx_id = str(p["transactionId"])
        stopped_at = self._time(frame, "timestamp", p["timestamp"], now)
        rows = meter_values(
            p.get("transactionData", ()),
            charger_id=self.charger_id,
            connector_id=0,
            tx_id=tx_id,
            version=self.version,
            message_id=frame.message_id,
        )
        existing = self._store.get_transaction(self.charger_id, tx_id)
        if existing is not None and existing.connector_id is not None:
            rows = [replace(row, connector_id=existing.connector_id) for row in rows]
        self._store.add_meter_values(rows)
        tx, applied = self._store.stop_transaction(
            self.charger_id, tx_id, float(p["meterStop"]), stopped_at, p.get("reason")
        )
        self._samples.pop(tx_id, None)
        self._meter_starts.pop(tx_id, None)
        if tx.is_orphan_stop and applied:
            log.warning("%s: StopTransaction for unknown transaction %s kept as an orphan stop", self.charger_id, tx_id)
        if applied:
            self._event(
                TransactionEnded(
                    at=stopped_at,
                    charger_id=self.charger_id,
                    tx_id=tx_id,
                    meter_stop_wh=float(p["meterStop"]),
                    reason=p.get("reason"),
                )
            )
        if "idTag" in p:
            return result16.StopTransaction(id_tag_info=types16.IdTagInfo(status=self._id_status(p["idTag"], now)))
        return result16.StopTransaction()

    # -- handlers: 2.0.1 transactions --------------------------------------------------------

    def _transaction_event(self, frame: CallFrame, now: datetime) -> Any:
        p = frame.payload
        info = p["transactionInfo"]
        tx_id, event_type, offline = info["transactionId"], p["eventType"], bool(p.get("offline", False))
        at = self._time(frame, "timestamp", p["timestamp"], now)
        evse_id = p.get("evse", {}).get("id", 0)
        id_tag = p.get("idToken", {}).get("idToken")
        rows = meter_values(
            p.get("meterValue", ()),
            charger_id=self.charger_id,
            connector_id=evse_id,
            tx_id=tx_id,
            version=self.version,
            message_id=frame.message_id,
        )
        new = self._store.apply_transaction_event(
            TransactionEventRecord(
                charger_id=self.charger_id,
                tx_id=tx_id,
                seq_no=p["seqNo"],
                event_type=event_type,
                at=at,
                trigger_reason=p["triggerReason"],
                offline=offline,
                payload=json.dumps(p, separators=(",", ":")),
            )
        )
        self._store.add_meter_values(rows)
        energy = latest(rows, ENERGY_REGISTER)
        # Start and stop are idempotent in the store: applied whether or not the event was
        # new, so a crash between the two writes loses nothing (see apply_transaction_event).
        if event_type == "Started":
            tx, opened = self._store.open_transaction_event(
                self.charger_id, tx_id, evse_id, at, id_tag=id_tag, meter_start_wh=energy, offline=offline
            )
            if opened:
                self._event(
                    TransactionStarted(
                        at=at,
                        charger_id=self.charger_id,
                        tx_id=tx_id,
                        connector_id=evse_id,
                        id_tag=tx.id_tag,
                        meter_start_wh=tx.meter_start_wh if tx.meter_start_wh is not None else 0.0,
                    )
                )
        elif event_type == "Ended":
            tx, applied = self._store.stop_transaction(self.charger_id, tx_id, energy, at, info.get("stoppedReason"))
            self._meter_starts.pop(tx_id, None)
            if applied:
                stop = energy if energy is not None else _last_energy(self._store, tx)
                self._event(
                    TransactionEnded(
                        at=at, charger_id=self.charger_id, tx_id=tx_id, meter_stop_wh=stop, reason=tx.stop_reason
                    )
                )
        elif new:
            self._updated(tx_id, p["seqNo"], rows, at)
        if id_tag is not None:
            status = self._id_status(id_tag, now)
            return result201.TransactionEvent(id_token_info=types201.IdTokenInfoType(status=status))
        return result201.TransactionEvent()

    # -- shared helpers ----------------------------------------------------------------------

    def _updated(self, tx_id: str, seq_no: int, rows: Sequence[MeterValue], at: datetime) -> None:
        """Publish TransactionUpdated when the rows hold an energy register and the start is known."""
        energy = latest(rows, ENERGY_REGISTER)
        if energy is None:
            return
        # Read once per transaction per connection: a MeterValues a second would otherwise
        # read the transaction row every time. A start once known is never overwritten
        # (see Store.open_transaction_event), so the cached one stays right.
        meter_start = self._meter_starts.get(tx_id)
        if meter_start is None:
            tx = self._store.get_transaction(self.charger_id, tx_id)
            if tx is None or tx.meter_start_wh is None:
                return
            meter_start = self._meter_starts[tx_id] = tx.meter_start_wh
        self._event(
            TransactionUpdated(
                at=max(row.at for row in rows) if rows else at,
                charger_id=self.charger_id,
                tx_id=tx_id,
                seq_no=seq_no,
                energy_wh=energy - meter_start,
                power_w=latest(rows, POWER),
                soc=latest(rows, SOC),
            )
        )

    def _zombie_closed(self, tx: TransactionRecord, at: datetime) -> None:
        self._event(
            TransactionEnded(
                at=at,
                charger_id=self.charger_id,
                tx_id=tx.tx_id,
                meter_stop_wh=_last_energy(self._store, tx),
                reason=tx.closed_by_rule,
            )
        )


class _Ocpp16Routes:
    """The 1.6 actions a session answers: its handlers, each marked with the library's ``on``.

    ``create_route_map`` finds a handler by its function name, so each attribute is named
    after the handler it marks.
    """

    _authorize = on(Action16.authorize)(ChargePointSession._authorize)
    _boot_notification = on(Action16.boot_notification)(ChargePointSession._boot_notification)
    _data_transfer = on(Action16.data_transfer)(ChargePointSession._data_transfer)
    _diagnostics_status_notification = on(Action16.diagnostics_status_notification)(
        ChargePointSession._diagnostics_status_notification
    )
    _firmware_status_notification = on(Action16.firmware_status_notification)(
        ChargePointSession._firmware_status_notification
    )
    _heartbeat = on(Action16.heartbeat)(ChargePointSession._heartbeat)
    _log_status_notification = on(Action16.log_status_notification)(ChargePointSession._log_status_notification)
    _meter_values = on(Action16.meter_values)(ChargePointSession._meter_values)
    _security_event_notification = on(Action16.security_event_notification)(
        ChargePointSession._security_event_notification
    )
    _start_transaction = on(Action16.start_transaction)(ChargePointSession._start_transaction)
    _status_notification = on(Action16.status_notification)(ChargePointSession._status_notification)
    _stop_transaction = on(Action16.stop_transaction)(ChargePointSession._stop_transaction)


class _Ocpp201Routes:
    """The 2.0.1 actions a session answers, as :class:`_Ocpp16Routes` has them for 1.6."""

    _authorize = on(Action201.authorize)(ChargePointSession._authorize)
    _boot_notification = on(Action201.boot_notification)(ChargePointSession._boot_notification)
    _data_transfer = on(Action201.data_transfer)(ChargePointSession._data_transfer)
    _firmware_status_notification = on(Action201.firmware_status_notification)(
        ChargePointSession._firmware_status_notification
    )
    _heartbeat = on(Action201.heartbeat)(ChargePointSession._heartbeat)
    _log_status_notification = on(Action201.log_status_notification)(ChargePointSession._log_status_notification)
    _meter_values = on(Action201.meter_values)(ChargePointSession._meter_values)
    _notify_event = on(Action201.notify_event)(ChargePointSession._notify_event)
    _security_event_notification = on(Action201.security_event_notification)(
        ChargePointSession._security_event_notification
    )
    _status_notification = on(Action201.status_notification)(ChargePointSession._status_notification)
    _transaction_event = on(Action201.transaction_event)(ChargePointSession._transaction_event)


ROUTE_MAPS: Final[Mapping[OcppVersion, Mapping[str, Mapping[str, Any]]]] = {
    OcppVersion.V16: create_route_map(_Ocpp16Routes),
    OcppVersion.V201: create_route_map(_Ocpp201Routes),
}
"""Each version's route map, as ``ocpp.routing.create_route_map`` builds it.

Keyed by the version's ``Action`` members (string enums, so a frame's action string looks
them up); each route holds ``"_on_action"``, the handler, called as
``handler(session, frame, now)``, and ``"_skip_schema_validation"`` (never set).
"""

SUPPORTED_ACTIONS: Final[Mapping[OcppVersion, frozenset[str]]] = {
    version: frozenset(str(action) for action in routes) for version, routes in ROUTE_MAPS.items()
}
"""The charger-initiated actions each version's session handles (its route map's); others get NotSupported."""


def _last_energy(store: Store, tx: TransactionRecord) -> float:
    """The best stop reading we have without the charger's: its last energy register, else its start."""
    energy = latest(store.meter_values(tx.charger_id, tx.tx_id), ENERGY_REGISTER)
    if energy is not None:
        return energy
    return tx.meter_start_wh if tx.meter_start_wh is not None else 0.0
