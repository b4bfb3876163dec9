"""Smart charging end to end: library chargers on real sockets get TxProfiles that keep the site in its limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend.bus import InMemoryBus
from backend.csms.smart_charging import ChargerSpec, SiteModel, SmartCharging
from backend.events import LimitsChanged
from backend.server import OcppServer
from backend.server.api import create_app
from backend.store import open_store
from sim.clock import WallClock

GRID_KW = 50.0


class LimitedCharger(ChargePoint16):
    """A 1.6 charger that accepts every charging profile and keeps the limits it was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits: list[float] = []
        self.profiles: list[dict[str, Any]] = []

    @on("SetChargingProfile")
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> result16.SetChargingProfile:
        self.profiles.append(cs_charging_profiles)
        period = cs_charging_profiles["charging_schedule"]["charging_schedule_period"][0]
        self.limits.append(float(period["limit"]))
        return result16.SetChargingProfile(status="Accepted")

    @property
    def limit(self) -> float | None:
        return self.limits[-1] if self.limits else None


@contextlib.asynccontextmanager
async def charger(server: OcppServer, charger_id: str) -> AsyncIterator[LimitedCharger]:
    url = f"ws://127.0.0.1:{server.port}/ocpp/{charger_id}"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = LimitedCharger(charger_id, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call16.BootNotification(charge_point_vendor="ACME", charge_point_model="DC150"))
            yield cp
        finally:
            await ws.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def start(cp: LimitedCharger) -> int:
    now = datetime.now(UTC).isoformat()
    answer = await cp.call(call16.StartTransaction(connector_id=1, id_tag="FLEET1", meter_start=0, timestamp=now))
    return int(answer.transaction_id)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_two_chargers_share_the_grid_and_one_gets_it_all_when_the_other_stops(tmp_path: Path) -> None:
    site = SiteModel(grid_kw=GRID_KW, default_charger=ChargerSpec(max_kw=150.0, efficiency=1.0))
    smart = SmartCharging(site, WallClock())

    async def main() -> dict[str, Any]:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=1000)
        server = OcppServer(store, bus, smart_charging=smart, ping_interval_s=None)
        await server.start("127.0.0.1", 0)
        try:
            async with charger(server, "CP-1") as cp1, charger(server, "CP-2") as cp2:
                tx1 = await start(cp1)
                await until(lambda: cp1.limit == GRID_KW * 1000)
                await start(cp2)
                await until(lambda: cp1.limit == 25000.0 and cp2.limit == 25000.0)
                assert cp1.limit is not None
                assert cp2.limit is not None
                assert cp1.limit + cp2.limit <= GRID_KW * 1000
                assert cp1.profiles[-1]["charging_profile_purpose"] == "TxProfile"
                assert cp1.profiles[-1]["transaction_id"] == tx1

                await server.profiles_sent()
                with TestClient(create_app(store, server)) as client:
                    response = await asyncio.to_thread(client.get, "/site")
                assert response.status_code == 200
                body = response.json()

                now = datetime.now(UTC).isoformat()
                await cp1.call(call16.StopTransaction(meter_stop=1000, timestamp=now, transaction_id=tx1))
                await until(lambda: cp2.limit == GRID_KW * 1000)
                await server.profiles_sent()
                assert len(cp1.limits) == 2  # nothing resent to the charger that stopped
            profiles = store.list_profiles()
            assert [p.result for p in profiles] == ["Accepted"] * len(profiles)
            assert json.loads(profiles[-1].profile)["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] == "W"
            changes = [e for e in bus.recent() if isinstance(e, LimitsChanged)]
            assert len(changes) == len(profiles)
            assert all(e.source == "smart_charging" and e.unit == "W" for e in changes)
            return body
        finally:
            await server.stop()
            await bus.close()
            store.close()

    body = asyncio.run(asyncio.wait_for(main(), timeout=10))
    assert body["grid_kw"] == GRID_KW
    assert body["strategy"] == "equal_share"
    assert sorted((a["charger_id"], a["limit_kw"], a["unit"], a["limit"]) for a in body["allocation"]) == [
        ("CP-1", 25.0, "W", 25000.0),
        ("CP-2", 25.0, "W", 25000.0),
    ]
    assert smart.current_allocation()[0].limit_kw == GRID_KW
