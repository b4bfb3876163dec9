"""Site background timeline and the stationary battery (models/site.py)."""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from model_scenarios import config

from models.site import SiteChange, StationaryBattery, site_timeline, standby_kw
from scenarios.config import DEFAULT_PV_SHAPE, Battery

PROFILE = [10.0 + h for h in range(24)]  # a different base load for every local hour
NIGHT_AND_PEAK = {
    "energy_price": 0.1,
    "periods": [
        {"start": "23:00", "end": "07:00", "price": 0.05},
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "16:30", "end": "21:00", "price": 0.5},
    ],
}


def change_at(timeline: tuple[SiteChange, ...], t: float) -> SiteChange:
    """The change in force at ``t`` seconds."""
    return timeline[bisect_right([c.t for c in timeline], t) - 1]


# --- site_timeline ----------------------------------------------------------------------


def test_a_constant_site_has_a_single_change_at_time_zero() -> None:
    timeline = site_timeline(config(**{"site.base_load": {"kw": 25}}))
    assert timeline == (SiteChange(0.0, 25.0, 0.0, 0.15),)


def test_the_timeline_starts_at_zero_even_when_the_run_starts_between_hours() -> None:
    timeline = site_timeline(config(start="2025-06-02T10:20:00", **{"site.base_load": {"profile_kw": PROFILE}}))
    assert timeline[0] == SiteChange(0.0, PROFILE[10], 0.0, 0.15)
    assert timeline[1] == SiteChange(40 * 60.0, PROFILE[11], 0.0, 0.15)


def test_the_timeline_lists_only_real_changes_in_increasing_time() -> None:
    profile = [5.0] * 8 + [20.0] * 10 + [5.0] * 6  # changes at 08:00 and 18:00 only
    timeline = site_timeline(config(**{"site.base_load": {"profile_kw": profile}, "duration": "2d"}))
    assert [c.t / 3600 for c in timeline] == [0, 8, 18, 32, 42]
    assert [c.base_kw for c in timeline] == [5.0, 20.0, 5.0, 20.0, 5.0]
    for prev, cur in zip(timeline, timeline[1:], strict=False):
        assert cur.t > prev.t
        assert (prev.base_kw, prev.pv_kw, prev.price) != (cur.base_kw, cur.pv_kw, cur.price)


def test_the_base_load_profile_applies_per_local_hour() -> None:
    # Los Angeles in June is UTC-7: the run starts at local midnight
    timeline = site_timeline(
        config(timezone="America/Los_Angeles", duration="1d", **{"site.base_load": {"profile_kw": PROFILE}})
    )
    assert [c.t for c in timeline] == [h * 3600.0 for h in range(24)]
    assert [c.base_kw for c in timeline] == PROFILE


def test_a_utc_start_in_another_zone_picks_the_local_hour() -> None:
    timeline = site_timeline(
        config(
            start="2025-06-02T00:00:00+00:00",  # 17:00 PDT on Sunday
            timezone="America/Los_Angeles",
            duration="3h",
            **{"site.base_load": {"profile_kw": PROFILE}},
        )
    )
    assert [(c.t, c.base_kw) for c in timeline] == [(0.0, PROFILE[17]), (3600.0, PROFILE[18]), (7200.0, PROFILE[19])]


def test_pv_without_a_shape_is_the_default_shape_times_the_peak() -> None:
    timeline = site_timeline(config(duration="1d", **{"site.pv": {"peak_kw": 200}}))
    pv_by_hour = {h: change_at(timeline, h * 3600.0).pv_kw for h in range(24)}
    assert pv_by_hour == {h: pytest.approx(200 * DEFAULT_PV_SHAPE[h]) for h in range(24)}
    assert max(pv_by_hour.values()) == pytest.approx(180.0)  # 0.9 x peak at 12:00
    # the night hours 20:00-04:59 are one change, not ten
    assert sum(1 for c in timeline if c.pv_kw == 0.0) == 2  # 00:00 and 20:00


