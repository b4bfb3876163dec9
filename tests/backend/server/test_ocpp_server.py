"""The OCPP websocket server end to end: real sockets on 127.0.0.1, the ``ocpp`` library's clients.

Each test starts an :class:`OcppServer` on port 0 with an SQLite store in tmp_path and an
InMemoryBus, and talks to it as a 1.6 or 2.0.1 charger (``ocpp.v16`` / ``ocpp.v201``
ChargePoint) or, for frames the library would never send, as a raw websocket client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from live_depot import Depot, run
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend.csms import CsmsConfig

NOW = datetime(2025, 3, 1, 6, 0, tzinfo=UTC).isoformat()


@contextlib.asynccontextmanager
async def charger(depot: Depot, charger_id: str, version: str = "1.6") -> AsyncIterator[Any]:
    """An ``ocpp`` library ChargePoint connected to the depot, its reader task running."""
    protocol, cls = ("ocpp1.6", ChargePoint16) if version == "1.6" else ("ocpp2.0.1", ChargePoint201)
    async with connect(depot.url(charger_id), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        cp = cls(charger_id, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            await ws.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def raw_call(ws: ClientConnection, text: str) -> list[Any]:
    await ws.send(text)
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server side to catch up with something the client cannot await."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


def boot16() -> call16.BootNotification:
    return call16.BootNotification(charge_point_model="DC150", charge_point_vendor="ACME")


def boot201() -> call201.BootNotification:
    return call201.BootNotification(charging_station={"vendor_name": "ACME", "model": "X"}, reason="PowerUp")


def test_16_boot_heartbeat_status_and_authorize(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with charger(depot, "CP-16") as cp:
            boot = await cp.call(boot16())
            assert (boot.status, boot.interval) == ("Accepted", 60)
            assert (await cp.call(call16.Heartbeat())).current_time
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
            allowed = await cp.call(call16.Authorize(id_tag="FLEET1"))
            denied = await cp.call(call16.Authorize(id_tag="STRANGER"))
            assert (allowed.id_tag_info["status"], denied.id_tag_info["status"]) == ("Accepted", "Invalid")
        (connector,) = depot.store.list_connectors("CP-16")
        assert connector.status == "Preparing"
        await until(lambda: "charger.offline" in depot.kinds())
        kinds = depot.kinds()
        assert kinds[:3] == ["charger.online", "charger.booted", "connector.status_changed"]
        charger_record = depot.store.get_charger("CP-16")
        assert charger_record is not None
        assert not charger_record.online

    run(tmp_path, scenario, config=CsmsConfig(id_tags=frozenset({"FLEET1"})))


def test_unknown_charger_is_rejected_when_unknown_chargers_are_refused(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with charger(depot, "CP-X", "2.0.1") as cp:
            assert (await cp.call(boot201())).status == "Rejected"

    run(tmp_path, scenario, config=CsmsConfig(accept_unknown_chargers=False))


def test_16_start_repeated_after_reconnect_gets_the_same_id_and_stop_is_stored(tmp_path: Path) -> None:
    start = call16.StartTransaction(connector_id=1, id_tag="FLEET1", meter_start=1000, timestamp=NOW)

    async def scenario(depot: Depot) -> None:
        async with charger(depot, "CP-16") as cp:
            await cp.call(boot16())
            first = await cp.call(start)
            assert first.id_tag_info["status"] == "Accepted"
            sampled = [{"value": "5000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=first.transaction_id,
                    meter_value=[{"timestamp": NOW, "sampled_value": sampled}],
                )
            )
        async with charger(depot, "CP-16") as cp:
            again = await cp.call(start)
            assert again.transaction_id == first.transaction_id
            await cp.call(call16.StopTransaction(meter_stop=9000, timestamp=NOW, transaction_id=first.transaction_id))
        tx = depot.store.get_transaction("CP-16", str(first.transaction_id))
        assert tx is not None
        assert tx.energy_wh == 8000.0
        assert [v.value for v in depot.store.meter_values("CP-16", tx.tx_id)] == [5000.0]
        assert depot.kinds().count("transaction.started") == 1
        assert "transaction.ended" in depot.kinds()

    run(tmp_path, scenario, config=CsmsConfig(id_tags=frozenset({"FLEET1"})))


def test_201_transaction_events_with_duplicates_and_out_of_order(tmp_path: Path) -> None:
    def event(seq: int, kind: str, energy: float) -> call201.TransactionEvent:
        return call201.TransactionEvent(
            event_type=kind,
            timestamp=NOW,
            trigger_reason="MeterValuePeriodic",
            seq_no=seq,
            transaction_info={"transaction_id": "TX-9"},
            evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": NOW, "sampled_value": [{"value": energy}]}],
        )

    async def scenario(depot: Depot) -> None:
        async with charger(depot, "CP-201", "2.0.1") as cp:
            assert (await cp.call(boot201())).status == "Accepted"
            await cp.call(
                call201.StatusNotification(timestamp=NOW, connector_status="Occupied", evse_id=1, connector_id=1)
            )
            for seq, kind, energy in [(1, "Updated", 2000.0), (0, "Started", 1000.0), (1, "Updated", 2000.0)]:
                assert await cp.call(event(seq, kind, energy)) is not None
            await cp.call(event(2, "Ended", 3000.0))
            await cp.call(event(2, "Ended", 3000.0))
        tx = depot.store.get_transaction("CP-201", "TX-9")
        assert tx is not None
        assert (tx.meter_start_wh, tx.meter_stop_wh, tx.last_seq_no) == (1000.0, 3000.0, 2)
        assert [e.seq_no for e in depot.store.transaction_events("CP-201", "TX-9")] == [0, 1, 2]
        assert depot.kinds().count("transaction.ended") == 1
        (connector,) = depot.store.list_connectors("CP-201")
        assert (connector.evse_id, connector.status) == (1, "Occupied")

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("protocol", "malformed_code"), [("ocpp1.6", "FormationViolation"), ("ocpp2.0.1", "RpcFrameworkError")]
)
def test_bad_frames_get_callerrors_and_the_connection_goes_on(
    tmp_path: Path, protocol: str, malformed_code: str
) -> None:
    async def scenario(depot: Depot) -> None:
        async with connect(depot.url("CP-RAW"), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            broken = await raw_call(ws, '[2, "a1", "Heartbeat", {')
            assert broken[:3] == [4, "-1", malformed_code]
            assert (await raw_call(ws, '[2, "a2", "TeleportVehicle", {}]'))[:3] == [4, "a2", "NotImplemented"]
            reply = await raw_call(ws, '[2, "a3", "Heartbeat", {}]')
            assert reply[:2] == [3, "a3"]
            assert "currentTime" in reply[2]

    run(tmp_path, scenario)


def test_wrong_subprotocol_or_path_is_refused_before_the_handshake(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        with pytest.raises(InvalidStatus) as refused:
            await connect(depot.url("CP-1"), subprotocols=["ocpp1.5"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 400
        assert b"ocpp1.6" in refused.value.response.body
        with pytest.raises(InvalidStatus) as missing:
            await connect(depot.url("CP-1"))
        assert missing.value.response.status_code == 400
        wrong_path = f"ws://127.0.0.1:{depot.server.port}/chargers/CP-1"
        with pytest.raises(InvalidStatus) as not_found:
            await connect(wrong_path, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        assert not_found.value.response.status_code == 404

    run(tmp_path, scenario)


def test_second_connection_with_the_same_id_replaces_the_first(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with connect(depot.url("CP-1"), subprotocols=["ocpp1.6"]) as first:  # type: ignore[list-item]
            await raw_call(
                first, json.dumps([2, "b1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}])
            )
            async with charger(depot, "CP-1") as second:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(first.recv(), timeout=5)
                assert first.close_code == 1000
                assert (await second.call(call16.Heartbeat())).current_time
                assert depot.server.connected_chargers() == ["CP-1"]
                charger_record = depot.store.get_charger("CP-1")
                assert charger_record is not None
                assert charger_record.online
                assert depot.kinds().count("charger.offline") == 0
        await until(lambda: depot.server.connected_chargers() == [])

    run(tmp_path, scenario)
