"""Boot admission under a reconnect storm: the bucket alone on a ManualClock, then real sockets.

The sans-I/O tests drive :class:`backend.csms.admission.BootAdmission` directly (and
through a :class:`ChargePointSession`) with a :class:`sim.clock.ManualClock`; the last
test storms a real :class:`OcppServer` with concurrent ``ocpp`` 1.6 clients that retry
at the interval they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend.bus import InMemoryBus
from backend.csms import ChargePointSession, CsmsConfig, CsmsConfigError
from backend.csms.admission import BootAdmission
from backend.server import OcppServer
from backend.store import open_store
from sim.clock import ManualClock

START = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def storm(admission: BootAdmission, clock: ManualClock, chargers: int, step_s: float = 0.05) -> list[float]:
    """Every charger boots at once and retries at its interval; the seconds at which each was admitted."""
    queue = [(0.0, i) for i in range(chargers)]
    admitted_at: list[float] = []
    elapsed = 0.0
    while queue:
        at, i = heapq.heappop(queue)
        if at > elapsed:
            clock.advance(at - elapsed)
            elapsed = at
        answer = admission.admit(f"CP-{i}", clock.now())
        if answer.admitted:
            admitted_at.append(elapsed)
        else:
            heapq.heappush(queue, (elapsed + answer.retry_after_s, i))
        assert elapsed < 3600, "the storm never settled"
    return admitted_at


def test_a_storm_is_admitted_at_no_more_than_burst_plus_rate_times_elapsed() -> None:
    clock = ManualClock(START)
    admission = BootAdmission(rate_per_s=50, burst=100, jitter_s=5, seed=1)
    admitted_at = storm(admission, clock, 2000)
    assert len(admitted_at) == 2000
    assert admission.pending() == 0
    for n, at in enumerate(sorted(admitted_at), start=1):
        assert n <= 100 + 50 * at + 1e-9
    # Paced, not starved: the last one is in well before a naive 1-per-interval retry would be.
    assert max(admitted_at) <= 2000 / 50 + 5 + 1


def test_pending_intervals_are_spread_by_the_jitter_and_grow_with_the_queue() -> None:
    clock = ManualClock(START)
    admission = BootAdmission(rate_per_s=10, burst=5, jitter_s=10, seed=7)
    answers = [admission.admit(f"CP-{i}", clock.now()) for i in range(105)]
    assert all(a.admitted for a in answers[:5])
    intervals = [a.retry_after_s for a in answers[5:]]
    assert not any(a.admitted for a in answers[5:])
    assert all(i >= 1 for i in intervals)
    assert len(set(intervals)) >= 10, "the jitter should spread the retries"
    # The 100th in the queue waits at least its place (10 s at 10/s), at most place + jitter.
    assert 10 <= intervals[-1] <= 10 + 10 + 1


def test_a_charger_back_early_keeps_its_place_and_one_back_on_time_is_admitted() -> None:
    clock = ManualClock(START)
    admission = BootAdmission(rate_per_s=1, burst=1, jitter_s=0, seed=0)
    assert admission.admit("A", clock.now()).admitted
    first = admission.admit("B", clock.now())
    assert (first.admitted, first.retry_after_s) == (False, 1)
    clock.advance(0.5)
    assert admission.admit("B", clock.now()) == first  # early: Pending again, same slot
    clock.advance(0.5)
    assert admission.admit("B", clock.now()).admitted
    assert admission.pending() == 0


def test_a_reservation_its_charger_never_claims_expires() -> None:
    clock = ManualClock(START)
    admission = BootAdmission(rate_per_s=1, burst=1, jitter_s=0)
    admission.admit("A", clock.now())
    assert not admission.admit("GONE", clock.now()).admitted
    clock.advance(120)
    admission.admit("C", clock.now())
    assert admission.pending() == 0


def test_the_session_answers_pending_with_the_admission_interval_and_rejects_without_a_token(tmp_path: Path) -> None:
    clock = ManualClock(START)
    config = CsmsConfig(
        accept_unknown_chargers=False,
        known_chargers=frozenset({"A", "B"}),
        boot_admission_rate_per_s=1,
        boot_admission_burst=1,
        pending_retry_jitter_s=0,
    )
    admission = BootAdmission.from_config(config)
    store = open_store(tmp_path / "csms.db")
    try:
        replies = []
        for charger_id in ("A", "B", "STRANGER"):
            session = ChargePointSession(charger_id, "ocpp1.6", store, lambda _e: None, clock, config, admission)
            boot = {"chargePointVendor": "ACME", "chargePointModel": "DC150"}
            (reply,) = session.receive(json.dumps([2, f"boot-{charger_id}", "BootNotification", boot]))
            replies.append(json.loads(reply)[2])
    finally:
        store.close()
    assert (replies[0]["status"], replies[0]["interval"]) == ("Accepted", 60)
    assert (replies[1]["status"], replies[1]["interval"]) == ("Pending", 1)
    # Rejected by the config: no token, no place in the queue.
    assert (replies[2]["status"], replies[2]["interval"]) == ("Rejected", 60)
    assert admission is not None
    assert admission.pending() == 1


def test_admission_can_be_turned_off_and_impossible_settings_are_refused() -> None:
    assert BootAdmission.from_config(CsmsConfig(boot_admission_rate_per_s=None)) is None
    with pytest.raises(CsmsConfigError, match="boot_admission_rate_per_s"):
        CsmsConfig(boot_admission_rate_per_s=0)
    with pytest.raises(CsmsConfigError, match="boot_admission_burst"):
        CsmsConfig(boot_admission_burst=0)
    with pytest.raises(CsmsConfigError, match="pending_retry_jitter_s"):
        CsmsConfig(pending_retry_jitter_s=-1)


def test_fifty_chargers_reconnecting_at_once_all_end_accepted_over_real_sockets(tmp_path: Path) -> None:
    config = CsmsConfig(boot_admission_rate_per_s=20, boot_admission_burst=10, pending_retry_jitter_s=0.5)

    async def one_charger(url: str, charger_id: str) -> list[str]:
        statuses: list[str] = []
        async with connect(f"{url}/{charger_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            cp = ChargePoint16(charger_id, ws, response_timeout=5)
            task = asyncio.create_task(cp.start())
            try:
                while True:
                    boot = await cp.call(
                        call16.BootNotification(charge_point_model="DC150", charge_point_vendor="ACME")
                    )
                    statuses.append(boot.status)
                    if boot.status == "Accepted":
                        return statuses
                    await asyncio.sleep(boot.interval)
            finally:
                await ws.close()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    async def main() -> list[list[str]]:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=100)
        server = OcppServer(store, bus, config)
        await server.start("127.0.0.1", 0)
        try:
            url = f"ws://127.0.0.1:{server.port}/ocpp"
            runs = [one_charger(url, f"CP-{i:02d}") for i in range(50)]
            return await asyncio.wait_for(asyncio.gather(*runs), timeout=10)
        finally:
            await server.stop()
            await bus.close()
            store.close()

    results = asyncio.run(main())
    assert all(statuses[-1] == "Accepted" for statuses in results)
    assert sum(statuses[0] == "Accepted" for statuses in results) <= 10 + 5  # the burst, plus refill meanwhile
    assert any("Pending" in statuses for statuses in results)
