"""Microseconds per ``allocate()`` call and per table-kernel call for each built-in strategy.

The simulator calls a strategy on every event, so its cost times a few hundred
thousand calls is a floor on the runtime of a simulated year. It calls the table
kernel (``get_table_strategy(name)(site, table, now)``) on its connector-slot arrays;
the live back end calls ``allocate()``, which also builds the table from
``SessionNeed`` objects. Run with ``python benchmarks/allocation_speed.py``; it takes
about 30 s. Each figure is the best of three rounds, which keeps other load on the
machine out of it.

The depots are random but seeded: chargers with two connectors each (one capacity
group per charger), one power cabinet per two chargers (so per four sessions two
charger groups and one cabinet), a grid limit at half the summed connector power so
the grid binds, hourly day/night tariffs, and 20 % of sessions without a departure.
About a third of the sessions need no more energy; in the tables those rows are idle
connector slots (``max_kw`` and ``energy_kwh`` 0, efficiency 1), as the simulator
passes them. The kernels are timed twice: on these depots, where a charger or cabinet
often can bind (the sequential fill runs), and with every group rated at its members'
summed maximum, where only the grid can bind (the vectorised path).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np

from backend.charging.allocation import (
    CapacityGroup,
    SessionNeed,
    SiteSnapshot,
    allocate,
    strategy_names,
)
from backend.charging.table import SessionTable, get_table_strategy

NOW = 1_700_000_000.0
SIZES = (10, 50, 250)
SNAPSHOTS = 20  # distinct random depots per size, cycled through
SECONDS_PER_CASE = 0.3
ROUNDS = 3


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


def slot_table(needs: tuple[SessionNeed, ...]) -> SessionTable:
    """The sessions as the simulator's connector-slot table: done sessions are idle slots."""
    table = SessionTable.from_needs(needs)
    idle = table.energy_kwh <= 0.0
    table.max_kw[idle] = 0.0
    table.energy_kwh[idle] = 0.0
    table.efficiency[idle] = 1.0
    table.departure_s[idle] = np.nan
    table.hours_to_target[idle] = 0.0
    return table


def loose(site: SiteSnapshot, needs: tuple[SessionNeed, ...]) -> SiteSnapshot:
    """The site with every group rated at its members' summed maximum, so none can bind."""
    summed = [0.0] * len(site.groups)
    for need in needs:
        for g in need.groups:
            summed[g] += need.max_kw
    groups = tuple(CapacityGroup(group.group_id, kw) for group, kw in zip(site.groups, summed, strict=True))
    return SiteSnapshot(site.grid_kw, groups, site.prices, site.preemption_margin_h)


def time_per_call(calls: list[Callable[[], object]]) -> float:
    """Seconds per call, best of ROUNDS rounds of about SECONDS_PER_CASE / ROUNDS each."""
    best = float("inf")
    for _ in range(ROUNDS):
        done = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < SECONDS_PER_CASE / ROUNDS:
            for call in calls:
                call()
            done += len(calls)
            elapsed = time.perf_counter() - start
        best = min(best, elapsed / done)
    return best


def allocate_calls(name: str, cases: list[tuple[SiteSnapshot, tuple[SessionNeed, ...]]]) -> list[Callable[[], object]]:
    return [lambda site=site, needs=needs: allocate(name, site, needs, NOW) for site, needs in cases]


def kernel_calls(name: str, cases: list[tuple[SiteSnapshot, SessionTable]]) -> list[Callable[[], object]]:
    kernel = get_table_strategy(name)
    assert kernel is not None, name
    return [lambda site=site, table=table: kernel(site, table, NOW) for site, table in cases]


def print_table(title: str, row_of: Callable[[str, int], list[Callable[[], object]]]) -> None:
    """One table of microseconds per call, strategies by session counts."""
    print(f"{title:<26}" + "".join(f"{n:>10} sess" for n in SIZES) + "   (us per call)")
    for name in strategy_names():
        row = [time_per_call(row_of(name, n)) * 1e6 for n in SIZES]
        print(f"{name:<26}" + "".join(f"{us:>15.1f}" for us in row))


def main() -> None:
    """Print microseconds per call: allocate(), then the table kernels on two kinds of depot."""
    rng = random.Random(20240601)
    cases = {n: [depot(n, rng) for _ in range(SNAPSHOTS)] for n in SIZES}
    tables = {n: [(site, slot_table(needs)) for site, needs in cases[n]] for n in SIZES}
    loose_tables = {n: [(loose(site, needs), slot_table(needs)) for site, needs in cases[n]] for n in SIZES}
    print_table("allocate()", lambda name, n: allocate_calls(name, cases[n]))
    print()
    print_table("kernel, groups can bind", lambda name, n: kernel_calls(name, tables[n]))
    print()
    print_table("kernel, only grid binds", lambda name, n: kernel_calls(name, loose_tables[n]))


if __name__ == "__main__":
    main()
