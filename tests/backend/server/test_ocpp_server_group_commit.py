"""The server's group commit end to end: real sockets on 127.0.0.1, a real SQLite store.

Messages that arrive while the store writer is busy are handled together and committed
once; no charger hears back before the commit holding its writes; a failed commit is
answered InternalError and leaves nothing behind; each charger's messages still apply in
the order it sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from live_depot import Depot, run
from websockets.asyncio.client import ClientConnection, connect
from writer_gate import Gate

from backend.events import TransactionEnded, TransactionStarted, TransactionUpdated

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def raw_charger(depot: Depot, charger_id: str) -> AsyncIterator[ClientConnection]:
    async with connect(depot.url(charger_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        yield ws


async def call(ws: ClientConnection, message_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps([2, message_id, action, payload]))
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=5))


async def boot_and_start(ws: ClientConnection) -> int:
    assert (await call(ws, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}))[2][
        "status"
    ] == "Accepted"
    start = {"connectorId": 1, "idTag": "FLEET1", "meterStart": 0, "timestamp": T0.isoformat()}
    return int((await call(ws, "s", "StartTransaction", start))[2]["transactionId"])


def meter_values(tx_id: int, n: int, wh: float) -> dict[str, Any]:
    sample = {"value": f"{wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    at = (T0 + timedelta(seconds=n)).isoformat()
    return {"connectorId": 1, "transactionId": tx_id, "meterValue": [{"timestamp": at, "sampledValue": [sample]}]}


async def until(condition: Any) -> None:
    """Wait for the server side to reach a state the client cannot await."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


def test_messages_queued_during_a_commit_are_answered_after_one_shared_commit(tmp_path: Path) -> None:
    names = [f"CP-{n}" for n in range(5)]

    async def scenario(depot: Depot) -> None:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(raw_charger(depot, name)) for name in names]
            for ws in sockets:
                await call(ws, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
            committer = depot.server.committer
            gate = Gate()
            held = committer.submit(gate)
            await asyncio.to_thread(gate.entered.wait, 10)
            groups = committer.groups
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": T0.isoformat()}
            for ws in sockets:
                await ws.send(json.dumps([2, "st", "StatusNotification", status]))
            replies = [asyncio.ensure_future(ws.recv()) for ws in sockets]
            await until(lambda: committer.pending() == len(sockets))
            await asyncio.sleep(0)
            assert not any(reply.done() for reply in replies)  # nobody hears back before the commit
            gate.release.set()
            await asyncio.wrap_future(held)
            answers = [json.loads(text) for text in await asyncio.gather(*replies)]
            assert answers == [[3, "st", {}]] * len(sockets)
            assert committer.groups == groups + 2  # the gate's group, then all five messages in one
            assert committer.largest_group >= len(sockets)
        assert [c.status for c in depot.store.list_connectors()] == ["Charging"] * len(names)

    run(tmp_path, scenario)


def test_a_message_whose_commit_fails_gets_internal_error_and_leaves_nothing(tmp_path: Path) -> None:
    async def scenario(depot: Depot) -> None:
        # A meter reading below zero now breaks a deferred constraint: its transaction runs
        # to the end and only the COMMIT fails, as a failing disk would make it.
        conn = sqlite3.connect(tmp_path / "csms.db", isolation_level=None)
        conn.executescript(
            "CREATE TABLE poison (charger_id TEXT REFERENCES chargers (charger_id) DEFERRABLE INITIALLY DEFERRED);"
            "CREATE TRIGGER poison_reading AFTER INSERT ON meter_values WHEN NEW.value < 0 "
            "BEGIN INSERT INTO poison VALUES ('no such charger'); END;"
        )
        conn.close()
        store: Any = depot.store
        with store._lock:  # SQLite checks foreign keys only on connections that ask for it
            store._conn.execute("PRAGMA foreign_keys = ON")
        async with raw_charger(depot, "CP-1") as ws:
            tx_id = await boot_and_start(ws)
            failed = await call(ws, "m1", "MeterValues", meter_values(tx_id, 1, -5))
            assert failed[:3] == [4, "m1", "InternalError"]
            assert depot.store.meter_values("CP-1", str(tx_id)) == []
            assert "transaction.updated" not in depot.kinds()
            # The session goes on: the next reading is stored and acknowledged.
            assert await call(ws, "m2", "MeterValues", meter_values(tx_id, 2, 500)) == [3, "m2", {}]
            assert [v.value for v in depot.store.meter_values("CP-1", str(tx_id))] == [500.0]
            await until(lambda: "transaction.updated" in depot.kinds())

    run(tmp_path, scenario)


def test_each_chargers_messages_apply_in_the_order_it_sent_them(tmp_path: Path) -> None:
    names = [f"CP-{n}" for n in range(4)]
    readings = 6

    async def one(depot: Depot, name: str) -> str:
        async with raw_charger(depot, name) as ws:
            tx_id = await boot_and_start(ws)
            for n in range(1, readings + 1):
                assert await call(ws, f"m{n}", "MeterValues", meter_values(tx_id, n, 100.0 * n)) == [3, f"m{n}", {}]
            stop = {
                "transactionId": tx_id,
                "meterStop": 100 * readings,
                "timestamp": (T0 + timedelta(minutes=1)).isoformat(),
            }
            assert (await call(ws, "stop", "StopTransaction", stop))[0] == 3
            return str(tx_id)

    async def scenario(depot: Depot) -> None:
        tx_ids = dict(zip(names, await asyncio.gather(*(one(depot, name) for name in names)), strict=True))
        await until(lambda: sum(isinstance(e, TransactionEnded) for e in depot.bus.recent()) == len(names))
        for name, tx_id in tx_ids.items():
            mine = [e for e in depot.bus.recent() if getattr(e, "charger_id", None) == name]
            flow = [e for e in mine if isinstance(e, TransactionStarted | TransactionUpdated | TransactionEnded)]
            assert isinstance(flow[0], TransactionStarted)
            assert isinstance(flow[-1], TransactionEnded)
            updates = [e for e in flow if isinstance(e, TransactionUpdated)]
            assert [u.seq_no for u in updates] == list(range(1, readings + 1))
            assert [u.energy_wh for u in updates] == [100.0 * n for n in range(1, readings + 1)]
            tx = depot.store.get_transaction(name, tx_id)
            assert tx is not None
            assert tx.meter_stop_wh == 100.0 * readings
            assert len(depot.store.meter_values(name, tx_id)) == readings

    run(tmp_path, scenario, timeout=20.0)
