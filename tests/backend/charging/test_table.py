"""Session tables and the table kernels: every built-in equals its list form.

The list implementations the kernels replaced are kept here, verbatim apart from
names, as the reference the kernels are checked against on random sites (groups
that bind, unlimited, zero and negative grids, unknown departures, idle slots).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from heapq import heapify, heappop, heappush

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.charging import allocation
from backend.charging.allocation import (
    Allocation,
    CapacityGroup,
    SessionNeed,
    SiteSnapshot,
    UnknownStrategyError,
    allocate,
    get_strategy,
    register,
)
from backend.charging.table import SessionTable, get_table_strategy, register_table

BUILTIN = (
    "uncontrolled",
    "equal_share",
    "earliest_departure_first",
    "least_laxity_first",
    "cost_aware",
)
NOW = 1_700_000_000.0
H = 3600.0
COLUMNS = (
    "max_kw",
    "efficiency",
    "energy_kwh",
    "departure_s",
    "hours_to_target",
    "current_kw",
    "rank",
    "member_row",
    "member_group",
)


# --- reference: the list implementations the table kernels replaced ---------------

_REFERENCE_REL_TOL = 1e-12


def reference_grid_limit(site: SiteSnapshot) -> float:
    return site.grid_kw if site.grid_kw > 0.0 else 0.0


def reference_greedy_fill(
    site: SiteSnapshot, needs: Sequence[SessionNeed], order: Iterable[int], grid_kw: float
) -> tuple[float, ...]:
    kw = [0.0] * len(needs)
    left = [group.max_kw for group in site.groups]
    grid_left = grid_kw
    for i in order:
        need = needs[i]
        if need.energy_kwh <= 0.0:
            continue
        take = need.max_kw
        groups = need.groups
        for g in groups:
            if left[g] < take:
                take = left[g]
        eff = need.efficiency
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
    return tuple(kw)


def reference_water_fill(site: SiteSnapshot, needs: Sequence[SessionNeed], grid_kw: float) -> tuple[float, ...]:
    n = len(needs)
    kw = [0.0] * n
    active = [i for i in range(n) if needs[i].energy_kwh > 0.0 and needs[i].max_kw > 0.0]
    if not active:
        return tuple(kw)
    left = [group.max_kw if group.max_kw > 0.0 else 0.0 for group in site.groups]
    members: list[list[int]] = [[] for _ in left]
    demand = [0.0] * len(left)
    inv_eff = 0.0
    grid_demand = 0.0
    for i in active:
        need = needs[i]
        for g in need.groups:
            members[g].append(i)
            demand[g] += need.max_kw
        inv_eff += 1.0 / need.efficiency
        grid_demand += need.max_kw / need.efficiency
    # A group whose members' maxima fit can never bind; usually that is every charger.
    count = [len(m) if demand[g] > left[g] else 0 for g, m in enumerate(members)]
    grid_binds = grid_demand > grid_kw
    if not grid_binds and not any(count):
        for i in active:
            kw[i] = needs[i].max_kw
        return tuple(kw)

    base = [0.0] * len(left)  # level at which left[g] was last brought up to date
    version = [0] * len(left)
    heap = [(left[g] / c, 0, g) for g, c in enumerate(count) if c]
    heapify(heap)
    by_max = sorted(active, key=lambda i: needs[i].max_kw)
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
        need = needs[i]
        kw[i] = need.max_kw if need.max_kw < level else level
        frozen[i] = True
        remaining -= 1
        for g in need.groups:
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
            inv_eff -= 1.0 / need.efficiency

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        target = needs[by_max[pos]].max_kw
        while heap and (heap[0][1] != version[heap[0][2]] or not count[heap[0][2]]):
            heappop(heap)
        if heap and heap[0][0] < target:
            target = heap[0][0]
        grid_level = grid_base + grid_left / inv_eff if grid_binds else math.inf
        if grid_level < target:
            target = grid_level
        if target > level:
            level = target
        slack = _REFERENCE_REL_TOL * level
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
        while pos < len(by_max) and (frozen[by_max[pos]] or needs[by_max[pos]].max_kw <= level + slack):
            if not frozen[by_max[pos]]:
                freeze(by_max[pos])
            pos += 1
    return tuple(kw)


def reference_laxity_order(needs: Sequence[SessionNeed], now: float, margin_h: float = 0.0) -> list[int]:
    def key(i: int) -> tuple[float, str]:
        need = needs[i]
        laxity = math.inf if need.departure_s is None else (need.departure_s - now) / 3600.0 - need.hours_to_target
        if margin_h and need.current_kw > 0:
            laxity -= margin_h
        return (laxity, need.session_id)

    return sorted(range(len(needs)), key=key)


def reference_departure_order(needs: Sequence[SessionNeed]) -> list[int]:
    return sorted(
        range(len(needs)),
        key=lambda i: (math.inf if needs[i].departure_s is None else needs[i].departure_s, needs[i].session_id),
    )


def reference_cost_aware_order(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> list[int]:
    order = reference_laxity_order(needs, now, site.preemption_margin_h)
    prices = site.prices
    if not prices:
        return order
    grid_kw = reference_grid_limit(site)
    eligible = [False] * len(needs)
    total_max = sum(need.max_kw for need in needs if need.energy_kwh > 0.0 and need.max_kw > 0.0)
    waiting: list[tuple[int, float, float]] = []
    for i, need in enumerate(needs):
        if need.energy_kwh <= 0.0 or need.max_kw <= 0.0:
            continue
        rate = need.max_kw
        if grid_kw != math.inf:
            share = grid_kw * need.efficiency * need.max_kw / total_max
            rate = min(rate, share)
        hours = max(need.energy_kwh / rate, need.hours_to_target) if rate > 0.0 else math.inf
        needed_s = (hours * 1.1 + 0.25) * 3600.0
        end = now + 24 * 3600.0 if need.departure_s is None else need.departure_s
        if end - now <= needed_s:
            eligible[i] = True
        else:
            waiting.append((i, end, needed_s))
    if waiting:
        k = max(bisect_right(prices, now, key=lambda p: p[0]) - 1, 0)
        price_now = prices[k][1]
        last_end = max(end for _, end, _ in waiting)
        starts = [now]
        cheaper = [False]
        cheaper_before = [0.0]
        for j in range(k, len(prices)):
            if j > k:
                start = prices[j][0]
                if start >= last_end:
                    break
                cheaper_before.append(cheaper_before[-1] + (start - starts[-1] if cheaper[-1] else 0.0))
                starts.append(start)
                cheaper.append(prices[j][1] < price_now)
        for i, end, needed_s in waiting:
            p = bisect_right(starts, end) - 1
            cheaper_s = cheaper_before[p] + (end - starts[p] if cheaper[p] else 0.0)
            eligible[i] = cheaper_s < needed_s
    return [i for i in order if eligible[i]]


REFERENCE = {
    "uncontrolled": lambda site, needs, now: reference_water_fill(site, needs, math.inf),
    "equal_share": lambda site, needs, now: reference_water_fill(site, needs, reference_grid_limit(site)),
    "earliest_departure_first": lambda site, needs, now: reference_greedy_fill(
        site, needs, reference_departure_order(needs), reference_grid_limit(site)
    ),
    "least_laxity_first": lambda site, needs, now: reference_greedy_fill(
        site, needs, reference_laxity_order(needs, now, site.preemption_margin_h), reference_grid_limit(site)
    ),
    "cost_aware": lambda site, needs, now: reference_greedy_fill(
        site, needs, reference_cost_aware_order(site, needs, now), reference_grid_limit(site)
    ),
}


# --- random depots -----------------------------------------------------------------


def idle_slot(session_id: str) -> SessionNeed:
    """A connector with nothing plugged in, as the simulator passes it."""
    return SessionNeed(session_id, 0.0, 1.0, 0.0, None, 0.0)


@st.composite
def sites_and_needs(draw: st.DrawFn, only_grid_binds: bool = False) -> tuple[SiteSnapshot, tuple[SessionNeed, ...]]:
    """Sites whose groups and grid bind or not, with idle slots and unknown departures.

    With ``only_grid_binds`` the groups cannot bind and the grid is short of the demand.
    """
    tight = st.one_of(st.just(0.0), st.just(math.inf), st.floats(-20.0, 0.0), st.floats(0.0, 300.0))
    # Groups too large to bind leave only the grid to couple the sessions.
    loose = st.lists(st.floats(2500.0, 5000.0), max_size=5)
    caps = draw(loose if only_grid_binds else st.lists(tight, max_size=5) | loose)
    n = draw(st.integers(2 if only_grid_binds else 0, 14))
    ids = draw(st.permutations([f"s{k:02d}" for k in range(n)]))
    needs = []
    for sid in ids:
        if draw(st.integers(0, 5)) == 0:
            needs.append(idle_slot(sid))
            continue
        max_kw = draw(st.one_of(st.just(0.0), st.sampled_from([11.0, 22.0, 50.0]), st.floats(0.0, 150.0)))
        energy = draw(st.one_of(st.just(0.0), st.floats(-5.0, 0.0), st.floats(0.01, 120.0)))
        hours = energy / max_kw * draw(st.floats(1.0, 1.5)) if max_kw > 0 and energy > 0 else 0.0
        groups = tuple(draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=3))) if caps else ()
        needs.append(
            SessionNeed(
                session_id=sid,
                max_kw=max_kw,
                efficiency=draw(st.floats(0.85, 1.0)),
                energy_kwh=energy,
                # equal departures make ties that only the session id breaks
                departure_s=draw(
                    st.one_of(st.none(), st.sampled_from([NOW + H, NOW + 2 * H]), st.floats(NOW - H, NOW + 48 * H))
                ),
                hours_to_target=hours,
                groups=groups,
                current_kw=draw(st.sampled_from([0.0, 0.0, max_kw])),
            )
        )
    # Mostly a grid near the active sessions' demand, so that the grid binds.
    demand = sum(n.max_kw / n.efficiency for n in needs if n.energy_kwh > 0.0)
    near = st.floats(0.2, 1.2).map(lambda factor: demand * factor)
    grid = draw(
        st.floats(0.05, 0.95).map(lambda factor: demand * factor)
        if only_grid_binds
        else st.one_of(st.just(math.inf), st.just(0.0), st.floats(-50.0, 0.0), st.floats(0.0, 600.0), near, near)
    )
    prices: list[tuple[float, float]] = []
    if draw(st.booleans()):
        start = NOW - draw(st.floats(0.0, H))
        while start < NOW + 50 * H:
            prices.append((start, draw(st.sampled_from([0.1, 0.2, 0.3]))))
            start += draw(st.floats(900.0, 6 * H))
    site = SiteSnapshot(
        grid_kw=grid,
        groups=tuple(CapacityGroup(f"g{j}", cap) for j, cap in enumerate(caps)),
        prices=tuple(prices),
        preemption_margin_h=draw(st.sampled_from([0.0, 0.25, 2.0])),
    )
    return site, tuple(needs)


def kernel(name: str):
    found = get_table_strategy(name)
    assert found is not None
    return found


def copy_of(table: SessionTable) -> dict[str, np.ndarray]:
    return {column: getattr(table, column).copy() for column in COLUMNS}


# --- the kernels equal the list implementations ------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs())
def test_each_table_kernel_equals_its_list_implementation(name, case):
    site, needs = case
    got = kernel(name)(site, SessionTable.from_needs(needs), NOW)
    expected = REFERENCE[name](site, needs, NOW)
    assert got.dtype == np.float64
    assert got.shape == (len(needs),)
    assert got.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs(only_grid_binds=True))
def test_each_table_kernel_equals_its_list_implementation_when_only_the_grid_binds(name, case):
    site, needs = case
    got = kernel(name)(site, SessionTable.from_needs(needs), NOW)
    assert got.tolist() == pytest.approx(REFERENCE[name](site, needs, NOW), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs(), slots=st.integers(1, 20))
def test_idle_connector_slots_change_nothing_and_get_nothing(name, case, slots):
    site, needs = case
    padded = needs + tuple(idle_slot(f"idle{k:02d}") for k in range(slots))
    got = kernel(name)(site, SessionTable.from_needs(padded), NOW)
    alone = kernel(name)(site, SessionTable.from_needs(needs), NOW)
    assert got[len(needs) :].tolist() == [0.0] * slots
    assert got[: len(needs)].tolist() == pytest.approx(alone.tolist(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs())
def test_allocate_returns_the_kernel_result_as_a_tuple(name, case):
    site, needs = case
    expected = tuple(kernel(name)(site, SessionTable.from_needs(needs), NOW).tolist())
    assert allocate(name, site, needs, NOW) == Allocation(kw=expected)


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs())
def test_kernels_neither_modify_nor_keep_their_inputs(name, case):
    site, needs = case
    table = SessionTable.from_needs(needs)
    before = copy_of(table)
    got = kernel(name)(site, table, NOW)
    kept = got.copy()
    for column, values in before.items():
        np.testing.assert_array_equal(getattr(table, column), values, err_msg=column)
        assert not np.shares_memory(got, getattr(table, column))
    # the caller refills its arrays in place for the next call
    for column in COLUMNS:
        getattr(table, column)[...] = 0
    np.testing.assert_array_equal(got, kept)


def test_kernels_accept_an_empty_table():
    table = SessionTable.from_needs(())
    for name in BUILTIN:
        assert kernel(name)(SiteSnapshot(grid_kw=10.0), table, NOW).shape == (0,)


def test_a_full_grid_goes_to_the_most_urgent_rows_in_rank_order_on_ties():
    # four equal rows, unknown departures: only rank decides, whatever the row order
    table = SessionTable(
        max_kw=np.full(4, 10.0),
        efficiency=np.ones(4),
        energy_kwh=np.full(4, 20.0),
        departure_s=np.full(4, np.nan),
        hours_to_target=np.full(4, 2.0),
        current_kw=np.zeros(4),
        rank=np.array([2, 0, 3, 1]),
        member_row=np.zeros(0, dtype=np.int64),
        member_group=np.zeros(0, dtype=np.int64),
    )
    site = SiteSnapshot(grid_kw=25.0)
    for name in ("earliest_departure_first", "least_laxity_first", "cost_aware"):
        assert kernel(name)(site, table, NOW).tolist() == [5.0, 10.0, 0.0, 10.0]
    assert kernel("equal_share")(site, table, NOW).tolist() == [6.25] * 4


def test_groups_cap_their_members_in_a_table():
    table = SessionTable(
        max_kw=np.array([50.0, 50.0, 0.0, 50.0]),
        efficiency=np.ones(4),
        energy_kwh=np.array([30.0, 30.0, 0.0, 30.0]),
        departure_s=np.array([NOW + H, NOW + 2 * H, np.nan, NOW + 3 * H]),
        hours_to_target=np.array([0.6, 0.6, 0.0, 0.6]),
        current_kw=np.zeros(4),
        rank=np.arange(4),
        member_row=np.array([0, 1, 2, 3, 0, 1, 2, 3]),
        member_group=np.array([0, 0, 1, 1, 2, 2, 2, 2]),
    )
    site = SiteSnapshot(
        math.inf, (CapacityGroup("charger0", 60.0), CapacityGroup("charger1", 60.0), CapacityGroup("cabinet", 100.0))
    )
    assert kernel("uncontrolled")(site, table, NOW).tolist() == [30.0, 30.0, 0.0, 40.0]
    assert kernel("earliest_departure_first")(site, table, NOW).tolist() == [50.0, 10.0, 0.0, 40.0]


# --- from_needs --------------------------------------------------------------------


def test_from_needs_ranks_rows_by_session_id_and_flattens_memberships():
    needs = (
        SessionNeed("c", 22.0, 0.9, 10.0, None, 0.5, (1, 0), 11.0),
        SessionNeed("a", 50.0, 0.95, 20.0, NOW + H, 0.4),
        SessionNeed("b", 11.0, 1.0, 0.0, NOW + 2 * H, 0.0, (2,)),
    )
    table = SessionTable.from_needs(needs)
    assert table.rank.tolist() == [2, 0, 1]
    assert table.member_row.tolist() == [0, 0, 2]
    assert table.member_group.tolist() == [1, 0, 2]
    assert table.max_kw.tolist() == [22.0, 50.0, 11.0]
    assert table.efficiency.tolist() == [0.9, 0.95, 1.0]
    assert table.energy_kwh.tolist() == [10.0, 20.0, 0.0]
    assert math.isnan(table.departure_s[0])
    assert table.departure_s[1:].tolist() == [NOW + H, NOW + 2 * H]
    assert table.hours_to_target.tolist() == [0.5, 0.4, 0.0]
    assert table.current_kw.tolist() == [11.0, 0.0, 0.0]
    assert len(table) == 3
    for column in COLUMNS:
        values = getattr(table, column)
        assert values.dtype == (np.int64 if column in ("rank", "member_row", "member_group") else np.float64)
        assert values.flags.c_contiguous


@given(ids=st.lists(st.text(min_size=1, max_size=4), unique=True, max_size=12))
def test_from_needs_rank_is_the_position_among_the_sorted_ids(ids):
    table = SessionTable.from_needs([SessionNeed(sid, 1.0, 1.0, 1.0, None, 1.0) for sid in ids])
    assert table.rank.tolist() == [sorted(ids).index(sid) for sid in ids]
    assert table.member_row.shape == table.member_group.shape == (0,)


# --- registry ----------------------------------------------------------------------


@pytest.fixture
def registries(monkeypatch):
    monkeypatch.setattr(allocation, "_REGISTRY", dict(allocation._REGISTRY))
    monkeypatch.setattr(allocation, "_TABLE_REGISTRY", dict(allocation._TABLE_REGISTRY))


def test_every_builtin_has_a_table_kernel():
    for name in BUILTIN:
        assert callable(get_table_strategy(name))


@pytest.mark.usefixtures("registries")
def test_a_strategy_registered_only_for_needs_has_no_table_kernel():
    @register("always_one")
    def always_one(site, needs, now):
        return Allocation(kw=tuple(1.0 for _ in needs))

    assert get_table_strategy("always_one") is None
    assert allocate("always_one", SiteSnapshot(grid_kw=5.0), (idle_slot("a"),), NOW).kw == (1.0,)


@pytest.mark.usefixtures("registries")
def test_replacing_a_builtin_through_register_drops_its_table_kernel():
    register("equal_share")(lambda site, needs, now: Allocation(kw=tuple(0.0 for _ in needs)))
    assert get_table_strategy("equal_share") is None


@pytest.mark.usefixtures("registries")
def test_register_table_makes_a_kernel_callable_through_allocate_too():
    @register_table("half_max")
    def half_max(site, table, now):
        return table.max_kw * 0.5

    needs = (SessionNeed("a", 22.0, 1.0, 30.0, None, 2.0), SessionNeed("b", 11.0, 1.0, 30.0, None, 2.0))
    assert get_table_strategy("half_max") is half_max
    assert allocate("half_max", SiteSnapshot(grid_kw=5.0), needs, NOW).kw == (11.0, 5.5)
    assert get_strategy("half_max").__name__ == "half_max"


def test_get_table_strategy_rejects_an_unknown_name_like_get_strategy():
    with pytest.raises(UnknownStrategyError, match="cheapest_first"):
        get_table_strategy("cheapest_first")
