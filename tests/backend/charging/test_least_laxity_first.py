"""least_laxity_first: priority by slack before departure, greedy and work-conserving."""

from __future__ import annotations

import math

import pytest
from greedy_checks import greedy_violations
from hypothesis import given
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

NOW = 1_700_000_000.0
H = 3600.0


def need(sid: str, max_kw: float, dep_h: float | None, hours: float, groups: tuple[int, ...] = ()):
    departure = None if dep_h is None else NOW + dep_h * H
    return SessionNeed(sid, max_kw, 1.0, max_kw * hours, departure, hours, groups)


def llf(site: SiteSnapshot, needs: list[SessionNeed]) -> dict[str, float]:
    return allocate("least_laxity_first", site, needs, NOW).by_session(needs)


def laxity_key(n: SessionNeed) -> tuple[float, str]:
    if n.departure_s is None:
        return (math.inf, n.session_id)
    return ((n.departure_s - NOW) / H - n.hours_to_target, n.session_id)


@st.composite
def scarce_cases(draw: st.DrawFn):
    caps = draw(st.lists(st.floats(0.0, 150.0), max_size=3))
    needs = []
    for k in range(draw(st.integers(1, 10))):
        groups = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2)) if caps else []
        max_kw = draw(st.floats(0.0, 150.0))
        hours = draw(st.sampled_from([0.5, 1.0, 3.0]) | st.floats(0.0, 12.0))
        dep_h = draw(st.one_of(st.none(), st.sampled_from([1.0, 2.0, 5.0]), st.floats(-1.0, 30.0)))
        needs.append(
            SessionNeed(
                f"s{k}",
                max_kw,
                draw(st.floats(0.85, 1.0)),
                draw(st.one_of(st.just(0.0), st.just(max_kw * hours), st.floats(0.01, 100.0))),
                None if dep_h is None else NOW + dep_h * H,
                hours,
                tuple(groups),
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(st.one_of(st.just(math.inf), st.just(0.0), st.just(near), st.floats(0.0, 250.0)))
    site = SiteSnapshot(grid, tuple(CapacityGroup(f"g{j}", c) for j, c in enumerate(caps)))
    return site, needs


def test_least_laxity_beats_earliest_departure_when_energy_needs_differ():
    # "long" leaves later but has 0.5 h of slack; "short" leaves first with 0.75 h.
    needs = [need("short", 50.0, 1.0, 0.25), need("long", 50.0, 2.0, 1.5)]
    assert llf(SiteSnapshot(grid_kw=50.0), needs) == {"short": 0.0, "long": 50.0}
    edf = allocate("earliest_departure_first", SiteSnapshot(grid_kw=50.0), needs, NOW)
    assert edf.by_session(needs) == {"short": 50.0, "long": 0.0}


def test_a_late_session_with_negative_laxity_comes_first():
    needs = [need("relaxed", 30.0, 10.0, 1.0), need("late", 30.0, 1.0, 4.0)]
    assert llf(SiteSnapshot(grid_kw=40.0), needs) == {"relaxed": 10.0, "late": 30.0}


def test_unknown_departure_has_infinite_laxity():
    needs = [need("unknown", 30.0, None, 20.0), need("lazy", 30.0, 40.0, 0.1)]
    assert llf(SiteSnapshot(grid_kw=30.0), needs) == {"unknown": 0.0, "lazy": 30.0}


def test_equal_laxity_is_ordered_by_session_id():
    needs = [need("b", 30.0, 3.0, 1.0), need("a", 30.0, 2.5, 0.5)]
    assert llf(SiteSnapshot(grid_kw=45.0), needs) == {"b": 15.0, "a": 30.0}


def test_laxity_is_measured_from_now():
    needs = [need("x", 30.0, 3.0, 1.0), need("y", 30.0, 5.0, 2.5)]
    site = SiteSnapshot(grid_kw=30.0)
    # Laxity x = 2.0 h, y = 2.5 h now; two hours later both shrink equally.
    assert llf(site, needs) == {"x": 30.0, "y": 0.0}
    later = allocate("least_laxity_first", site, needs, NOW + 2 * H).by_session(needs)
    assert later == {"x": 30.0, "y": 0.0}


def test_cabinet_limit_is_shared_by_laxity_and_spare_grid_goes_elsewhere():
    site = SiteSnapshot(grid_kw=100.0, groups=(CapacityGroup("cab", 40.0),))
    needs = [
        need("cab_urgent", 30.0, 2.0, 1.9, groups=(0,)),
        need("cab_relaxed", 30.0, 9.0, 1.0, groups=(0,)),
        need("outside", 100.0, 20.0, 1.0),
    ]
    assert llf(site, needs) == pytest.approx({"cab_urgent": 30.0, "cab_relaxed": 10.0, "outside": 60.0})


def test_grid_limit_is_applied_on_the_input_side():
    lossy = SessionNeed("lossy", 44.0, 0.9, 44.0, NOW + H, 1.0)
    needs = [lossy, need("b", 10.0, 5.0, 1.0)]
    assert llf(SiteSnapshot(grid_kw=45.0), needs) == pytest.approx({"lossy": 40.5, "b": 0.0})


@given(case=scarce_cases())
def test_least_laxity_first_is_a_work_conserving_priority_fill(case):
    site, needs = case
    kw = allocate("least_laxity_first", site, needs, NOW).kw
    assert greedy_violations(site, needs, kw, laxity_key) == []


def test_a_charging_session_keeps_its_place_within_the_preemption_margin() -> None:
    from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

    now = 1_700_000_000.0
    # one 50 kW slot; "waiting" has 10 minutes less laxity than "charging"
    charging = SessionNeed("charging", 50.0, 1.0, 40.0, now + 3 * 3600, 1.0, (0,), current_kw=50.0)
    waiting = SessionNeed("waiting", 50.0, 1.0, 40.0, now + 3 * 3600 - 600, 1.0, (0,))
    group = (CapacityGroup("cab", 50.0),)
    strict = allocate("least_laxity_first", SiteSnapshot(1e9, group), [charging, waiting], now)
    held = allocate("least_laxity_first", SiteSnapshot(1e9, group, (), 0.25), [charging, waiting], now)
    assert strict.kw == (0.0, 50.0)
    assert held.kw == (50.0, 0.0)
    # clearly more urgent (20 minutes beyond the margin): it preempts
    urgent = SessionNeed("waiting", 50.0, 1.0, 40.0, now + 3 * 3600 - 1800, 1.0, (0,))
    assert allocate("least_laxity_first", SiteSnapshot(1e9, group, (), 0.25), [charging, urgent], now).kw == (0.0, 50.0)
