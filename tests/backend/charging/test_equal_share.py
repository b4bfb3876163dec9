"""equal_share: exact max-min fairness under cabinets and the grid connection."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

NOW = 1_700_000_000.0
TOL = 1e-7


def need(sid: str, max_kw: float, eff: float = 1.0, groups: tuple[int, ...] = ()) -> SessionNeed:
    return SessionNeed(sid, max_kw, eff, 50.0, NOW + 3600.0, 1.0, groups)


def share(site: SiteSnapshot, needs: list[SessionNeed]) -> dict[str, float]:
    return allocate("equal_share", site, needs, NOW).by_session(needs)


def max_min_violations(site: SiteSnapshot, needs, kw) -> list[str]:
    """Sessions below their max that have no bottleneck (independent fairness check).

    A feasible allocation is max-min fair iff every session below its maximum is in
    some saturated constraint where no other member gets more than it does.
    """
    active = [i for i, n in enumerate(needs) if n.energy_kwh > 0.0 and n.max_kw > 0.0]
    members = [[i for i in active if g in needs[i].groups] for g in range(len(site.groups))]
    grid = max(site.grid_kw, 0.0)
    grid_full = sum(kw[i] / needs[i].efficiency for i in active) >= grid - TOL * max(1.0, grid)
    bad = []
    for i in active:
        if kw[i] >= needs[i].max_kw - TOL:
            continue
        bottleneck = grid_full and all(kw[i] >= kw[j] - TOL for j in active)
        for g in needs[i].groups:
            cap = max(site.groups[g].max_kw, 0.0)
            full = sum(kw[j] for j in members[g]) >= cap - TOL * max(1.0, cap)
            if full and all(kw[i] >= kw[j] - TOL for j in members[g]):
                bottleneck = True
        if not bottleneck:
            bad.append(needs[i].session_id)
    return bad


@st.composite
def scarce_cases(draw: st.DrawFn):
    caps = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 150.0)), max_size=4))
    needs = []
    for k in range(draw(st.integers(1, 12))):
        groups = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2)) if caps else []
        needs.append(
            SessionNeed(
                f"s{k}",
                draw(st.one_of(st.just(0.0), st.floats(0.0, 150.0))),
                draw(st.floats(0.85, 1.0)),
                draw(st.one_of(st.just(0.0), st.floats(0.01, 100.0))),
                None,
                1.0,
                tuple(groups),
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(st.one_of(st.just(math.inf), st.just(0.0), st.just(near), st.floats(0.0, 300.0)))
    site = SiteSnapshot(grid, tuple(CapacityGroup(f"g{j}", c) for j, c in enumerate(caps)))
    return site, needs


def test_grid_is_split_equally_when_every_session_can_take_more():
    needs = [need("a", 50.0), need("b", 50.0), need("c", 50.0), need("d", 50.0)]
    assert share(SiteSnapshot(grid_kw=100.0), needs) == pytest.approx({"a": 25.0, "b": 25.0, "c": 25.0, "d": 25.0})


def test_power_a_small_session_cannot_use_goes_to_the_others():
    needs = [need("a", 20.0), need("b", 50.0), need("c", 50.0)]
    assert share(SiteSnapshot(grid_kw=100.0), needs) == pytest.approx({"a": 20.0, "b": 40.0, "c": 40.0})


def test_hand_computed_example_with_a_cabinet_and_the_grid():
    # Cabinet (b, c) fills at 15 kW each, a stops at its max of 20 kW and d takes
    # the rest of the grid: 100 - 15 - 15 - 20 = 50 kW.
    site = SiteSnapshot(grid_kw=100.0, groups=(CapacityGroup("cab", 30.0),))
    needs = [
        need("a", 20.0),
        need("b", 50.0, groups=(0,)),
        need("c", 50.0, groups=(0,)),
        need("d", 100.0),
    ]
    assert share(site, needs) == pytest.approx({"a": 20.0, "b": 15.0, "c": 15.0, "d": 50.0})


def test_equal_share_is_in_output_kw_with_the_grid_counting_losses():
    # L / 0.9 + L / 1.0 = 95 gives L = 45 output kW for both sessions.
    needs = [need("lossy", 100.0, eff=0.9), need("ideal", 100.0, eff=1.0)]
    assert share(SiteSnapshot(grid_kw=95.0), needs) == pytest.approx({"lossy": 45.0, "ideal": 45.0})


def test_sessions_that_need_no_energy_do_not_take_a_share():
    full = SessionNeed("full", 50.0, 1.0, 0.0, None, 0.0)
    needs = [full, need("a", 50.0)]
    assert share(SiteSnapshot(grid_kw=40.0), needs) == {"full": 0.0, "a": 40.0}


def test_a_zero_grid_limit_stops_all_charging():
    needs = [need("a", 50.0), need("b", 10.0)]
    assert share(SiteSnapshot(grid_kw=0.0), needs) == {"a": 0.0, "b": 0.0}


def test_negative_grid_limit_is_treated_as_zero():
    needs = [need("a", 50.0)]
    assert share(SiteSnapshot(grid_kw=-20.0), needs) == {"a": 0.0}


def test_fairness_checker_rejects_a_first_come_allocation():
    site = SiteSnapshot(grid_kw=60.0)
    needs = [need("a", 50.0), need("b", 50.0)]
    assert max_min_violations(site, needs, (50.0, 10.0)) == ["b"]
    assert max_min_violations(site, needs, (30.0, 30.0)) == []


@given(case=scarce_cases())
def test_equal_share_is_max_min_fair(case):
    site, needs = case
    kw = allocate("equal_share", site, needs, NOW).kw
    assert max_min_violations(site, needs, kw) == []


@given(case=scarce_cases())
def test_site_limit_is_never_exceeded_under_equal_share(case):
    site, needs = case
    kw = allocate("equal_share", site, needs, NOW).kw
    drawn = sum(k / n.efficiency for n, k in zip(needs, kw, strict=True))
    assert drawn <= site.grid_kw * (1 + 1e-9) + 1e-12
