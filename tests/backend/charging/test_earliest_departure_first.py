"""earliest_departure_first: priority by departure, greedy and work-conserving."""

from __future__ import annotations

import math

import pytest
from greedy_checks import greedy_violations
from hypothesis import given
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

NOW = 1_700_000_000.0
H = 3600.0


def need(sid: str, max_kw: float, dep_h: float | None, groups: tuple[int, ...] = (), eff: float = 1.0):
    departure = None if dep_h is None else NOW + dep_h * H
    return SessionNeed(sid, max_kw, eff, 40.0, departure, 1.0, groups)


def edf(site: SiteSnapshot, needs: list[SessionNeed]) -> dict[str, float]:
    return allocate("earliest_departure_first", site, needs, NOW).by_session(needs)


def priority(n: SessionNeed) -> tuple[float, str]:
    return (math.inf if n.departure_s is None else n.departure_s, n.session_id)


@st.composite
def scarce_cases(draw: st.DrawFn):
    caps = draw(st.lists(st.floats(0.0, 150.0), max_size=3))
    needs = []
    for k in range(draw(st.integers(1, 10))):
        groups = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2)) if caps else []
        dep_h = draw(st.one_of(st.none(), st.sampled_from([1.0, 2.0, 5.0]), st.floats(-1.0, 30.0)))
        needs.append(
            SessionNeed(
                f"s{k}",
                draw(st.floats(0.0, 150.0)),
                draw(st.floats(0.85, 1.0)),
                draw(st.one_of(st.just(0.0), st.floats(0.01, 100.0))),
                None if dep_h is None else NOW + dep_h * H,
                1.0,
                tuple(groups),
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(st.one_of(st.just(math.inf), st.just(0.0), st.just(near), st.floats(0.0, 250.0)))
    site = SiteSnapshot(grid, tuple(CapacityGroup(f"g{j}", c) for j, c in enumerate(caps)))
    return site, needs


def test_earliest_departure_is_served_first_when_the_grid_is_scarce():
    needs = [need("late", 40.0, 5.0), need("early", 40.0, 1.0), need("unknown", 40.0, None)]
    assert edf(SiteSnapshot(grid_kw=50.0), needs) == {"late": 10.0, "early": 40.0, "unknown": 0.0}


def test_unknown_departure_comes_last_even_with_a_smaller_id():
    needs = [need("a", 40.0, None), need("z", 40.0, 30.0)]
    assert edf(SiteSnapshot(grid_kw=40.0), needs) == {"a": 0.0, "z": 40.0}


def test_equal_departures_are_ordered_by_session_id():
    needs = [need("b", 40.0, 2.0), need("a", 40.0, 2.0)]
    assert edf(SiteSnapshot(grid_kw=50.0), needs) == {"b": 10.0, "a": 40.0}


def test_a_full_cabinet_passes_over_to_sessions_outside_it():
    site = SiteSnapshot(grid_kw=100.0, groups=(CapacityGroup("cab", 60.0),))
    needs = [
        need("cab_early", 50.0, 1.0, groups=(0,)),
        need("cab_late", 50.0, 2.0, groups=(0,)),
        need("free_latest", 50.0, 3.0),
    ]
    assert edf(site, needs) == {"cab_early": 50.0, "cab_late": 10.0, "free_latest": 40.0}


def test_grid_limit_is_applied_on_the_input_side():
    # 44 kW output fits under 45 kW but draws 48.9 kW from the grid at 90 %.
    for max_kw in (100.0, 44.0):
        needs = [need("a", max_kw, 1.0, eff=0.9), need("b", 10.0, 2.0)]
        assert edf(SiteSnapshot(grid_kw=45.0), needs) == pytest.approx({"a": 40.5, "b": 0.0})


@given(case=scarce_cases())
def test_earliest_departure_first_is_a_work_conserving_priority_fill(case):
    site, needs = case
    kw = allocate("earliest_departure_first", site, needs, NOW).kw
    assert greedy_violations(site, needs, kw, priority) == []


@given(case=scarce_cases())
def test_uncontested_sessions_get_their_full_power(case):
    site, needs = case
    roomy = SiteSnapshot(math.inf, tuple(CapacityGroup(g.group_id, math.inf) for g in site.groups))
    kw = allocate("earliest_departure_first", roomy, needs, NOW).kw
    assert kw == tuple(n.max_kw if n.energy_kwh > 0 else 0.0 for n in needs)
