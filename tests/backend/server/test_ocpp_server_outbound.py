"""Calls from the server to chargers, and liveness, end to end over real sockets on 127.0.0.1.

Chargers are the ``ocpp`` library's ChargePoint with handlers for the commands we send,
or raw websocket clients when a test needs a charger that stays silent, answers late or
is inspected frame by frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from live_depot import Depot, run
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from backend.csms.outbound import CallTimeoutError, ChargerCallError, ChargerNotConnectedError
from backend.ocpp.framing import PayloadError
from backend.server import ocpp_server as ocpp_server_module
from backend.store import Direction

BOOT16 = '[2, "boot-1", "BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "DC150"}]'


class Charger16(ChargePoint16):
    """A 1.6 charger that accepts the commands the tests send."""

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag: str, **_: Any) -> result16.RemoteStartTransaction:
        return result16.RemoteStartTransaction(status="Accepted" if id_tag == "FLEET1" else "Rejected")

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> result16.ChangeConfiguration:
        return result16.ChangeConfiguration(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **_: Any) -> result16.GetConfiguration:
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
        )

    @on("Reset")
    def on_reset(self, type: str) -> result16.Reset:
        return result16.Reset(status="Accepted")


class Charger201(ChargePoint201):
    """A 2.0.1 charging station that answers GetVariables and RequestStartTransaction."""

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]) -> result201.GetVariables:
        return result201.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "60",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in get_variable_data
            ]
        )

    @on("RequestStartTransaction")
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, **_: Any) -> Any:
        return result201.RequestStartTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def library_charger(depot: Depot, charger_id: str, version: str = "1.6") -> AsyncIterator[Any]:
    """An ``ocpp`` library charger, connected and registered, its reader task running."""
    protocol, cls = ("ocpp1.6", Charger16) if version == "1.6" else ("ocpp2.0.1", Charger201)
    async with connect(depot.url(charger_id), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        cp = cls(charger_id, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            await until(lambda: charger_id in depot.server.connected_chargers())
            yield cp
        finally:
            await ws.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


@contextlib.asynccontextmanager
async def raw_charger(depot: Depot, charger_id: str) -> AsyncIterator[ClientConnection]:
    """A 1.6 websocket that has booted and then does only what the test tells it to."""
    async with connect(depot.url(charger_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(BOOT16)
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        yield ws


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 3 s")


async def no_message(ws: ClientConnection, within: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), within)


def test_16_server_calls_get_the_chargers_answers(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with library_charger(depot, "CP-16"):
            call = depot.server.call
            assert await call("CP-16", "RemoteStartTransaction", {"idTag": "FLEET1", "connectorId": 1}) == {
                "status": "Accepted"
            }
            changed = await call("CP-16", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"})
            assert changed == {"status": "Accepted"}
            config = await call("CP-16", "GetConfiguration", {"key": ["HeartbeatInterval"]})
            assert config["configurationKey"] == [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
            assert await call("CP-16", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        frames = depot.store.query_messages("CP-16", action="Reset")
        assert [(f.direction, f.message_type) for f in frames] == [(Direction.OUT, 2)]
        answers = [
            f for f in depot.store.query_messages("CP-16") if f.direction is Direction.IN and f.message_type == 3
        ]
        assert len(answers) == 4

    run(tmp_path, scenario, timeout=5)


def test_201_server_calls_get_the_stations_answers(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with library_charger(depot, "CS-201", "2.0.1"):
            got = await depot.server.call(
                "CS-201",
                "GetVariables",
                {
                    "getVariableData": [
                        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
                    ]
                },
            )
            assert got["getVariableResult"][0]["attributeValue"] == "60"
            start = {"idToken": {"idToken": "FLEET1", "type": "Central"}, "remoteStartId": 1}
            assert (await depot.server.call("CS-201", "RequestStartTransaction", start))["status"] == "Accepted"

    run(tmp_path, scenario, timeout=5)


def test_a_callerror_is_raised_with_the_chargers_code_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with library_charger(depot, "CP-16") as cp:
            with pytest.raises(ChargerCallError) as caught:
                await depot.server.call("CP-16", "UnlockConnector", {"connectorId": 1})
            assert caught.value.code in {"NotImplemented", "NotSupported"}
            assert caught.value.action == "UnlockConnector"
            assert (await cp.call(call16.Heartbeat())).current_time
            assert await depot.server.call("CP-16", "Reset", {"type": "Hard"}) == {"status": "Accepted"}

    run(tmp_path, scenario, timeout=5)


def test_calls_to_an_absent_charger_or_with_a_broken_payload_send_nothing(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        with pytest.raises(ChargerNotConnectedError, match="CP-GONE"):
            await depot.server.call("CP-GONE", "Reset", {"type": "Soft"})
        async with raw_charger(depot, "CP-RAW") as ws:
            with pytest.raises(PayloadError):
                await depot.server.call("CP-RAW", "Reset", {"type": "Gentle"})
            await no_message(ws, 0.1)

    run(tmp_path, scenario, timeout=5)


def test_an_unanswered_call_times_out_and_its_late_reply_is_ignored(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-RAW") as ws:
            waiting = asyncio.create_task(depot.server.call("CP-RAW", "Reset", {"type": "Soft"}, timeout=0.5))
            first = json.loads(await ws.recv())
            with pytest.raises(CallTimeoutError) as caught:
                await waiting
            assert (caught.value.code, caught.value.message_id) == ("Timeout", first[1])
            await ws.send(json.dumps([3, first[1], {"status": "Accepted"}]))
            queue = depot.server.outbound_queue("CP-RAW")
            assert queue is not None
            await until(lambda: queue.late_replies == 1)
            # Still connected, and the next call works.
            again = asyncio.create_task(depot.server.call("CP-RAW", "Reset", {"type": "Soft"}, timeout=2))
            second = json.loads(await ws.recv())
            await ws.send(json.dumps([3, second[1], {"status": "Rejected"}]))
            assert await again == {"status": "Rejected"}
        await until(lambda: depot.offline_reasons("CP-RAW") == ["connection_closed"])

    run(tmp_path, scenario, timeout=5)


def test_two_concurrent_calls_to_one_charger_are_serialized(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-RAW") as ws:
            both = asyncio.gather(
                depot.server.call("CP-RAW", "Reset", {"type": "Soft"}),
                depot.server.call("CP-RAW", "ChangeConfiguration", {"key": "K", "value": "1"}),
            )
            first = json.loads(await ws.recv())
            assert first[2] == "Reset"
            await no_message(ws, 0.3)
            await ws.send(json.dumps([3, first[1], {"status": "Accepted"}]))
            second = json.loads(await ws.recv())
            assert second[2] == "ChangeConfiguration"
            await ws.send(json.dumps([3, second[1], {"status": "RebootRequired"}]))
            assert await both == [{"status": "Accepted"}, {"status": "RebootRequired"}]

    run(tmp_path, scenario, timeout=5)


def test_a_charger_calling_while_our_call_is_in_flight_is_answered(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-RAW") as ws:
            waiting = asyncio.create_task(depot.server.call("CP-RAW", "Reset", {"type": "Soft"}))
            ours = json.loads(await ws.recv())
            await ws.send('[2, "hb-1", "Heartbeat", {}]')
            heartbeat = json.loads(await ws.recv())
            assert heartbeat[:2] == [3, "hb-1"]
            await ws.send(json.dumps([3, ours[1], {"status": "Accepted"}]))
            assert await waiting == {"status": "Accepted"}

    run(tmp_path, scenario, timeout=5)


def test_the_watchdog_marks_a_silent_charger_offline(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-SILENT") as ws:
            record = depot.store.get_charger("CP-SILENT")
            assert record is not None
            assert record.online
            await until(lambda: depot.offline_reasons("CP-SILENT") == ["heartbeat_timeout"])
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 1)
            assert ws.close_code == 1001
        record = depot.store.get_charger("CP-SILENT")
        assert record is not None
        assert not record.online
        assert "CP-SILENT" not in depot.server.connected_chargers()

    run(tmp_path, scenario, timeout=5, offline_after_s=0.5, ping_interval_s=None)


def test_a_charger_that_keeps_talking_stays_online(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-CHATTY") as ws:
            for n in range(6):
                await asyncio.sleep(0.15)
                await ws.send(f'[2, "hb-{n}", "Heartbeat", {{}}]')
                assert json.loads(await ws.recv())[0] == 3
            assert depot.server.connected_chargers() == ["CP-CHATTY"]
        await until(lambda: depot.offline_reasons("CP-CHATTY") == ["connection_closed"])

    run(tmp_path, scenario, timeout=5, offline_after_s=0.5, ping_interval_s=None)


def test_a_missing_pong_marks_a_pinged_charger_offline_but_no_ping_chargers_are_never_pinged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A charger that stopped reading will not read our close frame either.
    monkeypatch.setattr(ocpp_server_module, "OFFLINE_CLOSE_TIMEOUT_S", 0.2)

    async def scenario(depot: Depot) -> None:
        async with raw_charger(depot, "CP-PINGED") as pinged, raw_charger(depot, "CP-NOPING") as quiet:
            # Neither reads its socket any more, so neither would answer a ping.
            pinged.transport.pause_reading()
            quiet.transport.pause_reading()
            await until(lambda: depot.offline_reasons("CP-PINGED") == ["ping_timeout"])
            await asyncio.sleep(0.3)
            assert depot.server.connected_chargers() == ["CP-NOPING"]
            quiet.transport.resume_reading()
            pinged.transport.resume_reading()

    run(
        tmp_path,
        scenario,
        ping_interval_s=0.1,
        ping_timeout_s=0.2,
        no_ping_chargers=frozenset({"CP-NOPING"}),
    )
