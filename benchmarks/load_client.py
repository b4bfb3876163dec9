"""Load generator for ``benchmarks/backend_load.py``: many OCPP 1.6J chargers in one asyncio process.

Run by ``backend_load.py`` as a separate process, so that its CPU is not counted as the
server's; prints one JSON line with its measurements on stdout. It speaks OCPP-J frames
directly over a bare ``websockets`` client instead of the ``ocpp`` library: the library's
per-call schema validation would make the generator, not the server, the bottleneck on a
2-core machine. Each charger keeps at most one CALL in flight (as OCPP-J requires), so a
round trip is simply send -> matching CALLRESULT.

Scenarios:

* ``spread``: every charger sends one message a second (MeterValues or Heartbeat, half
  each at random) at its own random phase within the second.
* ``aligned``: every charger sends MeterValues on the same wall-clock second boundary
  (clock-aligned sampling, the worst case for a depot's meters).
* ``reconnect``: every charger connects and boots once (registering it), all close,
  then all reconnect at the same moment and boot; reports the time until the last one
  is Accepted.

Everything targets 127.0.0.1 and is bounded by ``--seconds`` and a hard deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
CONNECT_CONCURRENCY = 200
"""Connections opened at once during setup: setup is not what (a) and (b) measure."""
CALL_TIMEOUT_S = 30.0
SETUP_LIMIT_S = 120.0
"""Setup boots are paced by the server's admission control (Pending + interval): bounded here."""


def raise_fd_limit(needed: int) -> None:
    """Raise the soft open-file limit towards ``needed``: 2,000 sockets exceed the common 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Stats:
    """Round trips of the measured window (ms), and what went wrong."""

    rtt_ms: list[float] = field(default_factory=list)
    errors: int = 0
    missed_ticks: int = 0
    """Send times skipped because the previous call of that charger was still out."""


class Charger:
    """One simulated 1.6 charger on one websocket."""

    def __init__(self, port: int, charger_id: str) -> None:
        self.url = f"ws://{HOST}:{port}/ocpp/{charger_id}"
        self.ws: ClientConnection | None = None
        self.ids = itertools.count(1)
        self.tx_id: int | None = None
        self.pending = 0
        """BootNotifications answered Pending (admission control pacing a storm)."""

    async def open(self, timeout: float) -> None:
        self.ws = await connect(
            self.url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ping_interval=None,
            open_timeout=timeout,
            compression=None,
        )

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        """Send a CALL and return the CALLRESULT payload; raises on a CALLERROR or timeout."""
        assert self.ws is not None
        message_id = str(next(self.ids))
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), CALL_TIMEOUT_S))
            if reply[1] != message_id:
                continue  # a CALL from the server: never sent in these runs, ignored
            if reply[0] != 3:
                raise RuntimeError(f"{action}: {reply}")
            return reply[2]

    async def boot(self, deadline: float) -> str:
        """BootNotification until Accepted, Rejected or ``deadline``; Pending waits ``interval`` and retries.

        A 1.6 charger answered Pending stays connected and boots again after the interval
        (the server paces reconnect storms this way), so the generator does the same.
        """
        while True:
            reply = await self.call("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "DC150"})
            status = str(reply["status"])
            if status != "Pending":
                return status
            self.pending += 1
            wait = float(reply.get("interval") or 1)
            if time.monotonic() + wait > deadline:
                return status
            await asyncio.sleep(wait)

    async def start_transaction(self) -> None:
        payload = {"connectorId": 1, "idTag": "FLEET1", "meterStart": 0, "timestamp": now_iso()}
        self.tx_id = int((await self.call("StartTransaction", payload))["transactionId"])

    def meter_values(self, wh: float) -> dict[str, Any]:
        sample = {"value": f"{wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        return {
            "connectorId": 1,
            "transactionId": self.tx_id,
            "meterValue": [{"timestamp": now_iso(), "sampledValue": [sample]}],
        }

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def setup(chargers: list[Charger], transactions: bool, limit_s: float) -> int:
    """Connect, boot and (optionally) start a transaction on every charger; returns how many made it."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    deadline = time.monotonic() + limit_s
    failures: dict[str, int] = {}

    async def one(cp: Charger) -> bool:
        async with gate:
            try:
                await cp.open(30)
                status = await cp.boot(deadline)
                if status != "Accepted":
                    failures[f"boot {status}"] = failures.get(f"boot {status}", 0) + 1
                    return False
                if transactions:
                    await cp.start_transaction()
                return True
            except Exception as exc:
                failures[repr(exc)[:80]] = failures.get(repr(exc)[:80], 0) + 1
                return False

    ready = sum(await asyncio.gather(*(one(cp) for cp in chargers)))
    if failures:
        print(f"setup failures: {failures}", file=sys.stderr)
    return ready