def test_a_pv_profile_gives_each_local_hour_its_value_over_a_dst_change() -> None:
    """A CSV profile (keyed by local time into the year) is read at every local hour."""
    from models.site import _profile_at

    berlin = ZoneInfo("Europe/Berlin")
    profile = tuple((h * 3600.0, float(h % 97)) for h in range(365 * 24))  # no two neighbouring hours alike
    from model_scenarios import scenario_dict

    from scenarios.config import Scenario

    data = scenario_dict(
        start="2025-03-29T00:00:00",
        timezone="Europe/Berlin",
        duration="3d",
        **{"site.pv": {"peak_kw": 100, "csv": "pv.csv"}},  # the loader reads the file; the profile is given here
    )
    cfg = Scenario.model_validate(data)
    timeline = site_timeline(cfg, profile)
    start = cfg.start_utc
    seen = 0
    for h in range(71):  # local hours across the spring-forward night (one of them does not exist)
        t = h * 3600.0
        local = (start + timedelta(seconds=t)).astimezone(berlin)
        assert change_at(timeline, t).pv_kw == _profile_at(profile, local.replace(minute=0)), local
        seen += 1
    assert seen == 71
    assert len(timeline) > 60  # a change at (nearly) every hour


def test_a_pv_profile_finer_than_an_hour_changes_at_its_own_rows() -> None:
    june_2 = 152 * 86400.0 + 12 * 3600.0  # 12:00 local on 2 June, as the loader keys it
    profile = ((june_2, 50.0), (june_2 + 900.0, 60.0), (june_2 + 1800.0, 0.0))
    from model_scenarios import scenario_dict

    from scenarios.config import Scenario

    data = scenario_dict(start="2025-06-02T00:00:00", duration="1d", **{"site.pv": {"peak_kw": 100, "csv": "pv.csv"}})
    cfg = Scenario.model_validate(data)  # the loader reads the file; the profile is given here
    timeline = site_timeline(cfg, profile)
    assert [(c.t / 3600, c.pv_kw) for c in timeline] == [(0, 0.0), (12, 50.0), (12.25, 60.0), (12.5, 0.0)]


def test_pv_with_its_own_shape_uses_that_shape() -> None:
    shape = [0.0] * 10 + [0.5, 1.0, 0.5] + [0.0] * 11
    timeline = site_timeline(config(duration="1d", **{"site.pv": {"peak_kw": 80, "shape": shape}}))
    assert [(c.t / 3600, c.pv_kw) for c in timeline] == [(0, 0.0), (10, 40.0), (11, 80.0), (12, 40.0), (13, 0.0)]


def test_prices_change_at_the_band_boundaries_in_local_time() -> None:
    timeline = site_timeline(
        config(
            start="2025-06-06T00:00:00",  # Friday, local time
            timezone="America/Los_Angeles",
            duration="2d",
            **{"site.tariff": NIGHT_AND_PEAK},
        )
    )
    start = datetime(2025, 6, 6, tzinfo=ZoneInfo("America/Los_Angeles"))
    got = [((start + timedelta(seconds=c.t)).strftime("%a %H:%M"), c.price) for c in timeline]
    assert got == [
        ("Fri 00:00", 0.05),
        ("Fri 07:00", 0.1),
        ("Fri 16:30", 0.5),  # a half-hour boundary, not only whole hours
        ("Fri 21:00", 0.1),
        ("Fri 23:00", 0.05),
        ("Sat 07:00", 0.1),  # no weekday peak on Saturday
        ("Sat 23:00", 0.05),
    ]


def test_standby_of_chargers_and_cabinets_is_added_to_the_base_load() -> None:
    chargers = {
        "dc": {
            "count": 5,
            "connector_kw": 150,
            "standby_kw": 0.2,
            "cabinet": {"chargers_per_cabinet": 2, "max_kw": 240, "standby_kw": 0.5},
        },
        "ac": {"count": 4, "kind": "ac", "connector_kw": 11, "standby_kw": 0.05},
    }
    cfg = config(chargers=chargers, **{"site.base_load": {"profile_kw": PROFILE}, "duration": "1d"})
    expected_standby = 5 * 0.2 + 3 * 0.5 + 4 * 0.05  # ceil(5 / 2) = 3 cabinets
    assert standby_kw(cfg) == pytest.approx(expected_standby)
    timeline = site_timeline(cfg)
    assert [c.base_kw for c in timeline] == pytest.approx([p + expected_standby for p in PROFILE])


