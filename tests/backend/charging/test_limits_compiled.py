"""The compiled allocation paths give the results of the numpy and list code they replaced.

``_limits`` used to run its fast paths (no group can bind) as numpy expressions and its
sequential fills on Python lists; ``least_laxity_first`` computed its key with numpy.
Those implementations are kept below, verbatim apart from names, as references, and
the compiled kernels must reproduce them to the bit on random tables: ties, infinite
and NaN keys, zero grids, grids that fit, single rows and idle rows.

One difference is allowed, and tested separately: the old equal-share water level
summed rows with equal ``max_kw`` in whatever order numpy's unstable ``argsort`` left
them (it depends on the CPU's sort routine), the compiled one in ``rank`` order. With
the reference's ties pinned to rank order the results are bit-identical; against the
unpinned reference they differ by summation order only, so within 1e-12 relative.
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import math
import subprocess
import sys
from collections.abc import Callable
from heapq import heapify, heappop, heappush

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SiteSnapshot
from backend.charging.strategies import _limits, fill_kernels, least_laxity_first
from backend.charging.strategies._limits import greedy_fill, grid_limit, wanted_kw, water_fill
from backend.charging.strategies.least_laxity_first import laxity_key
from backend.charging.table import FloatArray, SessionTable, group_caps

NOW = 1_700_000_000.0
H = 3600.0
_REL_TOL = 1e-12

# No deadline: the Python references, not the kernels, set the time of an example, and
# a loaded machine must not fail them.
COMPILED = settings(max_examples=200, deadline=None)
# Tables of up to 300 rows (numpy's summation blocks are 128, the sort's runs 16) are
# slow to draw; fewer of them suffice.
LARGE = settings(max_examples=40, deadline=None)


# --- references: the implementations the compiled kernels replaced -----------------


def reference_wanted_kw(table: SessionTable) -> FloatArray:
    return table.max_kw * (table.energy_kwh > 0.0)


def reference_greedy_fill(
    site: SiteSnapshot,
    table: SessionTable,
    priority: Callable[[], FloatArray],
    take: FloatArray,
    grid_kw: float,
) -> FloatArray:
    if reference_groups_can_bind(site, table, take):
        order = np.lexsort((table.rank, priority()))
        return np.array(reference_greedy_loop(site, table, take, order, grid_kw), dtype=np.float64)
    if grid_kw == math.inf:
        return take
    efficiency = table.efficiency
    grid_draw = take / efficiency
    if np.add.reduce(grid_draw) <= grid_kw:
        return take
    order = np.lexsort((table.rank, priority()))
    # Grid left before each row in priority order, subtracted in that order.
    left = np.empty(len(order) + 1)
    left[0] = grid_kw
    left[1:] = grid_draw[order]
    left = np.subtract.accumulate(left)
    room = left[:-1] * efficiency[order]
    binds = room <= take[order]
    first = int(binds.argmax())
    if not binds[first]:
        return take
    # The first row the grid stops gets what is left; nothing is left after it.
    take[order[first]] = max(float(room[first]), 0.0)
    take[order[first + 1 :]] = 0.0
    return take


def reference_water_fill(
    site: SiteSnapshot, table: SessionTable, take: FloatArray, grid_kw: float, pinned_ties: bool = False
) -> FloatArray:
    if reference_groups_can_bind(site, table, take):
        return np.array(reference_water_loop(site, table, take, grid_kw), dtype=np.float64)
    if grid_kw == math.inf:
        return take
    if np.add.reduce(take / table.efficiency) <= grid_kw:
        return take
    if grid_kw <= 0.0:
        return np.zeros(len(take))
    # the one change: with pinned_ties, equal maxima are in rank order, not as the CPU's sort leaves them
    by_max = np.lexsort((table.rank, take)) if pinned_ties else take.argsort()
    maxima = take[by_max]
    weight = 1.0 / table.efficiency[by_max]
    # Grid kW of the rows up to each position at their max, and their summed weights.
    # Idle rows sort first: the level found at their positions is above their maximum
    # of 0, and beyond them they cancel out of the differences.
    upto_kw = np.add.accumulate(maxima * weight)
    upto_weight = np.add.accumulate(weight)
    total_weight = float(upto_weight[-1])
    level = grid_kw / total_weight  # all rows rising together
    if level > maxima[0]:
        if len(maxima) == 1:
            return take  # the grid fits the one row after all (a rounding tie)
        # The level if the grid runs out while the rows above each position rise.
        levels = (grid_kw - upto_kw[:-1]) / (total_weight - upto_weight[:-1])
        reached = levels <= maxima[1:]
        first = int(reached.argmax())
        if not reached[first]:
            return take
        level = float(levels[first])
    return np.minimum(take, level)


def reference_groups_can_bind(site: SiteSnapshot, table: SessionTable, take: FloatArray) -> bool:
    caps = group_caps(site.groups)
    if not len(caps):
        return False
    demand = np.bincount(table.member_group, weights=take[table.member_row], minlength=len(caps))
    return int(np.count_nonzero(demand <= caps)) != len(caps)


def reference_groups_of(table: SessionTable) -> tuple[tuple[int, ...], ...]:
    # verbatim apart from the cache of the last result, which does not change it
    n = len(table.max_kw)
    lists: list[list[int]] = [[] for _ in range(n)]
    for i, g in zip(table.member_row.tolist(), table.member_group.tolist(), strict=True):
        lists[i].append(g)
    return tuple(map(tuple, lists))


def reference_greedy_loop(
    site: SiteSnapshot, table: SessionTable, wanted: FloatArray, order: npt.NDArray[np.intp], grid_kw: float
) -> list[float]:
    max_kw = wanted.tolist()
    efficiency = table.efficiency.tolist()
    groups_of = reference_groups_of(table)
    kw = [0.0] * len(max_kw)
    left = [group.max_kw for group in site.groups]
    grid_left = grid_kw
    for i in order.tolist():
        take = max_kw[i]
        if take <= 0.0:
            continue
        groups = groups_of[i]
        for g in groups:
            if left[g] < take:
                take = left[g]
        eff = efficiency[i]
        grid_binds = grid_left * eff <= take
        if grid_binds:
            take = grid_left * eff
        if take <= 0.0:
            continue
        kw[i] = take
        for g in groups:
            left[g] -= take
        # Zero a full grid outright: take / eff may not round back to grid_left.
        grid_left = 0.0 if grid_binds else grid_left - take / eff
    return kw


def reference_water_loop(site: SiteSnapshot, table: SessionTable, wanted: FloatArray, grid_kw: float) -> list[float]:
    # Group exhaustion levels only change when a member freezes, so they sit in a heap
    # and are updated lazily: a call costs O((rows + memberships) log groups) rather
    # than a pass over every group per event, which matters with hundreds of rows.
    max_kw = wanted.tolist()
    efficiency = table.efficiency.tolist()
    groups_of = reference_groups_of(table)
    n = len(max_kw)
    kw = [0.0] * n
    active = [i for i, m in enumerate(max_kw) if m > 0.0]
    if not active:
        return kw
    left = [group.max_kw if group.max_kw > 0.0 else 0.0 for group in site.groups]
    members: list[list[int]] = [[] for _ in left]
    demand = [0.0] * len(left)
    inv_eff = 0.0
    grid_demand = 0.0
    for i in active:
        for g in groups_of[i]:
            members[g].append(i)
            demand[g] += max_kw[i]
        inv_eff += 1.0 / efficiency[i]
        grid_demand += max_kw[i] / efficiency[i]
    # A group whose members' maxima fit can never bind; usually that is every charger.
    count = [len(m) if demand[g] > left[g] else 0 for g, m in enumerate(members)]
    grid_binds = grid_demand > grid_kw
    if not grid_binds and not any(count):
        for i in active:
            kw[i] = max_kw[i]
        return kw

    base = [0.0] * len(left)  # level at which left[g] was last brought up to date
    version = [0] * len(left)
    heap = [(left[g] / c, 0, g) for g, c in enumerate(count) if c]
    heapify(heap)
    by_max = sorted(active, key=max_kw.__getitem__)
    frozen = [True] * n
    for i in active:
        frozen[i] = False
    remaining = len(active)
    grid_left = grid_kw
    grid_base = 0.0
    level = 0.0
    pos = 0

    def freeze(i: int) -> None:
        nonlocal remaining, inv_eff, grid_left, grid_base
        kw[i] = max_kw[i] if max_kw[i] < level else level
        frozen[i] = True
        remaining -= 1
        for g in groups_of[i]:
            c = count[g]
            if c:
                left[g] -= (level - base[g]) * c
                base[g] = level
                count[g] = c = c - 1
                if c:
                    version[g] += 1
                    heappush(heap, (level + left[g] / c, version[g], g))
        if grid_binds:
            grid_left -= (level - grid_base) * inv_eff
            grid_base = level
            inv_eff -= 1.0 / efficiency[i]

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        target = max_kw[by_max[pos]]
        while heap and (heap[0][1] != version[heap[0][2]] or not count[heap[0][2]]):
            heappop(heap)
        if heap and heap[0][0] < target:
            target = heap[0][0]
        grid_level = grid_base + grid_left / inv_eff if grid_binds else math.inf
        if grid_level < target:
            target = grid_level
        if target > level:
            level = target
        slack = _REL_TOL * level
        if grid_level <= level + slack:
            for i in by_max:
                if not frozen[i]:
                    freeze(i)
            break
        while heap and heap[0][0] <= level + slack:
            _, ver, g = heappop(heap)
            if ver == version[g] and count[g]:
                count[g] = 0  # full: freezing its members must not re-queue it
                for i in members[g]:
                    if not frozen[i]:
                        freeze(i)
        while pos < len(by_max) and (frozen[by_max[pos]] or max_kw[by_max[pos]] <= level + slack):
            if not frozen[by_max[pos]]:
                freeze(by_max[pos])
            pos += 1
    return kw


def reference_laxity_key(table: SessionTable, now: float, margin_h: float = 0.0) -> FloatArray:
    # An unknown (NaN) departure gives NaN laxity, which fmin turns into +inf.
    laxity = np.fmin((table.departure_s - now) / 3600.0 - table.hours_to_target, np.inf)
    if margin_h:
        laxity -= (table.current_kw > 0.0) * margin_h
    return laxity


# --- random depots -----------------------------------------------------------------

# Few distinct values make ties; equal maxima with different efficiencies make the
# tie case of the water level.
MAX_KW = st.sampled_from([0.0, -0.0, 11.0, 22.0, 50.0]) | st.floats(0.0, 150.0)
ENERGY = st.sampled_from([0.0, -1.0, math.nan, 30.0]) | st.floats(0.01, 120.0)
EFFICIENCY = st.sampled_from([1.0, 0.9, 0.95]) | st.floats(0.85, 1.0)
DEPARTURE = st.sampled_from([math.nan, math.inf, NOW + H, NOW + 2 * H]) | st.floats(NOW - H, NOW + 48 * H)
KEY = st.sampled_from([math.nan, math.inf, -math.inf, 1.0, 2.0]) | st.floats(-1e6, 1e6)
# Caps that bind, odd ones (NaN, negative, infinite), and ones too large to bind.
CAP = st.sampled_from([0.0, math.nan, math.inf, -5.0, 30.0, 100.0]) | st.floats(0.0, 400.0)
LOOSE_CAP = st.floats(2500.0, 5000.0)


def column(draw: st.DrawFn, n: int, elements: st.SearchStrategy[float]) -> FloatArray:
    return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)


@st.composite
def depots(draw: st.DrawFn, max_rows: int = 40, only_grid_binds: bool = False) -> tuple[SiteSnapshot, SessionTable]:
    """A site and a table with idle slots, ties, unknown departures and memberships in up to 6 groups.

    The grid is mostly near the active rows' demand (below, at or just above it), so
    that it binds or only just fits. With ``only_grid_binds`` no group can bind and the
    grid is short of the demand, which leaves the fast paths.
    """
    n = draw(st.integers(1 if only_grid_binds else 0, max_rows))
    max_kw = column(draw, n, MAX_KW)
    energy = column(draw, n, ENERGY)
    efficiency = column(draw, n, EFFICIENCY)
    idle = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    max_kw[idle] = 0.0
    energy[idle] = 0.0
    efficiency[idle] = 1.0
    if draw(st.integers(0, 9)):
        rank = np.array(draw(st.permutations(range(n))), dtype=np.int64)
    else:  # repeated ranks break the table contract, but the order must still be lexsort's
        rank = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int64)
    caps = draw(st.lists(LOOSE_CAP if only_grid_binds else CAP | LOOSE_CAP, max_size=6))
    memberships = draw(st.integers(0, 2 * n)) if caps else 0
    rows = draw(st.lists(st.integers(0, n - 1), min_size=memberships, max_size=memberships)) if memberships else []
    groups = [draw(st.integers(0, len(caps) - 1)) for _ in rows]
    table = SessionTable(
        max_kw=max_kw,
        efficiency=efficiency,
        energy_kwh=energy,
        departure_s=column(draw, n, DEPARTURE),
        hours_to_target=column(draw, n, st.just(0.0) | st.floats(0.0, 24.0)),
        current_kw=column(draw, n, st.sampled_from([0.0, 11.0])),
        rank=rank,
        member_row=np.array(rows, dtype=np.int64),
        member_group=np.array(groups, dtype=np.int64),
    )
    demand = float(np.add.reduce(reference_wanted_kw(table) / efficiency))
    if only_grid_binds:
        grid = demand * draw(st.floats(0.0, 0.999))
    else:
        grid = draw(
            st.sampled_from([0.0, math.inf, -10.0, demand])
            | st.floats(0.0, 600.0)
            | st.floats(0.05, 1.2).map(lambda factor: demand * factor)
        )
    site = SiteSnapshot(grid_kw=grid, groups=tuple(CapacityGroup(f"g{j}", cap) for j, cap in enumerate(caps)))
    return site, table


def assert_bit_identical(got: FloatArray, expected: FloatArray) -> None:
    """Equal to the last bit: signed zeros, infinities and NaN included."""
    assert got.dtype == np.float64
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes(), f"{got.tolist()} != {expected.tolist()}"


def greedy(site: SiteSnapshot, table: SessionTable, key: FloatArray) -> FloatArray:
    return greedy_fill(site, table, lambda: key, wanted_kw(table), grid_limit(site))


def reference_greedy(site: SiteSnapshot, table: SessionTable, key: FloatArray) -> FloatArray:
    return reference_greedy_fill(site, table, lambda: key, reference_wanted_kw(table), grid_limit(site))


def water(site: SiteSnapshot, table: SessionTable) -> FloatArray:
    return water_fill(site, table, wanted_kw(table), grid_limit(site))


def reference_water(site: SiteSnapshot, table: SessionTable, pinned_ties: bool = True) -> FloatArray:
    return reference_water_fill(site, table, reference_wanted_kw(table), grid_limit(site), pinned_ties)


# --- the compiled kernels reproduce the references -----------------------------------


@COMPILED
@given(case=depots())
def test_wanted_kw_is_the_numpy_product_to_the_bit(case):
    _, table = case
    assert_bit_identical(wanted_kw(table), reference_wanted_kw(table))


@COMPILED
@given(case=depots(), data=st.data())
def test_greedy_fill_is_bit_identical_to_the_numpy_and_list_code(case, data):
    site, table = case
    key = column(data.draw, len(table), KEY)
    assert_bit_identical(greedy(site, table, key), reference_greedy(site, table, key))


@LARGE
@given(case=depots(max_rows=300, only_grid_binds=True), data=st.data())
def test_greedy_fill_when_only_the_grid_binds_is_bit_identical_to_the_prefix_computation(case, data):
    site, table = case
    key = column(data.draw, len(table), KEY)
    assert_bit_identical(greedy(site, table, key), reference_greedy(site, table, key))


@COMPILED
@given(case=depots())
def test_water_fill_is_bit_identical_to_the_numpy_and_list_code_with_ties_in_rank_order(case):
    site, table = case
    assert_bit_identical(water(site, table), reference_water(site, table))


@LARGE
@given(case=depots(max_rows=300, only_grid_binds=True))
def test_the_water_level_is_bit_identical_with_ties_in_rank_order(case):
    site, table = case
    assert_bit_identical(water(site, table), reference_water(site, table))


@LARGE
@given(case=depots(max_rows=300))
def test_the_water_level_is_within_1e_12_of_the_numpy_code_whatever_order_its_sort_left_ties_in(case):
    # Only the order in which equal maxima enter the sums differs, so only rounding does.
    site, table = case
    np.testing.assert_allclose(water(site, table), reference_water(site, table, pinned_ties=False), rtol=1e-12, atol=0)


@COMPILED
@given(case=depots(max_rows=60, only_grid_binds=True), data=st.data())
def test_the_fast_paths_do_not_depend_on_the_row_order_to_the_bit(case, data):
    site, table = case
    if len(np.unique(table.rank)) < len(table):
        return  # only unique ranks make the order independent of the rows
    key = column(data.draw, len(table), KEY)
    perm = np.array(data.draw(st.permutations(range(len(table)))), dtype=np.int64)
    shuffled = SessionTable(
        max_kw=table.max_kw[perm],
        efficiency=table.efficiency[perm],
        energy_kwh=table.energy_kwh[perm],
        departure_s=table.departure_s[perm],
        hours_to_target=table.hours_to_target[perm],
        current_kw=table.current_kw[perm],
        rank=table.rank[perm],
        member_row=np.argsort(perm)[table.member_row],
        member_group=table.member_group,
    )
    assert_bit_identical(greedy(site, shuffled, key[perm]), greedy(site, table, key)[perm])
    assert_bit_identical(water(site, shuffled), water(site, table)[perm])


@COMPILED
@given(case=depots(), now=st.sampled_from([NOW, NOW + 0.1]), margin_h=st.sampled_from([0.0, -0.0, 0.25, 2.0, math.inf]))
def test_laxity_key_is_the_numpy_expression_to_the_bit(case, now, margin_h):
    _, table = case
    with np.errstate(invalid="ignore"):  # an infinite margin times 0 is NaN, in both
        expected = reference_laxity_key(table, now, margin_h)
    assert_bit_identical(laxity_key(table, now, margin_h), expected)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 127, 128, 129, 136, 255, 256, 257, 1000, 4099])
def test_sums_are_added_in_numpys_pairwise_order(n):
    values = np.random.default_rng(n).random(n) * 10.0 ** np.random.default_rng(n + 1).uniform(-6, 6, n)
    assert _limits._pairwise_sum(values) == np.add.reduce(values)


@COMPILED
@given(data=st.data(), n=st.integers(0, 200))
def test_rows_are_ordered_as_lexsort_orders_them(data, n):
    key = column(data.draw, n, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0]) | KEY)
    rank = np.array(data.draw(st.lists(st.integers(0, n), min_size=n, max_size=n)), dtype=np.int64)
    assert _limits._order(key, rank).tolist() == np.lexsort((rank, key)).tolist()


@COMPILED
@given(data=st.data(), n=st.integers(0, 200), rounds=st.integers(1, 4))
def test_rows_resorted_from_any_last_order_are_ordered_as_lexsort_orders_them(data, n, rounds):
    """The compiled allocations keep their row order from one call to the next and re-sort
    it (few moves: insertion; many: the full sort); each call gives lexsort's order."""
    last = np.array(data.draw(st.permutations(list(range(n)))), dtype=np.int64)
    rank = np.array(data.draw(st.lists(st.integers(0, n), min_size=n, max_size=n)), dtype=np.int64)
    key = column(data.draw, n, st.sampled_from([math.nan, math.inf, 0.0, -0.0, 1.0]) | KEY)
    for _ in range(rounds):
        assert fill_kernels.resort(last, key, rank).tolist() == np.lexsort((rank, key)).tolist()
        if n:  # a few rows move, as between two allocations
            moved = data.draw(st.lists(st.integers(0, n - 1), max_size=3))
            key = key.copy()
            key[moved] = data.draw(st.sampled_from([0.0, 1.0, 5.0, math.nan]))


