"""The server purges message log frames older than the retention, at start and periodically."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.bus import InMemoryBus
from backend.server import OcppServer
from backend.store import Direction, MessageLogEntry, Store, open_store
from sim.clock import ManualClock

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def frame(at: datetime, message_id: str) -> MessageLogEntry:
    return MessageLogEntry(
        charger_id="CP1",
        direction=Direction.IN,
        at=at,
        message_type=2,
        message_id=message_id,
        action="Heartbeat",
        payload=f'[2,"{message_id}","Heartbeat",{{}}]',
    )


def ids(store: Store) -> list[str | None]:
    return sorted(e.message_id for e in store.query_messages(limit=1000))


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_purges_at_start_and_every_interval(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=10)
        clock = ManualClock(T0)
        store.log_message(frame(T0 - timedelta(days=31), "old"))
        store.log_message(frame(T0 - timedelta(days=29), "recent"))
        store.log_message(frame(T0, "now"))
        server = OcppServer(store, bus, clock=clock, message_retention=timedelta(days=30), purge_interval_s=0.05)
        await server.start("127.0.0.1", 0)
        try:
            await eventually(lambda: ids(store) == ["now", "recent"])
            clock.advance(timedelta(days=2).total_seconds())
            await eventually(lambda: ids(store) == ["now"])
        finally:
            await server.stop()
            await bus.close()
            store.close()

    asyncio.run(main())


def test_no_retention_keeps_everything(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=10)
        store.log_message(frame(T0 - timedelta(days=3650), "ancient"))
        server = OcppServer(store, bus, clock=ManualClock(T0), purge_interval_s=0.01)
        await server.start("127.0.0.1", 0)
        try:
            assert await server.purge_messages() == 0
            await asyncio.sleep(0.05)
            assert ids(store) == ["ancient"]
        finally:
            await server.stop()
            await bus.close()
            store.close()

    asyncio.run(main())


def test_the_log_is_flushed_by_the_server_and_on_stop(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=10)
        server = OcppServer(store, bus, clock=ManualClock(T0), log_flush_interval_s=0.01)
        await server.start("127.0.0.1", 0)
        try:
            store.log_message(frame(T0, "a"))
            await eventually(lambda: store.pending_messages() == 0)  # type: ignore[attr-defined]
            store.log_message(frame(T0, "b"))
        finally:
            await server.stop()
        assert store.pending_messages() == 0  # type: ignore[attr-defined]
        await bus.close()
        store.close()

    asyncio.run(main())


@pytest.mark.parametrize("bad", [{"message_retention": timedelta(0)}, {"purge_interval_s": 0}])
def test_bad_settings_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    store = open_store(tmp_path / "csms.db")
    try:
        with pytest.raises(ValueError, match="must be positive"):
            OcppServer(store, InMemoryBus(history=10), **bad)  # type: ignore[arg-type]
    finally:
        store.close()