def test_standby_alone_makes_a_base_load_without_a_base_load_section() -> None:
    cfg = config(chargers={"dc": {"count": 3, "connector_kw": 50, "standby_kw": 0.1}})
    (only,) = site_timeline(cfg)
    assert (only.t, only.pv_kw, only.price) == (0.0, 0.0, 0.15)
    assert only.base_kw == pytest.approx(0.3)


def test_every_quarter_hour_sees_the_values_of_its_local_time_across_a_dst_change() -> None:
    tz = ZoneInfo("America/Los_Angeles")
    cfg = config(
        start="2025-03-07T00:00:00",  # Friday; DST starts Sunday 2025-03-09
        timezone="America/Los_Angeles",
        duration="4d",
        **{
            "site.base_load": {"profile_kw": PROFILE},
            "site.pv": {"peak_kw": 100},
            "site.tariff": NIGHT_AND_PEAK,
            "chargers.dc.standby_kw": 0.25,
        },
    )
    timeline = site_timeline(cfg)
    start = cfg.start_utc
    for quarter in range(4 * 96):
        t = quarter * 900.0
        local = (start + timedelta(seconds=t)).astimezone(tz)
        night = local.hour >= 23 or local.hour < 7
        peak = local.weekday() < 5 and (16, 30) <= (local.hour, local.minute) < (21, 0)
        price = 0.05 if night else 0.5 if peak else 0.1
        change = change_at(timeline, t)
        assert change.base_kw == pytest.approx(PROFILE[local.hour] + 0.25), local
        assert change.pv_kw == pytest.approx(100 * DEFAULT_PV_SHAPE[local.hour]), local
        assert change.price == price, local


def test_on_the_spring_forward_day_local_noon_comes_23_hours_after_the_previous_one() -> None:
    profile = [0.0] * 12 + [99.0] + [0.0] * 11  # only the 12:00 hour differs
    timeline = site_timeline(
        config(
            start="2025-03-08T00:00:00",
            timezone="America/Los_Angeles",
            duration="3d",
            **{"site.base_load": {"profile_kw": profile}},
        )
    )
    start = datetime(2025, 3, 8, tzinfo=ZoneInfo("America/Los_Angeles")).astimezone(UTC)
    rises = [start + timedelta(seconds=c.t) for c in timeline if c.base_kw == 99.0]
    assert [r.hour for r in rises] == [20, 19, 19]  # 12:00 PST, then 12:00 PDT
    assert rises[1] - rises[0] == timedelta(hours=23)


# --- StationaryBattery ------------------------------------------------------------------


def battery(**changes: float) -> StationaryBattery:
    values = {
        "capacity_kwh": 100.0,
        "power_kw": 50.0,
        "round_trip_efficiency": 0.81,  # 0.9 each way
        "initial_soc": 0.5,
        "min_soc": 0.1,
        "max_soc": 0.9,
    }
    values.update(changes)
    return StationaryBattery(Battery(**values))


def test_a_new_battery_takes_its_bounds_and_efficiency_from_the_config() -> None:
    b = battery()
    assert b.energy == pytest.approx(50.0)
    assert b.soc == pytest.approx(0.5)
    assert (b.min_kwh, b.max_kwh) == pytest.approx((10.0, 90.0))
    assert b.eta == pytest.approx(0.9)
    assert b.kw == 0.0


@pytest.mark.parametrize(("net", "expected"), [(-30.0, -30.0), (-50.0, -50.0), (-80.0, -50.0)])
def test_dispatch_soaks_up_pv_surplus_up_to_the_power_rating(net: float, expected: float) -> None:
    b = battery()
    assert b.dispatch(net, 100.0, 0.1, 0.1, 0.1, arbitrage=False) == expected
    assert b.kw == expected


def test_dispatch_does_not_soak_up_surplus_when_full() -> None:
    b = battery(initial_soc=0.9)
    assert b.dispatch(-30.0, 100.0, 0.1, 0.1, 0.1, arbitrage=False) == 0.0