async def steady(chargers: list[Charger], seconds: float, aligned: bool, seed: int) -> tuple[Stats, float, float]:
    """Each charger sends one message a second for ``seconds``; returns stats and the window."""
    rng = random.Random(seed)
    stats = Stats()
    # Start on a whole wall-clock second, two seconds ahead, so every charger is ready.
    wall_start = float(int(time.time()) + 2)
    mono_start = time.monotonic() + (wall_start - time.time())
    end = mono_start + seconds

    async def run(cp: Charger, phase: float, kinds: random.Random) -> None:
        tick = mono_start + phase
        wh = 0.0
        while tick < end:
            delay = tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            meter = aligned or kinds.random() < 0.5
            wh += 100.0
            sent = time.perf_counter()
            try:
                if meter:
                    await cp.call("MeterValues", cp.meter_values(wh))
                else:
                    await cp.call("Heartbeat", {})
            except Exception:
                stats.errors += 1
                return
            stats.rtt_ms.append((time.perf_counter() - sent) * 1000)
            tick += 1.0
            behind = time.monotonic() - tick
            if behind > 0:  # the reply took more than a second: skip the ticks already past
                skipped = int(behind) + 1
                stats.missed_ticks += skipped
                tick += skipped

    tasks = [
        run(cp, 0.0 if aligned else rng.random(), random.Random(rng.random())) for cp in chargers if cp.ws is not None
    ]
    await asyncio.gather(*tasks)
    # Ticks fall in [start, start + seconds): the rate is over that window, not over the last reply.
    return stats, mono_start, max(end, time.monotonic())


async def reconnect_storm(chargers: list[Charger], limit_s: float) -> dict[str, Any]:
    """All chargers close, then reconnect and boot at once; time until the last is Accepted."""
    await asyncio.gather(*(cp.close() for cp in chargers))
    # Let the server finish the disconnects, and its admission bucket refill (50/s, burst 100
    # by default), as after an outage: the storm then meets a rested server.
    await asyncio.sleep(3.0)
    for cp in chargers:
        cp.pending = 0
    started = time.monotonic()
    deadline = started + limit_s
    latencies: list[float] = []
    failures = 0

    async def one(cp: Charger) -> None:
        nonlocal failures
        attempt_started = time.monotonic()
        while time.monotonic() < deadline:
            try:
                await cp.open(max(0.1, deadline - time.monotonic()))
                if await cp.boot(deadline) == "Accepted":
                    latencies.append((time.monotonic() - attempt_started) * 1000)
                    return
            except Exception:
                await cp.close()
                await asyncio.sleep(0.5 + random.random())  # a charger's back-off, with jitter
        failures += 1

    await asyncio.gather(*(one(cp) for cp in chargers))
    return {
        "all_accepted_s": (time.monotonic() - started) if not failures else None,
        "pending_answers": sum(cp.pending for cp in chargers),
        "accepted": len(latencies),
        "failed": failures,
        "rtt_ms": summarize(latencies),
        "window": [started, time.monotonic()],
    }


def summarize(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pct(0.50), "p99": pct(0.99), "max": ordered[-1]}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit(args.chargers + 256)
    chargers = [Charger(args.port, f"{args.prefix}-{i:05d}") for i in range(args.chargers)]
    setup_started = time.monotonic()
    ready = await setup(chargers, transactions=args.scenario != "reconnect", limit_s=SETUP_LIMIT_S)
    result: dict[str, Any] = {
        "scenario": args.scenario,
        "chargers": args.chargers,
        "ready": ready,
        "setup_s": time.monotonic() - setup_started,
    }
    try:
        if args.scenario == "reconnect":
            result |= await reconnect_storm(chargers, args.seconds)
        else:
            stats, start, end = await steady(chargers, args.seconds, args.scenario == "aligned", args.seed)
            result |= {
                "window": [start, end],
                "calls": len(stats.rtt_ms),
                "msgs_per_s": len(stats.rtt_ms) / (end - start),
                "errors": stats.errors,
                "missed_ticks": stats.missed_ticks,
                "rtt_ms": summarize(stats.rtt_ms),
            }
    finally:
        await asyncio.gather(*(cp.close() for cp in chargers), return_exceptions=True)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["spread", "aligned", "reconnect"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window, or the storm's time limit")
    parser.add_argument("--prefix", default="LOAD")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    cli_args = parse_args()
    hard_limit = cli_args.seconds + SETUP_LIMIT_S + 120  # setup plus window plus teardown, whatever happens
    print(json.dumps(asyncio.run(asyncio.wait_for(main(cli_args), hard_limit))), flush=True)