def test_resort_refuses_an_order_that_is_not_a_permutation_of_the_rows():
    key, rank = np.zeros(3), np.arange(3, dtype=np.int64)
    for bad in ([0, 0, 1], [0, 1], [0, 1, 3]):
        with pytest.raises(ValueError, match="order"):
            fill_kernels.resort(np.array(bad, dtype=np.int64), key, rank)


# --- cases worth naming ----------------------------------------------------------------


def table_of(
    max_kw: list[float],
    efficiency: list[float] | None = None,
    energy_kwh: list[float] | None = None,
    rank: list[int] | None = None,
    members: tuple[tuple[int, int], ...] = (),
) -> SessionTable:
    """A table of rows with these maxima (energy 30 kWh, efficiency 1 unless given)."""
    n = len(max_kw)
    return SessionTable(
        max_kw=np.array(max_kw, dtype=np.float64),
        efficiency=np.array(efficiency or [1.0] * n, dtype=np.float64),
        energy_kwh=np.array(energy_kwh or [30.0] * n, dtype=np.float64),
        departure_s=np.full(n, np.nan),
        hours_to_target=np.ones(n),
        current_kw=np.zeros(n),
        rank=np.array(rank if rank is not None else range(n), dtype=np.int64),
        member_row=np.array([row for row, _ in members], dtype=np.int64),
        member_group=np.array([group for _, group in members], dtype=np.int64),
    )