@pytest.mark.parametrize(("net", "expected"), [(80.0, 0.0), (100.0, 0.0), (120.0, 20.0), (149.0, 49.0), (300.0, 50.0)])
def test_dispatch_shaves_only_the_load_above_the_grid_limit(net: float, expected: float) -> None:
    b = battery()
    assert b.dispatch(net, 100.0, 0.1, 0.1, 0.1, arbitrage=False) == pytest.approx(expected)


def test_dispatch_cannot_shave_peaks_when_empty() -> None:
    b = battery(initial_soc=0.1)
    assert b.dispatch(300.0, 100.0, 0.1, 0.1, 0.1, arbitrage=False) == 0.0
    assert b.available_discharge_kw() == 0.0
    assert battery().available_discharge_kw() == 50.0


def test_dispatch_under_an_unlimited_grid_leaves_the_battery_idle_without_arbitrage() -> None:
    b = battery()
    assert b.dispatch(500.0, math.inf, 0.5, 0.05, 0.5, arbitrage=False) == 0.0
    assert b.dispatch(5.0, math.inf, 0.05, 0.05, 0.5, arbitrage=False) == 0.0


def test_arbitrage_discharges_into_the_load_in_the_dearest_band() -> None:
    b = battery()
    assert b.dispatch(30.0, 100.0, 0.5, 0.05, 0.5, arbitrage=True) == 30.0
    assert b.dispatch(80.0, 100.0, 0.5, 0.05, 0.5, arbitrage=True) == 50.0  # power bound
    assert b.dispatch(0.0, 100.0, 0.5, 0.05, 0.5, arbitrage=True) == 0.0  # nothing to feed, no export


def test_arbitrage_charges_within_the_grid_headroom_in_the_cheapest_band() -> None:
    b = battery()
    assert b.dispatch(70.0, 100.0, 0.05, 0.05, 0.5, arbitrage=True) == pytest.approx(-30.0)
    assert b.dispatch(20.0, 100.0, 0.05, 0.05, 0.5, arbitrage=True) == -50.0  # power bound
    assert b.dispatch(100.0, 100.0, 0.05, 0.05, 0.5, arbitrage=True) == 0.0  # no headroom
    assert b.dispatch(20.0, math.inf, 0.05, 0.05, 0.5, arbitrage=True) == -50.0  # unlimited grid


def test_arbitrage_in_the_cheapest_band_still_shaves_peaks_instead_of_charging() -> None:
    b = battery()
    assert b.dispatch(130.0, 100.0, 0.05, 0.05, 0.5, arbitrage=True) == pytest.approx(30.0)


def test_arbitrage_does_nothing_in_a_middle_price_band() -> None:
    b = battery()
    assert b.dispatch(30.0, 100.0, 0.1, 0.05, 0.5, arbitrage=True) == 0.0


def test_arbitrage_is_only_done_when_asked() -> None:
    b = battery()
    assert b.dispatch(30.0, 100.0, 0.5, 0.05, 0.5, arbitrage=False) == 0.0
    assert b.dispatch(30.0, 100.0, 0.05, 0.05, 0.5, arbitrage=False) == 0.0


def test_arbitrage_needs_more_than_one_price_level() -> None:
    b = battery()
    assert b.dispatch(30.0, 100.0, 0.1, 0.1, 0.1, arbitrage=True) == 0.0


def test_arbitrage_respects_the_energy_bounds() -> None:
    assert battery(initial_soc=0.1).dispatch(30.0, 100.0, 0.5, 0.05, 0.5, arbitrage=True) == 0.0
    assert battery(initial_soc=0.9).dispatch(20.0, 100.0, 0.05, 0.05, 0.5, arbitrage=True) == 0.0


