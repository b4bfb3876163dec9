"""The sans-I/O charger session: frames in, frames out, facts in the store, events to the sink.

No sockets: each test drives a :class:`ChargePointSession` by hand with a ManualClock and
an SQLite store in tmp_path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from backend.csms import ChargePointSession, CsmsConfig, CsmsConfigError
from backend.csms.session import (
    AVAILABLE_REASON,
    REBOOT_REASON,
    ROUTE_MAPS,
    SUPPORTED_ACTIONS,
    Incoming,
)
from backend.events import (
    ChargerBooted,
    ConnectorStatusChanged,
    DomainEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from backend.ocpp.framing import CallFrame, OcppVersion
from backend.store import IdTag, Store, open_store
from sim.clock import ManualClock

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
V16 = OcppVersion.V16
V201 = OcppVersion.V201


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "csms.db")
    yield s
    s.close()


class Charger:
    """A session plus what it emitted, driven with call(action, payload)."""

    def __init__(self, store: Store, version: OcppVersion, config: CsmsConfig | None = None, cid: str = "CP-1"):
        self.clock = ManualClock(T0)
        self.events: list[DomainEvent] = []
        self.session = ChargePointSession(cid, version, store, self.events.append, self.clock, config)
        self._n = 0

    def send(self, text: str) -> list[Any]:
        return [json.loads(frame) for frame in self.session.receive(text)]

    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        (reply,) = self.send(json.dumps([2, f"m{self._n}", action, payload]))
        assert reply[0] == 3, reply
        return reply[2]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def boot16(c: Charger) -> dict[str, Any]:
    return c.call("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "DC150"})


def boot201(c: Charger) -> dict[str, Any]:
    return c.call("BootNotification", {"chargingStation": {"vendorName": "ACME", "model": "X"}, "reason": "PowerUp"})


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def test_boot_is_accepted_stored_and_published_with_the_configured_interval(store: Store) -> None:
    c = Charger(store, V16, CsmsConfig(heartbeat_interval_s=300))
    reply = boot16(c)
    assert reply == {"currentTime": "2025-03-01T06:00:00.000Z", "interval": 300, "status": "Accepted"}
    charger = store.get_charger("CP-1")
    assert charger is not None
    assert charger.online
    assert charger.boot_status == "Accepted"
    assert isinstance(c.events[0], ChargerBooted)
    assert c.events[0].ocpp_version == "1.6"


@pytest.mark.parametrize("status", ["Rejected", "Pending"])
def test_unknown_charger_gets_the_configured_status_when_unknown_chargers_are_refused(
    store: Store, status: str
) -> None:
    config = CsmsConfig(accept_unknown_chargers=False, boot_status_for_unknown=status)  # type: ignore[arg-type]
    assert boot201(Charger(store, V201, config))["status"] == status
    known = CsmsConfig(accept_unknown_chargers=False, known_chargers=frozenset({"CP-2"}))
    assert boot201(Charger(store, V201, known, cid="CP-2"))["status"] == "Accepted"


def test_config_refuses_impossible_values() -> None:
    with pytest.raises(CsmsConfigError, match="boot_status_for_unknown"):
        CsmsConfig(boot_status_for_unknown="Maybe")  # type: ignore[arg-type]
    with pytest.raises(CsmsConfigError, match="heartbeat_interval_s"):
        CsmsConfig(heartbeat_interval_s=0)
    with pytest.raises(CsmsConfigError, match="id_tags"):
        CsmsConfig(id_tags="TAG1")  # type: ignore[arg-type]


def test_heartbeat_answers_the_clock_time_and_updates_last_seen(store: Store) -> None:
    c = Charger(store, V16)
    boot16(c)
    c.clock.advance(90)
    assert c.call("Heartbeat", {}) == {"currentTime": "2025-03-01T06:01:30.000Z"}
    charger = store.get_charger("CP-1")
    assert charger is not None
    assert charger.last_seen == T0 + timedelta(seconds=90)


def test_malformed_frame_is_answered_logged_verbatim_and_the_session_goes_on(store: Store) -> None:
    c = Charger(store, V16)
    assert c.send("[2, 'not json") == [[4, "-1", "FormationViolation", c.send("[2, 'not json")[0][3], {}]]
    assert c.send('[2,"x1","Fly",{}]')[0][2] == "NotImplemented"
    assert c.send('[2,"x2","RemoteStartTransaction",{"idTag":"A"}]')[0][2] == "NotSupported"
    assert c.call("Heartbeat", {}) == {"currentTime": "2025-03-01T06:00:00.000Z"}
    logged = [m.payload for m in store.query_messages("CP-1", limit=20)]
    assert "[2, 'not json" in logged
    assert c.events == []


def test_rpc_error_is_spelled_for_201(store: Store) -> None:
    c = Charger(store, V201)
    assert c.send("nope")[0][:3] == [4, "-1", "RpcFrameworkError"]
    assert c.send('[2,"x1","Heartbeat",{"bogus":1}]')[0][2] == "ProtocolError"


def test_status_notification_is_stored_and_published_and_available_closes_a_zombie(store: Store) -> None:
    c = Charger(store, V16)
    boot16(c)
    tx = c.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": iso(1)})
    c.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": iso(5)})
    (connector,) = store.list_connectors("CP-1")
    assert (connector.status, connector.error_code) == ("Available", "NoError")
    closed = store.get_transaction("CP-1", str(tx["transactionId"]))
    assert closed is not None
    assert closed.closed_by_rule == AVAILABLE_REASON
    status_event = next(e for e in c.events if isinstance(e, ConnectorStatusChanged))
    assert status_event.status == "Available"
    assert isinstance(c.events[-1], TransactionEnded)
    assert c.events[-1].reason == AVAILABLE_REASON


def test_authorize_uses_config_allow_list_then_store_tags(store: Store) -> None:
    store.upsert_id_tag(IdTag(tag="BLOCKED", status="Blocked"))
    store.upsert_id_tag(IdTag(tag="OLD", status="Accepted", expiry=T0 - timedelta(days=1)))
    store.upsert_id_tag(IdTag(tag="STORED", status="Accepted"))
    c = Charger(store, V16, CsmsConfig(id_tags=frozenset({"LISTED"})))
    answers = {tag: c.call("Authorize", {"idTag": tag})["idTagInfo"]["status"] for tag in ("LISTED", "STORED")}
    answers |= {tag: c.call("Authorize", {"idTag": tag})["idTagInfo"]["status"] for tag in ("BLOCKED", "OLD", "X")}
    assert answers == {
        "LISTED": "Accepted",
        "STORED": "Accepted",
        "BLOCKED": "Blocked",
        "OLD": "Expired",
        "X": "Invalid",
    }
    everyone = Charger(store, V201, CsmsConfig(accept_all_id_tags=True))
    reply = everyone.call("Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
    assert reply == {"idTokenInfo": {"status": "Accepted"}}


def test_start_and_stop_transaction_are_idempotent_and_an_unknown_stop_is_kept(store: Store) -> None:
    c = Charger(store, V16, CsmsConfig(accept_all_id_tags=True))
    boot16(c)
    start = {"connectorId": 2, "idTag": "T", "meterStart": 500, "timestamp": iso(1)}
    first, again = c.call("StartTransaction", start), c.call("StartTransaction", start)
    assert first == again == {"transactionId": first["transactionId"], "idTagInfo": {"status": "Accepted"}}
    assert c.kinds().count("transaction.started") == 1
    stop = {
        "transactionId": first["transactionId"],
        "meterStop": 2500,
        "timestamp": iso(30),
        "reason": "EVDisconnected",
    }
    assert c.call("StopTransaction", stop) == {}
    c.call("StopTransaction", stop)
    ended = [e for e in c.events if isinstance(e, TransactionEnded)]
    assert len(ended) == 1
    assert ended[0].meter_stop_wh == 2500.0
    tx = store.get_transaction("CP-1", str(first["transactionId"]))
    assert tx is not None
    assert tx.energy_wh == 2000.0
    c.call("StopTransaction", {"transactionId": 999, "meterStop": 1, "timestamp": iso(31)})
    orphan = store.get_transaction("CP-1", "999")
    assert orphan is not None
    assert orphan.is_orphan_stop


def test_boot_after_reboot_closes_open_transactions(store: Store) -> None:
    c = Charger(store, V16)
    boot16(c)
    tx = c.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": iso(1)})
    c.clock.advance(600)
    boot16(c)
    closed = store.get_transaction("CP-1", str(tx["transactionId"]))
    assert closed is not None
    assert closed.closed_by_rule == REBOOT_REASON
    assert closed.stopped_at == T0 + timedelta(seconds=600)
    assert c.kinds()[-2:] == ["transaction.ended", "charger.booted"]


def test_meter_values_of_both_versions_are_stored_with_units_and_multipliers(store: Store) -> None:
    c16 = Charger(store, V16)
    boot16(c16)
    tx = c16.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": iso(0)})
    tx_id = str(tx["transactionId"])
    sampled = [
        {"value": "3.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "47", "measurand": "SoC", "unit": "Percent"},
    ]
    c16.call("MeterValues", {"connectorId": 1, "transactionId": int(tx_id), "meterValue": [
        {"timestamp": iso(5), "sampledValue": sampled}]})  # fmt: skip
    assert {(v.measurand, v.value, v.unit) for v in store.meter_values("CP-1", tx_id)} == {
        ("Energy.Active.Import.Register", 3.5, "kWh"),
        ("Power.Active.Import", 22000.0, "W"),
        ("SoC", 47.0, "Percent"),
    }
    (update,) = [e for e in c16.events if isinstance(e, TransactionUpdated)]
    assert (update.energy_wh, update.power_w, update.soc) == (2500.0, 22000.0, 47.0)

    c201 = Charger(store, V201, cid="CP-2")
    boot201(c201)
    c201.call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": iso(5), "sampledValue": [
        {"value": 7.2, "unitOfMeasure": {"unit": "kW", "multiplier": 0}, "measurand": "Power.Active.Import"},
        {"value": 12.0, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}}]}]})  # fmt: skip
    stored = store.query_messages("CP-2", action="MeterValues")
    assert stored, "the frame is in the message log"


def _event(seq: int, kind: str, minutes: float, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": iso(minutes),
        "triggerReason": "CablePluggedIn" if kind == "Started" else "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-1"},
        "evse": {"id": 1, "connectorId": 1},
    }
    if "energy" in extra:
        payload["meterValue"] = [{"timestamp": iso(minutes), "sampledValue": [{"value": extra.pop("energy")}]}]
    return payload | extra


def test_transaction_events_are_deduplicated_and_accepted_out_of_order(store: Store) -> None:
    c = Charger(store, V201)
    boot201(c)
    ended = _event(2, "Ended", 30, energy=9000.0, offline=True)
    ended["transactionInfo"] = {"transactionId": "TX-1", "stoppedReason": "EVDisconnected"}
    assert c.call("TransactionEvent", ended) == {}
    started = _event(0, "Started", 0, energy=1000.0, idToken={"idToken": "T", "type": "ISO14443"})
    assert c.call("TransactionEvent", started) == {"idTokenInfo": {"status": "Invalid"}}
    c.call("TransactionEvent", started)
    c.call("TransactionEvent", _event(1, "Updated", 10, energy=4000.0))
    c.call("TransactionEvent", _event(1, "Updated", 10, energy=4000.0))
    tx = store.get_transaction("CP-1", "TX-1")
    assert tx is not None
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.last_seq_no, tx.offline) == (1000.0, 9000.0, 2, True)
    assert [e.seq_no for e in store.transaction_events("CP-1", "TX-1")] == [0, 1, 2]
    assert c.kinds().count("transaction.started") == 1
    assert c.kinds().count("transaction.ended") == 1
    (update,) = [e for e in c.events if isinstance(e, TransactionUpdated)]
    assert (update.seq_no, update.energy_wh) == (1, 3000.0)
    started_event = next(e for e in c.events if isinstance(e, TransactionStarted))
    assert started_event.id_tag == "T"


def test_data_transfer_and_notifications_get_their_replies(store: Store) -> None:
    c = Charger(store, V16, CsmsConfig(accepted_data_transfer_vendors=frozenset({"com.acme"})))
    assert c.call("DataTransfer", {"vendorId": "com.acme", "data": "x"}) == {"status": "Accepted"}
    assert c.call("DataTransfer", {"vendorId": "com.other"}) == {"status": "UnknownVendorId"}
    assert c.call("FirmwareStatusNotification", {"status": "Installed"}) == {}
    assert c.call("DiagnosticsStatusNotification", {"status": "Uploaded"}) == {}
    c201 = Charger(store, V201, cid="CP-2")
    assert c201.call("LogStatusNotification", {"status": "Uploaded", "requestId": 1}) == {}
    assert c201.call("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": iso(0)}) == {}
    empty = {"generatedAt": iso(0), "seqNo": 0, "eventData": []}
    assert c201.send(json.dumps([2, "n0", "NotifyEvent", empty]))[0][2] == "OccurenceConstraintViolation"
    data = {"eventId": 1, "timestamp": iso(0), "trigger": "Alerting", "actualValue": "Faulted",
            "eventNotificationType": "HardWiredNotification", "component": {"name": "Connector"},
            "variable": {"name": "AvailabilityState"}}  # fmt: skip
    assert c201.call("NotifyEvent", empty | {"eventData": [data]}) == {}
    assert {m.action for m in store.query_messages("CP-2", limit=50)} >= {"LogStatusNotification", "NotifyEvent"}


def test_an_unparsable_timestamp_is_refused_instead_of_guessed(store: Store) -> None:
    c = Charger(store, V16)
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "yesterday"}
    (reply,) = c.send(json.dumps([2, "s1", "StartTransaction", start]))
    assert reply[:3] == [4, "s1", "PropertyConstraintViolation"]
    assert store.list_transactions("CP-1") == []


# -- routing: the ocpp library's route maps, one per version ----------------------------------

ROUTED_BY_BOTH = {
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "FirmwareStatusNotification",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "SecurityEventNotification",
    "StatusNotification",
}
ROUTED = {
    V16: ROUTED_BY_BOTH | {"DiagnosticsStatusNotification", "StartTransaction", "StopTransaction"},
    V201: ROUTED_BY_BOTH | {"NotifyEvent", "TransactionEvent"},
}
ACTIONS = {V16: Action16, V201: Action201}


@pytest.mark.parametrize("version", [V16, V201])
def test_each_version_routes_exactly_the_actions_its_session_supports(version: OcppVersion) -> None:
    routes = ROUTE_MAPS[version]
    assert set(routes) == ROUTED[version] == SUPPORTED_ACTIONS[version]
    assert all(type(action) is ACTIONS[version] for action in routes)
    for action, route in routes.items():
        assert route["_on_action"]._on_action is action
        assert route["_skip_schema_validation"] is False
        assert "_after_action" not in route


@pytest.mark.parametrize(
    ("version", "action"),
    [(V201, "StartTransaction"), (V201, "StopTransaction"), (V201, "DiagnosticsStatusNotification"),
     (V16, "TransactionEvent"), (V16, "NotifyEvent")],
)  # fmt: skip
def test_an_action_a_version_does_not_define_is_not_routed(store: Store, version: OcppVersion, action: str) -> None:
    assert action not in ROUTE_MAPS[version]
    assert action not in list(ACTIONS[version])
    c = Charger(store, version)
    (reply,) = c.send(json.dumps([2, "u1", action, {}]))
    assert reply[:3] == [4, "u1", "NotImplemented"]
    assert c.events == []


def test_a_call_that_reaches_no_route_is_answered_not_supported(store: Store) -> None:
    # decode answers these before they get here; the session still never raises for one.
    c = Charger(store, V16)
    (reply,) = (json.loads(text) for text in c.session.handle(Incoming("", T0, CallFrame("x1", "NotifyEvent", {}))))
    assert reply[:3] == [4, "x1", "NotSupported"]


def start16(c: Charger) -> dict[str, Any]:
    return c.call("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": iso(0)})


def stop16(c: Charger, tx: int, **extra: Any) -> dict[str, Any]:
    return c.call("StopTransaction", {"transactionId": tx, "meterStop": 10, "timestamp": iso(5)} | extra)


def tx_event(event_type: str, seq_no: int, **extra: Any) -> dict[str, Any]:
    return {"eventType": event_type, "timestamp": iso(seq_no), "triggerReason": "Authorized", "seqNo": seq_no,
            "transactionInfo": {"transactionId": "E1"}} | extra  # fmt: skip


def test_replies_built_from_call_result_dataclasses_are_the_dicts_the_session_answered_before(store: Store) -> None:
    now = "2025-03-01T06:00:00.000Z"
    c = Charger(store, V16, CsmsConfig(heartbeat_interval_s=300, id_tags=frozenset({"T"})))
    assert boot16(c) == {"currentTime": now, "interval": 300, "status": "Accepted"}
    assert c.call("Heartbeat", {}) == {"currentTime": now}
    assert c.call("Authorize", {"idTag": "T"}) == {"idTagInfo": {"status": "Accepted"}}
    assert c.call("Authorize", {"idTag": "X"}) == {"idTagInfo": {"status": "Invalid"}}
    tx = start16(c)
    assert tx == {"transactionId": tx["transactionId"], "idTagInfo": {"status": "Accepted"}}
    assert isinstance(tx["transactionId"], int)
    meter = {"timestamp": iso(1), "sampledValue": [{"value": "5"}]}
    assert c.call("MeterValues", {"connectorId": 1, "transactionId": tx["transactionId"], "meterValue": [meter]}) == {}
    assert c.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}) == {}
    assert stop16(c, tx["transactionId"]) == {}
    assert stop16(c, tx["transactionId"], idTag="T") == {"idTagInfo": {"status": "Accepted"}}

    pending = CsmsConfig(accept_unknown_chargers=False, boot_status_for_unknown="Pending", heartbeat_interval_s=45)
    assert boot16(Charger(store, V16, pending, cid="CP-P")) == {"currentTime": now, "interval": 45, "status": "Pending"}

    c201 = Charger(store, V201, CsmsConfig(id_tags=frozenset({"T"})), cid="CP-2")
    assert boot201(c201) == {"currentTime": now, "interval": 60, "status": "Accepted"}
    token = {"idToken": "T", "type": "ISO14443"}
    assert c201.call("Authorize", {"idToken": token}) == {"idTokenInfo": {"status": "Accepted"}}
    started = tx_event("Started", 0, idToken=token)
    assert c201.call("TransactionEvent", started) == {"idTokenInfo": {"status": "Accepted"}}
    assert c201.call("TransactionEvent", tx_event("Updated", 1)) == {}
