"""Crash safety of ``depotsim serve``: SIGKILL mid-transaction, restart, and the charger carries on.

A real ``depotsim serve`` process (``python -m cli serve``) on a free 127.0.0.1 port, an
``ocpp`` library 1.6 ChargePoint as the charger. The server is killed with SIGKILL, so no
shutdown code runs: whatever survives is what the store had committed when it replied.
The charger then reconnects to the restarted server *without* booting again (a network
drop, not a reboot) and finishes the same transaction. The store is opened directly once
the server has stopped, so the assertions read the database, not the server's memory.

Both stores are covered: SQLite in tmp_path, and PostgreSQL in a fresh schema (selected
through the URL's ``options=-csearch_path``), like the store tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend.store import open_store

REPO = Path(__file__).resolve().parents[3]
PG_CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
CHARGER = "CP-CRASH"
T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
START_TIMEOUT_S = 8.0
"""Bounded wait for a server process to accept connections (imports take ~1-2 s)."""


def free_port() -> int:
    """A port that was free a moment ago; good enough on 127.0.0.1 for one test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``depotsim serve`` process; ``kill()`` is SIGKILL, ``stop()`` a clean SIGTERM."""

    def __init__(self, db: str, port: int, log: Path) -> None:
        self.db, self.port, self.log = db, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait (bounded) until the OCPP port accepts a TCP connection."""
        args = [sys.executable, "-m", "cli", "serve", "--ocpp-port", str(self.port), "--api-port", "0"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*args, "--db", self.db], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise AssertionError(f"server not listening within {START_TIMEOUT_S} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no handler, no finally block, no store.close() runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        """SIGTERM (the CLI's clean stop), SIGKILL if that takes more than 5 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.asynccontextmanager
async def charger(port: int) -> AsyncIterator[ChargePoint]:
    """A connected ``ocpp`` 1.6 ChargePoint; tolerates the server vanishing under it."""
    async with connect(f"ws://127.0.0.1:{port}/ocpp/{CHARGER}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = ChargePoint(CHARGER, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


def meter(tx_id: int, minutes: int, wh: float) -> call.MeterValues:
    stamp = (T0 + timedelta(minutes=minutes)).isoformat()
    sample = {"value": f"{wh:g}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return call.MeterValues(
        connector_id=1, transaction_id=tx_id, meter_value=[{"timestamp": stamp, "sampledValue": [sample]}]
    )


def start_tx() -> call.StartTransaction:
    """The same StartTransaction every time: a repeat must get the same transactionId back."""
    return call.StartTransaction(connector_id=1, id_tag="FLEET1", meter_start=1000, timestamp=T0.isoformat())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL the server processes share: an SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'd.db'}"
        return
    if os.environ.get("DEPOTSIM_SKIP_POSTGRES") == "1":
        pytest.skip("DEPOTSIM_SKIP_POSTGRES=1: PostgreSQL restart test skipped on request")
    base = None
    for url in PG_CANDIDATES:
        with contextlib.suppress(psycopg.Error), psycopg.connect(url, connect_timeout=5):
            base = url
            break
    if base is None:
        pytest.fail("PostgreSQL is not reachable (see tests/backend/store/test_store.py)", pytrace=False)
    schema = f"r_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_sigkill_mid_transaction_then_restart_continues_it(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    server = Server(db_url, port, tmp_path / "serve.log")
    started = time.monotonic()
    replies: dict[str, Any] = {}

    async def before_kill() -> None:
        async with charger(port) as cp:
            boot = await cp.call(call.BootNotification(charge_point_model="DC150", charge_point_vendor="ACME"))
            assert boot.status == "Accepted"
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            replies["start"] = await cp.call(start_tx())
            await cp.call(meter(replies["start"].transaction_id, 1, 1500))
            # The reply came back, so the reading is committed: kill now, mid-transaction.
            server.kill()

    async def after_restart() -> None:
        # A reconnect, not a reboot: no BootNotification, which would close the transaction.
        async with charger(port) as cp:
            again = await cp.call(start_tx())
            replies["again"] = again
            tx_id = replies["start"].transaction_id
            await cp.call(meter(tx_id, 2, 2500))
            stop = call.StopTransaction(
                meter_stop=3000, timestamp=(T0 + timedelta(minutes=3)).isoformat(), transaction_id=tx_id
            )
            await cp.call(stop)

    try:
        server.start()
        asyncio.run(asyncio.wait_for(before_kill(), timeout=8))
        assert server.proc is not None
        assert server.proc.returncode == -signal.SIGKILL
        server.start()
        asyncio.run(asyncio.wait_for(after_restart(), timeout=8))
    finally:
        server.stop()

    tx_id = replies["start"].transaction_id
    assert replies["again"].transaction_id == tx_id
    store = open_store(db_url)
    try:
        assert [c.charger_id for c in store.list_chargers()] == [CHARGER]
        (tx,) = store.list_transactions(CHARGER)
        assert tx.tx_id == str(tx_id)
        assert (tx.meter_start_wh, tx.meter_stop_wh) == (1000, 3000)
        assert (tx.started_at, tx.stopped_at) == (T0, T0 + timedelta(minutes=3))
        assert tx.closed_by_rule is None
        values = [(v.at, v.value) for v in store.meter_values(CHARGER, str(tx_id))]
        assert values == [(T0 + timedelta(minutes=1), 1500), (T0 + timedelta(minutes=2), 2500)]
    finally:
        store.close()
    assert time.monotonic() - started < 20
