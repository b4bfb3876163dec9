"""uncontrolled: full power for everyone, limited only by the hardware."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

NOW = 1_700_000_000.0


def need(sid: str, max_kw: float, groups: tuple[int, ...] = (), energy: float = 50.0):
    return SessionNeed(sid, max_kw, 0.9, energy, NOW + 3600.0, 1.0, groups)


def run(site: SiteSnapshot, needs: list[SessionNeed]) -> dict[str, float]:
    return allocate("uncontrolled", site, needs, NOW).by_session(needs)


@st.composite
def cases(draw: st.DrawFn):
    caps = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 150.0)), max_size=4))
    needs = []
    for k in range(draw(st.integers(0, 10))):
        groups = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2)) if caps else []
        needs.append(
            SessionNeed(
                f"s{k}",
                draw(st.floats(0.0, 150.0)),
                draw(st.floats(0.85, 1.0)),
                draw(st.one_of(st.just(0.0), st.floats(0.01, 100.0))),
                None,
                1.0,
                tuple(groups),
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(st.one_of(st.just(math.inf), st.just(0.0), st.just(near), st.floats(-10.0, 300.0)))
    return SiteSnapshot(grid, tuple(CapacityGroup(f"g{j}", c) for j, c in enumerate(caps))), needs


def test_every_session_takes_full_power_and_may_overload_the_grid():
    needs = [need("a", 50.0), need("b", 150.0)]
    assert run(SiteSnapshot(grid_kw=10.0), needs) == {"a": 50.0, "b": 150.0}


def test_sessions_that_need_no_energy_draw_nothing():
    needs = [need("full", 50.0, energy=0.0), need("a", 50.0)]
    assert run(SiteSnapshot(grid_kw=0.0), needs) == {"full": 0.0, "a": 50.0}


def test_an_oversubscribed_cabinet_is_shared_max_min_fairly():
    site = SiteSnapshot(grid_kw=0.0, groups=(CapacityGroup("cab", 60.0),))
    needs = [need("small", 20.0, (0,)), need("big", 50.0, (0,)), need("free", 80.0)]
    assert run(site, needs) == pytest.approx({"small": 20.0, "big": 40.0, "free": 80.0})


def test_a_shared_charger_inside_a_cabinet_limits_its_connectors():
    groups = (CapacityGroup("charger", 50.0), CapacityGroup("cabinet", 90.0))
    needs = [need("c1", 50.0, (0, 1)), need("c2", 50.0, (0, 1)), need("other", 50.0, (1,))]
    # Charger caps c1 + c2 at 50 (25 each); the cabinet has 40 left for "other".
    assert run(SiteSnapshot(math.inf, groups), needs) == pytest.approx({"c1": 25.0, "c2": 25.0, "other": 40.0})


@given(case=cases())
def test_grid_limit_does_not_change_the_uncontrolled_allocation(case):
    site, needs = case
    unlimited = SiteSnapshot(math.inf, site.groups)
    assert allocate("uncontrolled", site, needs, NOW) == allocate("uncontrolled", unlimited, needs, NOW)


@given(case=cases())
def test_uncontrolled_equals_equal_share_without_a_grid_limit(case):
    site, needs = case
    unlimited = SiteSnapshot(math.inf, site.groups)
    got = allocate("uncontrolled", site, needs, NOW).kw
    fair = allocate("equal_share", unlimited, needs, NOW).kw
    assert got == pytest.approx(fair, rel=1e-9, abs=1e-9)


@given(case=cases())
def test_without_cabinets_every_session_gets_its_maximum(case):
    site, needs = case
    no_groups = [SessionNeed(n.session_id, n.max_kw, n.efficiency, n.energy_kwh, None, 1.0) for n in needs]
    kw = allocate("uncontrolled", SiteSnapshot(site.grid_kw), no_groups, NOW).kw
    assert kw == tuple(n.max_kw if n.energy_kwh > 0 else 0.0 for n in needs)
