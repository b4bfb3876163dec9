"""The allocation contract: registry behaviour and invariants every strategy keeps."""

from __future__ import annotations

import math
import random

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
    strategy_names,
)
from backend.errors import DepotsimError

BUILTIN = (
    "uncontrolled",
    "equal_share",
    "earliest_departure_first",
    "least_laxity_first",
    "cost_aware",
)
NOW = 1_700_000_000.0
REL = 1e-9


@st.composite
def sites_and_needs(draw: st.DrawFn) -> tuple[SiteSnapshot, tuple[SessionNeed, ...]]:
    """Random sites (groups, grid incl. inf/0/negative, TOU prices) and sessions."""
    caps = draw(st.lists(st.one_of(st.just(0.0), st.just(math.inf), st.floats(0.0, 200.0)), max_size=4))
    n = draw(st.integers(0, 10))
    ids = draw(st.permutations([f"s{k:02d}" for k in range(n)]))
    needs = []
    for sid in ids:
        max_kw = draw(st.one_of(st.just(0.0), st.floats(0.0, 150.0)))
        energy = draw(st.one_of(st.just(0.0), st.floats(-5.0, 0.0), st.floats(0.01, 120.0)))
        hours = energy / max_kw * draw(st.floats(1.0, 1.5)) if max_kw > 0 and energy > 0 else 0.0
        groups = tuple(draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2))) if caps else ()
        needs.append(
            SessionNeed(
                session_id=sid,
                max_kw=max_kw,
                efficiency=draw(st.floats(0.85, 1.0)),
                energy_kwh=energy,
                departure_s=draw(st.one_of(st.none(), st.floats(NOW - 3600.0, NOW + 48 * 3600.0))),
                hours_to_target=hours,
                groups=groups,
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(
        st.one_of(
            st.just(math.inf),
            st.just(0.0),
            st.just(near),
            st.floats(-50.0, 0.0),
            st.floats(0.0, 400.0),
        )
    )
    prices: list[tuple[float, float]] = []
    if draw(st.booleans()):
        start = NOW - draw(st.floats(0.0, 3600.0))
        while start < NOW + 50 * 3600.0:
            prices.append((start, draw(st.sampled_from([0.1, 0.2, 0.3]))))
            start += draw(st.floats(900.0, 6 * 3600.0))
    site = SiteSnapshot(
        grid_kw=grid,
        groups=tuple(CapacityGroup(f"g{j}", cap) for j, cap in enumerate(caps)),
        prices=tuple(prices),
    )
    return site, tuple(needs)


def group_sums(site: SiteSnapshot, needs: tuple[SessionNeed, ...], kw: tuple[float, ...]):
    sums = [0.0] * len(site.groups)
    for need, k in zip(needs, kw, strict=True):
        for g in need.groups:
            sums[g] += k
    return sums


def grid_draw(needs: tuple[SessionNeed, ...], kw: tuple[float, ...]) -> float:
    return sum(k / need.efficiency for need, k in zip(needs, kw, strict=True))


def test_strategy_names_lists_the_builtins_in_registration_order():
    assert strategy_names()[: len(BUILTIN)] == BUILTIN


def test_unknown_strategy_raises_an_error_that_lists_the_known_names():
    site = SiteSnapshot(grid_kw=100.0)
    with pytest.raises(UnknownStrategyError) as excinfo:
        allocate("cheapest_first", site, (), NOW)
    message = str(excinfo.value)
    assert "cheapest_first" in message
    for name in BUILTIN:
        assert name in message
    assert isinstance(excinfo.value, DepotsimError)


def test_get_strategy_returns_the_registered_function():
    func = get_strategy("equal_share")
    site = SiteSnapshot(grid_kw=10.0)
    need = SessionNeed("a", 22.0, 1.0, 30.0, None, 2.0)
    assert func(site, (need,), NOW) == Allocation(kw=(10.0,))


def test_register_makes_a_custom_strategy_callable_through_allocate(monkeypatch):
    monkeypatch.setattr(allocation, "_REGISTRY", dict(allocation._REGISTRY))

    @register("always_one")
    def always_one(site, needs, now):
        return Allocation(kw=tuple(1.0 for _ in needs))

    need = SessionNeed("a", 22.0, 1.0, 30.0, None, 2.0)
    assert allocate("always_one", SiteSnapshot(grid_kw=0.0), (need,), NOW).kw == (1.0,)
    assert strategy_names()[-1] == "always_one"


def test_by_session_maps_ids_to_limits():
    needs = (
        SessionNeed("a", 10.0, 1.0, 5.0, None, 0.5),
        SessionNeed("b", 10.0, 1.0, 5.0, None, 0.5),
    )
    assert Allocation(kw=(3.0, 4.0)).by_session(needs) == {"a": 3.0, "b": 4.0}


@pytest.mark.parametrize("name", BUILTIN)
def test_no_sessions_gives_an_empty_allocation(name):
    assert allocate(name, SiteSnapshot(grid_kw=50.0), (), NOW) == Allocation(kw=())


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs())
def test_every_strategy_respects_session_and_group_limits(name, case):
    site, needs = case
    kw = allocate(name, site, needs, NOW).kw
    assert isinstance(kw, tuple)
    assert len(kw) == len(needs)
    for need, k in zip(needs, kw, strict=True):
        assert 0.0 <= k <= need.max_kw
        if need.energy_kwh <= 0.0:
            assert k == 0.0
    for group, total in zip(site.groups, group_sums(site, needs, kw), strict=True):
        assert total <= group.max_kw * (1 + REL) + 1e-12


@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "uncontrolled"])
@given(case=sites_and_needs())
def test_site_limit_is_never_exceeded_by_managed_strategies(name, case):
    site, needs = case
    kw = allocate(name, site, needs, NOW).kw
    assert grid_draw(needs, kw) <= max(site.grid_kw, 0.0) * (1 + REL) + 1e-12


@pytest.mark.parametrize("name", BUILTIN)
@given(case=sites_and_needs(), seed=st.integers(0, 2**32 - 1))
def test_every_strategy_is_deterministic_and_ignores_the_listing_order(name, case, seed):
    site, needs = case
    assert allocate(name, site, needs, NOW) == allocate(name, site, needs, NOW)
    shuffled = list(needs)
    random.Random(seed).shuffle(shuffled)
    expected = allocate(name, site, needs, NOW).by_session(needs)
    got = allocate(name, site, shuffled, NOW).by_session(shuffled)
    for sid, k in expected.items():
        assert got[sid] == pytest.approx(k, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", ["uncontrolled", "equal_share", "earliest_departure_first", "least_laxity_first"])
@given(case=sites_and_needs())
def test_work_conserving_strategies_leave_no_usable_power_idle(name, case):
    site, needs = case
    kw = allocate(name, site, needs, NOW).kw
    sums = group_sums(site, needs, kw)
    grid = math.inf if name == "uncontrolled" else max(site.grid_kw, 0.0)
    grid_full = grid_draw(needs, kw) >= grid * (1 - 1e-7) - 1e-9
    for need, k in zip(needs, kw, strict=True):
        if need.energy_kwh <= 0.0 or k >= need.max_kw * (1 - 1e-9):
            continue
        group_full = any(sums[g] >= site.groups[g].max_kw * (1 - 1e-7) - 1e-9 for g in need.groups)
        assert group_full or grid_full, f"{need.session_id} idles below max at {k} kW"