NAMED = {
    # equal keys: rank alone decides, whatever the row order
    "ties": (
        SiteSnapshot(25.0),
        table_of([10.0] * 4, rank=[2, 0, 3, 1]),
        [1.0] * 4,
        [5.0, 10.0, 0.0, 10.0],
        [6.25] * 4,
    ),
    # -inf first, NaN last
    "inf and NaN keys": (
        SiteSnapshot(25.0),
        table_of([10.0] * 4),
        [math.nan, math.inf, 1.0, -math.inf],
        [0.0, 5.0, 10.0, 10.0],
        [6.25] * 4,
    ),
    "zero grid": (SiteSnapshot(0.0), table_of([10.0, 22.0]), [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]),
    "negative grid": (SiteSnapshot(-5.0), table_of([10.0, 22.0]), [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]),
    # the grid exactly at the demand fits it
    "grid that fits": (
        SiteSnapshot(10.0 / 0.9 + 22.0 / 0.95),
        table_of([10.0, 22.0], efficiency=[0.9, 0.95]),
        [1.0, 2.0],
        [10.0, 22.0],
        [10.0, 22.0],
    ),
    "no grid limit": (SiteSnapshot(math.inf), table_of([10.0, 22.0]), [1.0, 2.0], [10.0, 22.0], [10.0, 22.0]),
    "single row": (SiteSnapshot(10.0), table_of([22.0]), [1.0], [10.0], [10.0]),
    "single row that fits": (SiteSnapshot(30.0), table_of([22.0]), [1.0], [22.0], [22.0]),
    "idle rows only": (
        SiteSnapshot(5.0),
        table_of([0.0, 0.0], energy_kwh=[0.0, 0.0]),
        [1.0, 2.0],
        [0.0, 0.0],
        [0.0, 0.0],
    ),
    # idle slots sort first by maximum and must not lower the level
    "idle rows among active ones": (
        SiteSnapshot(30.0),
        table_of([0.0, 22.0, 0.0, 22.0], energy_kwh=[0.0, 30.0, 0.0, 30.0]),
        [0.0, 2.0, 0.0, 1.0],
        [0.0, 8.0, 0.0, 22.0],
        [0.0, 15.0, 0.0, 15.0],
    ),
    # a charger of 30 kW shared by rows 0 and 1: the sequential fills run
    "a group that binds": (
        SiteSnapshot(100.0, (CapacityGroup("charger", 30.0),)),
        table_of([22.0, 22.0, 11.0], members=((0, 0), (1, 0))),
        [2.0, 1.0, 3.0],
        [8.0, 22.0, 11.0],
        [15.0, 15.0, 11.0],
    ),
    "no rows": (SiteSnapshot(10.0), table_of([]), [], [], []),
}