@pytest.mark.parametrize("net", [-500.0, -60.0, -1.0, 0.0, 10.0, 99.0, 150.0, 1000.0])
@pytest.mark.parametrize("price", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("soc", [0.1, 0.5, 0.9])
def test_dispatch_never_exceeds_the_power_rating_or_the_energy_bounds(net: float, price: float, soc: float) -> None:
    b = battery(initial_soc=soc)
    kw = b.dispatch(net, 100.0, price, 0.05, 0.5, arbitrage=True)
    assert -50.0 <= kw <= 50.0
    if soc == 0.1:
        assert kw <= 0.0  # empty: cannot discharge
    if soc == 0.9:
        assert kw >= 0.0  # full: cannot charge
    if net < 0:
        assert kw <= 0.0  # a PV surplus is never made larger by discharging
        assert kw >= net  # nor charged from the grid beyond the surplus


def test_advance_while_discharging_draws_more_energy_than_delivered() -> None:
    b = battery()
    b.kw = 18.0
    b.advance(0.5)
    assert b.energy == pytest.approx(50.0 - 9.0 / 0.9)


def test_advance_while_charging_stores_less_energy_than_drawn() -> None:
    b = battery()
    b.kw = -20.0
    b.advance(1.5)
    assert b.energy == pytest.approx(50.0 + 30.0 * 0.9)


def test_advance_at_zero_power_keeps_the_energy() -> None:
    b = battery()
    b.advance(10.0)
    assert b.energy == 50.0


def test_a_full_cycle_returns_the_round_trip_efficiency() -> None:
    b = battery(initial_soc=0.1, round_trip_efficiency=0.85)
    b.kw = -40.0
    b.advance(1.0)  # 40 kWh from the site
    stored = b.energy - b.min_kwh
    b.kw = 20.0
    hours = b.hours_to_bound()
    b.advance(hours)
    delivered = 20.0 * hours
    assert b.energy == pytest.approx(b.min_kwh)
    assert delivered == pytest.approx(40.0 * 0.85)
    assert stored == pytest.approx(40.0 * math.sqrt(0.85))


def test_advance_never_leaves_the_energy_window() -> None:
    b = battery()
    b.kw = 50.0
    b.advance(10.0)
    assert b.energy == pytest.approx(10.0)
    b.kw = -50.0
    b.advance(10.0)
    assert b.energy == pytest.approx(90.0)


def test_hours_to_bound_while_discharging_reaches_the_floor_exactly() -> None:
    b = battery()
    b.kw = 30.0
    hours = b.hours_to_bound()
    assert hours == pytest.approx((50.0 - 10.0) * 0.9 / 30.0)
    b.advance(hours)
    assert b.energy == pytest.approx(b.min_kwh)


def test_hours_to_bound_while_charging_reaches_the_ceiling_exactly() -> None:
    b = battery()
    b.kw = -25.0
    hours = b.hours_to_bound()
    assert hours == pytest.approx((90.0 - 50.0) / (25.0 * 0.9))
    b.kw = -25.0
    energy = b.energy
    b.advance(hours / 2)
    assert b.energy == pytest.approx((energy + b.max_kwh) / 2)
    b.advance(hours / 2)
    assert b.energy == pytest.approx(b.max_kwh)


def test_hours_to_bound_is_infinite_at_rest_and_at_the_bound() -> None:
    # at its bound there is no further "bound reached" event to schedule: the next
    # dispatch stops the battery (scheduling one "now" again and again would never end)
    b = battery()
    assert b.hours_to_bound() == math.inf
    empty = battery(initial_soc=0.1)
    empty.kw = 10.0
    assert empty.hours_to_bound() == math.inf
    full = battery(initial_soc=0.9)
    full.kw = -10.0
    assert full.hours_to_bound() == math.inf


def test_energy_within_a_hair_of_a_bound_snaps_onto_it() -> None:
    b = battery(initial_soc=0.5)
    b.energy = b.min_kwh + 1e-9
    b.kw = 0.0
    b.advance(1.0)
    assert b.energy == b.min_kwh
    assert b.available_discharge_kw() == 0.0


def test_pv_csv_profile_is_read_by_local_wall_clock_time_also_in_summer() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from models.site import _profile_at

    # one row per hour of the year, value = local hour of day, keyed as the loader keys it
    profile = tuple((h * 3600.0, float(h % 24)) for h in range(365 * 24))
    berlin = ZoneInfo("Europe/Berlin")
    assert _profile_at(profile, datetime(2025, 1, 15, 12, tzinfo=berlin)) == 12.0
    assert _profile_at(profile, datetime(2025, 6, 15, 12, tzinfo=berlin)) == 12.0
