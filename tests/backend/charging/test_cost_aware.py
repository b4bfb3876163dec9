"""cost_aware: wait for cheap tariff periods, but never past a feasible departure."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate

H = 3600.0
DAY = 24 * H
BASE = 19_700 * DAY  # a UTC midnight
DAY_PRICE, NIGHT_PRICE = 0.30, 0.10
# Expensive 06:00-22:00, cheap 22:00-06:00, from the day before BASE to three days after.
TOU = tuple(
    point
    for d in range(-1, 4)
    for point in ((BASE + d * DAY + 6 * H, DAY_PRICE), (BASE + d * DAY + 22 * H, NIGHT_PRICE))
)


def bus(sid: str, energy: float, departure_s: float | None, max_kw: float = 11.0, eff: float = 1.0):
    return SessionNeed(sid, max_kw, eff, energy, departure_s, energy / max_kw, ())


def run(needs, now: float, grid_kw: float = math.inf, prices=TOU, groups=()) -> dict[str, float]:
    site = SiteSnapshot(grid_kw, tuple(groups), tuple(prices))
    return allocate("cost_aware", site, needs, now).by_session(needs)


@st.composite
def cases(draw: st.DrawFn):
    now = BASE + draw(st.floats(0.0, DAY))
    caps = draw(st.lists(st.floats(0.0, 150.0), max_size=3))
    needs = []
    for k in range(draw(st.integers(1, 10))):
        groups = draw(st.lists(st.integers(0, len(caps) - 1), unique=True, max_size=2)) if caps else []
        max_kw = draw(st.floats(0.0, 150.0))
        hours = draw(st.floats(0.0, 12.0))
        dep = draw(st.one_of(st.none(), st.floats(now - H, now + 40 * H)))
        needs.append(
            SessionNeed(
                f"s{k}",
                max_kw,
                draw(st.floats(0.85, 1.0)),
                draw(st.one_of(st.just(0.0), st.floats(0.01, 150.0))),
                dep,
                hours,
                tuple(groups),
            )
        )
    # A grid near the summed demand makes the grid, not the sessions, bind.
    near = sum(n.max_kw for n in needs) * draw(st.floats(0.3, 1.1))
    grid = draw(st.one_of(st.just(math.inf), st.just(0.0), st.just(near), st.floats(0.0, 300.0)))
    return (
        SiteSnapshot(grid, tuple(CapacityGroup(f"g{j}", c) for j, c in enumerate(caps))),
        needs,
        now,
    )


def test_long_dwell_waits_through_the_expensive_day():
    needs = [bus("overnight", 30.0, BASE + DAY + 7 * H)]
    assert run(needs, now=BASE + 10 * H) == {"overnight": 0.0}


def test_long_dwell_charges_at_full_power_in_the_cheap_night():
    needs = [bus("overnight", 30.0, BASE + DAY + 7 * H)]
    assert run(needs, now=BASE + 23 * H) == {"overnight": 11.0}


def test_cheap_period_starting_exactly_now_counts_as_now():
    needs = [bus("overnight", 30.0, BASE + DAY + 7 * H)]
    assert run(needs, now=BASE + 22 * H) == {"overnight": 11.0}
    assert run(needs, now=BASE + 22 * H - 1.0) == {"overnight": 0.0}


def test_close_departure_charges_even_when_expensive():
    # 30 kWh at 11 kW needs 2.73 h * 1.1 + 0.25 h = 3.25 h but only 2 h are left.
    needs = [bus("must_run", 30.0, BASE + 12 * H)]
    assert run(needs, now=BASE + 10 * H) == {"must_run": 11.0}


def test_overdue_vehicle_charges_even_when_expensive():
    needs = [bus("overdue", 30.0, BASE + 9 * H)]
    assert run(needs, now=BASE + 10 * H) == {"overdue": 11.0}


def test_session_needing_more_than_the_cheap_hours_starts_now():
    # 100 kWh at 11 kW: 10.25 h planned, the night offers only 8 h.
    needs = [bus("big", 100.0, BASE + DAY + 7 * H), bus("small", 30.0, BASE + DAY + 7 * H)]
    assert run(needs, now=BASE + 10 * H) == {"big": 11.0, "small": 0.0}


def test_unknown_departure_plans_over_the_next_24_hours():
    needs = [bus("open_ended", 30.0, None)]
    assert run(needs, now=BASE + 10 * H) == {"open_ended": 0.0}
    assert run(needs, now=BASE + 23 * H) == {"open_ended": 11.0}
    # 200 kWh needs 20.25 h; the next 24 h hold only 8 cheap ones.
    assert run([bus("huge", 200.0, None)], now=BASE + 10 * H) == {"huge": 11.0}


def test_a_shared_grid_lowers_the_planning_rate_and_starts_charging_earlier():
    # From 20:00 to midnight with cheap power from 22:00: 2 cheap hours. Alone, each
    # 40 kWh / 50 kW bus plans 1.13 h and waits; sharing a 50 kW grid it plans 2.01 h.
    needs = [bus("a", 40.0, BASE + DAY, max_kw=50.0), bus("b", 40.0, BASE + DAY, max_kw=50.0)]
    assert run(needs, now=BASE + 20 * H) == {"a": 0.0, "b": 0.0}
    shared = run(needs, now=BASE + 20 * H, grid_kw=50.0)
    assert shared == {"a": 50.0, "b": 0.0}


def test_a_waiting_session_does_not_take_power_from_an_eligible_one():
    # Sharing 11 kW, "soon" (laxity 12.8 h) plans 0.69 h and can wait for the cheap
    # hour before it leaves; "bulk" (laxity 26.9 h) plans 20.25 h, more than the 8 cheap
    # hours in its window, so it is the one that charges now.
    needs = [bus("soon", 2.2, BASE + 23 * H), bus("bulk", 100.0, BASE + DAY + 22 * H)]
    now = BASE + 10 * H
    assert run(needs, now=now, grid_kw=11.0) == {"soon": 0.0, "bulk": 11.0}
    llf = allocate("least_laxity_first", SiteSnapshot(11.0), needs, now).by_session(needs)
    assert llf == {"soon": 11.0, "bulk": 0.0}


def test_grid_limit_counts_charger_losses():
    needs = [bus("lossy", 44.0, BASE + 12 * H, max_kw=44.0, eff=0.9)]
    assert run(needs, now=BASE + 10 * H, grid_kw=45.0) == {"lossy": 45.0 * 0.9}


def test_eligible_sessions_share_the_grid_by_laxity():
    needs = [bus("tight", 30.0, BASE + 12 * H), bus("looser", 30.0, BASE + 13 * H)]
    assert run(needs, now=BASE + 10 * H, grid_kw=15.0) == {"tight": 11.0, "looser": 4.0}


@given(case=cases())
def test_without_prices_cost_aware_equals_least_laxity_first(case):
    site, needs, now = case
    assert allocate("cost_aware", site, needs, now) == allocate("least_laxity_first", site, needs, now)


@given(case=cases(), price=st.floats(0.0, 1.0))
def test_with_a_flat_price_cost_aware_equals_least_laxity_first(case, price):
    site, needs, now = case
    flat = SiteSnapshot(site.grid_kw, site.groups, ((BASE - DAY, price), (BASE + DAY, price)))
    assert allocate("cost_aware", flat, needs, now) == allocate("least_laxity_first", site, needs, now)


def reference_eligible(site: SiteSnapshot, needs, now: float) -> list[bool]:
    """The eligibility rule as specified, spelled out with explicit interval sorting."""
    grid = max(site.grid_kw, 0.0)
    total = sum(n.max_kw for n in needs if n.energy_kwh > 0 and n.max_kw > 0)
    result = []
    for n in needs:
        if n.energy_kwh <= 0 or n.max_kw <= 0:
            result.append(False)
            continue
        rate = n.max_kw if grid == math.inf else min(n.max_kw, grid * n.efficiency * n.max_kw / total)
        hours = max(n.energy_kwh / rate, n.hours_to_target) if rate > 0 else math.inf
        needed_s = (hours * 1.1 + 0.25) * H
        end = now + DAY if n.departure_s is None else n.departure_s
        if end - now <= needed_s:
            result.append(True)
            continue
        periods = []
        for j, (start, price) in enumerate(site.prices):
            stop = site.prices[j + 1][0] if j + 1 < len(site.prices) else math.inf
            lo, hi = max(start, now), min(stop, end)
            if hi > lo:
                periods.append((price, lo, hi - lo))
        periods.sort()
        chosen, covered = set(), 0.0
        for _price, lo, length in periods:
            if covered >= needed_s:
                break
            chosen.add(lo)
            covered += length
        now_price = next(p for p, lo, _ in periods if lo == now)
        result.append(now in chosen or now_price == periods[0][0])
    return result


@st.composite
def priced_cases(draw: st.DrawFn):
    site, needs, now = draw(cases())
    prices, start = [], now - draw(st.floats(0.0, 4 * H))
    while start < now + 42 * H:
        prices.append((start, draw(st.sampled_from([0.1, 0.2, 0.3]))))
        start += draw(st.sampled_from([H, 2 * H]) | st.floats(0.25 * H, 8 * H))
    return SiteSnapshot(site.grid_kw, site.groups, tuple(prices)), needs, now


@given(case=priced_cases())
def test_cost_aware_charges_exactly_the_eligible_sessions_in_laxity_order(case):
    site, needs, now = case
    eligible = reference_eligible(site, needs, now)
    # Least laxity first with the ineligible sessions' energy zeroed is the
    # specified fill: ineligible sessions get 0, the rest are served by laxity.
    held_back = [
        n if ok else SessionNeed(n.session_id, n.max_kw, n.efficiency, 0.0, n.departure_s, n.hours_to_target, n.groups)
        for n, ok in zip(needs, eligible, strict=True)
    ]
    expected = allocate("least_laxity_first", site, held_back, now)
    assert allocate("cost_aware", site, needs, now) == expected


def test_a_held_session_charges_from_pv_surplus_and_only_from_it():
    needs = [bus("overnight", 30.0, BASE + DAY + 7 * H)]  # waits through the expensive day
    for free, expected in ((0.0, 0.0), (5.0, 5.0), (20.0, 11.0)):
        site = SiteSnapshot(math.inf, (), TOU, free_kw=free)
        assert allocate("cost_aware", site, needs, BASE + 10 * H).by_session(needs) == {"overnight": expected}


def test_eligible_sessions_draw_on_the_surplus_first_and_groups_stay_shared():
    needs = [
        SessionNeed("must_run", 11.0, 1.0, 30.0, BASE + 12 * H, 30.0 / 11.0, (0,)),
        SessionNeed("overnight", 11.0, 1.0, 30.0, BASE + DAY + 7 * H, 30.0 / 11.0, (0,)),
    ]
    now = BASE + 10 * H
    site = SiteSnapshot(math.inf, (CapacityGroup("cab", 100.0),), TOU, free_kw=15.0)
    assert allocate("cost_aware", site, needs, now).by_session(needs) == {"must_run": 11.0, "overnight": 4.0}
    capped = SiteSnapshot(math.inf, (CapacityGroup("cab", 13.0),), TOU, free_kw=15.0)
    assert allocate("cost_aware", capped, needs, now).by_session(needs) == {"must_run": 11.0, "overnight": 2.0}


@given(case=priced_cases(), share=st.floats(0.0, 1.5))
def test_pv_surplus_only_adds_power_to_held_sessions_within_every_limit(case, share):
    site, needs, now = case
    without = allocate("cost_aware", site, needs, now).kw
    free = share * (sum(n.max_kw for n in needs) + 1.0)
    with_pv = allocate("cost_aware", SiteSnapshot(site.grid_kw, site.groups, site.prices, free_kw=free), needs, now).kw
    eligible = reference_eligible(site, needs, now)
    extra_grid = 0.0
    for need, ok, before, after in zip(needs, eligible, without, with_pv, strict=True):
        if ok or need.energy_kwh <= 0:
            assert after == before  # served as before; the surplus is for the held ones
        else:
            assert before == 0.0
            assert 0.0 <= after <= need.max_kw + 1e-9
            extra_grid += after / need.efficiency
    drawn = sum(kw / n.efficiency for kw, n in zip(without, needs, strict=True))
    assert extra_grid <= max(min(free, max(site.grid_kw, 0.0)) - drawn, 0.0) + 1e-6
    for j, group in enumerate(site.groups):
        members = sum(kw for kw, n in zip(with_pv, needs, strict=True) if j in n.groups)
        assert members <= max(group.max_kw, 0.0) + 1e-6