@pytest.mark.parametrize(("site", "table", "key", "greedy_kw", "water_kw"), NAMED.values(), ids=NAMED.keys())
def test_named_cases_give_the_expected_power_and_the_reference_bits(site, table, key, greedy_kw, water_kw):
    key = np.array(key, dtype=np.float64)
    assert greedy(site, table, key).tolist() == greedy_kw
    assert water(site, table).tolist() == water_kw
    assert_bit_identical(greedy(site, table, key), reference_greedy(site, table, key))
    assert_bit_identical(water(site, table), reference_water(site, table))


# --- the kernel contract ---------------------------------------------------------------


@COMPILED
@given(case=depots(), data=st.data())
def test_fills_return_take_or_a_new_array_and_leave_the_table_alone(case, data):
    site, table = case
    key = column(data.draw, len(table), KEY)
    columns = {name: getattr(table, name).copy() for name in SessionTable.__slots__}
    for fill in (
        lambda take: greedy_fill(site, table, lambda: key, take, grid_limit(site)),
        lambda take: water_fill(site, table, take, grid_limit(site)),
    ):
        take = wanted_kw(table)
        got = fill(take)
        for name, before in columns.items():
            np.testing.assert_array_equal(getattr(table, name), before, err_msg=name)
            assert not np.shares_memory(got, getattr(table, name)), name
        assert got is take or not np.shares_memory(got, take)


