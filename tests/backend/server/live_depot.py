"""A real OcppServer on 127.0.0.1 with a SQLite store and an in-memory bus, for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from backend.bus.memory import InMemoryBus
from backend.events import ChargerOffline
from backend.server.ocpp_server import OcppServer
from backend.store import Store, open_store


class Depot:
    """A running server with its store and bus."""

    def __init__(self, server: OcppServer, store: Store, bus: InMemoryBus) -> None:
        self.server, self.store, self.bus = server, store, bus

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ocpp/{charger_id}"

    def kinds(self) -> list[str]:
        return [event.kind for event in self.bus.recent()]

    def offline_reasons(self, charger_id: str) -> list[str]:
        return [e.reason for e in self.bus.recent() if isinstance(e, ChargerOffline) and e.charger_id == charger_id]


def run(tmp_path: Path, scenario: Callable[[Depot], Awaitable[None]], *, timeout: float = 10.0, **options: Any) -> None:
    """Start a server (``options`` go to OcppServer), run ``scenario`` against it, stop it."""

    async def main() -> None:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=1000)
        server = OcppServer(store, bus, **options)
        await server.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(scenario(Depot(server, store, bus)), timeout=timeout)
        finally:
            await server.stop()
            await bus.close()
            store.close()

    asyncio.run(main())
