"""Microseconds per ``allocate()`` call for each built-in strategy.

The simulator calls ``allocate()`` on every event, so its cost times a few hundred
thousand calls is a floor on the runtime of a simulated year. Run with
``python benchmarks/allocation_speed.py``; it takes well under 30 s.

The depots are random but seeded: chargers with two connectors each (one capacity
group per charger), one power cabinet per two chargers (so per four sessions two
charger groups and one cabinet), a grid limit at half the summed connector power so
the grid binds, hourly day/night tariffs, and 20 % of sessions without a departure.
"""

from __future__ import annotations

import random
import time

from backend.charging.allocation import (
    CapacityGroup,
    SessionNeed,
    SiteSnapshot,
    allocate,
    strategy_names,
)

NOW = 1_700_000_000.0
SIZES = (10, 50, 250)
SNAPSHOTS = 20  # distinct random depots per size, cycled through
SECONDS_PER_CASE = 0.3


def depot(n: int, rng: random.Random) -> tuple[SiteSnapshot, tuple[SessionNeed, ...]]:
    """One random depot snapshot with ``n`` plugged-in sessions."""
    chargers = (n + 1) // 2
    cabinets = (chargers + 1) // 2
    groups = [CapacityGroup(f"charger{c}", rng.choice((50.0, 150.0))) for c in range(chargers)]
    groups += [CapacityGroup(f"cabinet{c}", rng.choice((150.0, 300.0))) for c in range(cabinets)]
    needs = []
    for i in range(n):
        charger = i // 2
        max_kw = rng.choice((11.0, 22.0, 50.0, 150.0)) * rng.uniform(0.5, 1.0)
        energy = rng.choice((0.0, rng.uniform(5.0, 300.0), rng.uniform(5.0, 300.0)))
        departure = None if rng.random() < 0.2 else NOW + rng.uniform(0.5, 16.0) * 3600.0
        needs.append(
            SessionNeed(
                session_id=f"bus{i:03d}",
                max_kw=max_kw,
                efficiency=rng.uniform(0.9, 0.97),
                energy_kwh=energy,
                departure_s=departure,
                hours_to_target=energy / max_kw * 1.1,
                groups=(charger, chargers + charger // 2),
            )
        )
    prices = tuple(
        (NOW - 1800.0 + h * 3600.0, 0.12 if (h + 2) % 24 < 7 else rng.choice((0.25, 0.3))) for h in range(72)
    )
    grid_kw = 0.5 * sum(need.max_kw for need in needs)
    return SiteSnapshot(grid_kw=grid_kw, groups=tuple(groups), prices=prices), tuple(needs)


def time_per_call(name: str, cases: list[tuple[SiteSnapshot, tuple[SessionNeed, ...]]]) -> float:
    """Mean seconds per allocate() call, running for about SECONDS_PER_CASE."""
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < SECONDS_PER_CASE:
        for site, needs in cases:
            allocate(name, site, needs, NOW)
        calls += len(cases)
        elapsed = time.perf_counter() - start
    return elapsed / calls


def main() -> None:
    """Print a table of microseconds per call, strategies by session counts."""
    rng = random.Random(20240601)
    cases = {n: [depot(n, rng) for _ in range(SNAPSHOTS)] for n in SIZES}
    print(f"{'strategy':<26}" + "".join(f"{n:>10} sess" for n in SIZES) + "   (us per call)")
    for name in strategy_names():
        row = [time_per_call(name, cases[n]) * 1e6 for n in SIZES]
        print(f"{name:<26}" + "".join(f"{us:>15.1f}" for us in row))


if __name__ == "__main__":
    main()