@pytest.mark.parametrize(
    "members",
    [((2, 0),), ((-1, 0),), ((0, 1),), ((0, -1),)],
    ids=["row past the end", "negative row", "group past the end", "negative group"],
)
def test_memberships_outside_the_table_raise_rather_than_read_past_it(members):
    site = SiteSnapshot(10.0, (CapacityGroup("charger", 5.0),))
    table = table_of([22.0, 22.0], members=members)
    with pytest.raises(IndexError, match="membership"):
        greedy(site, table, np.zeros(2))
    with pytest.raises(IndexError, match="membership"):
        water(site, table)


def short(table: SessionTable, **columns: list[float] | list[int]) -> SessionTable:
    """``table`` with the given columns replaced, typically by ones of the wrong length."""
    arrays = {name: np.array(values, dtype=getattr(table, name).dtype) for name, values in columns.items()}
    return dataclasses.replace(table, **arrays)


TWO = table_of([22.0, 22.0])
GRID_BINDS = SiteSnapshot(10.0)
GROUP_BINDS = SiteSnapshot(100.0, (CapacityGroup("charger", 30.0),))
TWO_SHARING = table_of([22.0, 22.0], members=((0, 0), (1, 0)))
MISMATCHED = {
    "wanted_kw: energy": lambda: wanted_kw(short(TWO, energy_kwh=[30.0])),
    "greedy grid path: efficiency": lambda: greedy(GRID_BINDS, short(TWO, efficiency=[1.0]), np.zeros(2)),
    "greedy grid path: key": lambda: greedy(GRID_BINDS, TWO, np.zeros(1)),
    "greedy grid path: rank": lambda: greedy(GRID_BINDS, short(TWO, rank=[0]), np.zeros(2)),
    "greedy group path: efficiency": lambda: greedy(GROUP_BINDS, short(TWO_SHARING, efficiency=[1.0]), np.zeros(2)),
    "greedy group path: key": lambda: greedy(GROUP_BINDS, TWO_SHARING, np.zeros(1)),
    "greedy group path: rank": lambda: greedy(GROUP_BINDS, short(TWO_SHARING, rank=[0]), np.zeros(2)),
    "water level: efficiency": lambda: water(GRID_BINDS, short(TWO, efficiency=[1.0])),
    "water level: rank": lambda: water(GRID_BINDS, short(TWO, rank=[0])),
    "water group path: efficiency": lambda: water(GROUP_BINDS, short(TWO_SHARING, efficiency=[1.0])),
    "memberships": lambda: water(GROUP_BINDS, short(TWO_SHARING, member_group=[0])),
    "laxity_key: hours": lambda: laxity_key(short(TWO, hours_to_target=[1.0]), NOW),
    "laxity_key: current kW": lambda: laxity_key(short(TWO, current_kw=[0.0]), NOW, 0.25),
}


@pytest.mark.parametrize("call", MISMATCHED.values(), ids=MISMATCHED.keys())
def test_columns_of_different_lengths_raise_rather_than_read_past_them(call):
    # The kernels run without bounds checks, so each checks the lengths it relies on.
    with pytest.raises(ValueError, match="differ in length"):
        call()


def test_the_kernels_are_compiled_at_install_and_importing_them_loads_no_compiler():
    # The allocation runs in every simulator process: it must be the extension module
    # built at install (not a Python fallback), and importing the strategies must load
    # nothing beyond their own modules, the standard library and Cython's runtime
    # (no JIT compiler, whose memory and start-up time every run would pay).
    assert isinstance(fill_kernels.__loader__, importlib.machinery.ExtensionFileLoader)
    assert _limits._water_serve is fill_kernels.water_serve
    assert least_laxity_first._laxity is fill_kernels.laxity
    code = (
        "import sys\n"
        "import numpy, backend.charging.table\n"
        "before = set(sys.modules)\n"
        "import backend.charging.strategies\n"
        "print(sorted(name for name in set(sys.modules) - before if not (\n"
        "    name.startswith('backend.') or 'cython' in name or name.partition('.')[0] in sys.stdlib_module_names\n"
        ")))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


# --- the built-in strategies in one compiled call ------------------------------------------


@COMPILED
@given(
    case=depots(),
    name=st.sampled_from(["uncontrolled", "equal_share", "earliest_departure_first", "least_laxity_first"]),
    margin_h=st.sampled_from([0.0, 0.25]),
)
def test_the_compiled_builtin_gives_each_strategy_function_s_result_to_the_bit(case, name, margin_h):
    """What the simulator's fast-forward loop calls instead of the Python strategy functions."""
    from backend.charging.table import get_table_strategy
    from sim.fast_forward import builtin_code

    site, table = case
    site = dataclasses.replace(site, preemption_margin_h=margin_h)
    got = fill_kernels.builtin(
        builtin_code(name), table.max_kw, table.energy_kwh, table.efficiency, table.departure_s,
        table.hours_to_target, table.current_kw, table.rank, table.member_row, table.member_group,
        group_caps(site.groups), site.grid_kw, NOW, margin_h,
    )  # fmt: skip
    assert_bit_identical(got, get_table_strategy(name)(site, table, NOW))


def test_the_compiled_builtin_refuses_an_unknown_strategy():
    table = SessionTable(*(np.zeros(2) for _ in range(6)), np.arange(2), np.zeros(0, np.int64), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="unknown built-in strategy 9"):
        fill_kernels.builtin(
            9, table.max_kw, table.energy_kwh, table.efficiency, table.departure_s, table.hours_to_target,
            table.current_kw, table.rank, table.member_row, table.member_group, np.zeros(0), 1.0, NOW, 0.0,
        )  # fmt: skip
