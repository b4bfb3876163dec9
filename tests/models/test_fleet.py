"""Vehicles and their trips expanded from schedules and CSV timetables (models/fleet.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from model_scenarios import config, loaded, scenario_dict

from models.battery import ChargeCurve
from models.fleet import Trip, VehicleSpec, build_fleet, vehicle_curve
from scenarios.loader import load_scenario

H = 3600.0
DAY = 86400.0
LA = ZoneInfo("America/Los_Angeles")


def fleet(seed: int = 0, **changes: Any) -> list[VehicleSpec]:
    scenario = loaded(**changes)
    return build_fleet(scenario.config, dict(scenario.dated_blocks), np.random.default_rng(seed))


def schedule(**fields: Any) -> dict[str, Any]:
    return {"blocks": [{"pull_out": "06:00", "pull_in": "14:00", "km": 100}], **fields}


def group(count: int, **schedule_fields: Any) -> dict[str, Any]:
    return {"vehicle_type": "bus", "count": count, "schedule": schedule(**schedule_fields)}


# --- vehicles -----------------------------------------------------------------------------


def test_vehicles_get_three_digit_ids_per_group_in_group_order() -> None:
    vehicles = fleet(**{"fleet.groups": {"trunk": group(3), "peak": group(2)}})
    assert [v.vehicle_id for v in vehicles] == ["trunk-001", "trunk-002", "trunk-003", "peak-001", "peak-002"]
    assert [v.group for v in vehicles] == ["trunk"] * 3 + ["peak"] * 2


def test_vehicles_carry_their_type_and_initial_soc() -> None:
    types = {
        "bus": {"battery_kwh": 400, "consumption_kwh_per_km": 1.2, "max_dc_kw": 150, "max_ac_kw": 0},
        "van": {"battery_kwh": 80, "consumption_kwh_per_km": 0.25, "max_ac_kw": 11, "max_dc_kw": 50},
    }
    groups = {
        "b": {**group(1), "initial_soc": 0.7},
        "v": {"vehicle_type": "van", "count": 1, "schedule": schedule()},
    }
    bus, van = fleet(**{"fleet.vehicle_types": types, "fleet.groups": groups})
    assert (bus.type_name, bus.battery_kwh, bus.max_ac_kw, bus.max_dc_kw, bus.initial_soc) == (
        "bus",
        400.0,
        0.0,
        150.0,
        0.7,
    )
    assert (van.type_name, van.battery_kwh, van.initial_soc) == ("van", 80.0, 0.9)
    assert van.max_kw_for("ac") == 11.0
    assert van.max_kw_for("dc") == 50.0


def test_a_vehicle_without_a_curve_gets_the_two_stage_default_at_its_highest_power() -> None:
    (vehicle,) = fleet()
    assert vehicle.curve == ChargeCurve.two_stage(150.0)
    van = config(
        **{
            "fleet.vehicle_types.bus": {
                "battery_kwh": 80,
                "consumption_kwh_per_km": 0.2,
                "max_ac_kw": 22,
                "max_dc_kw": 0,
            },
            "chargers.dc.kind": "ac",  # a depot it can charge at
        }
    )
    assert vehicle_curve(van.fleet.vehicle_types["bus"]) == ChargeCurve.two_stage(22.0)


def test_a_vehicle_with_a_curve_uses_its_points() -> None:
    points = [{"soc": 0, "kw": 100}, {"soc": 0.7, "kw": 120}, {"soc": 1, "kw": 10}]
    (vehicle,) = fleet(**{"fleet.vehicle_types.bus.charge_curve": points})
    assert vehicle.curve.socs == (0.0, 0.7, 1.0)
    assert vehicle.curve.kws == (100.0, 120.0, 10.0)


# --- daily schedules ----------------------------------------------------------------------


def test_a_daily_block_becomes_one_trip_per_day_of_the_run() -> None:
    (vehicle,) = fleet(duration="3d")
    assert vehicle.trips == [
        Trip(0, 6 * H, 14 * H, 100.0),
        Trip(1, DAY + 6 * H, DAY + 14 * H, 100.0),
        Trip(2, 2 * DAY + 6 * H, 2 * DAY + 14 * H, 100.0),
    ]


def test_trips_are_made_only_on_the_listed_weekdays() -> None:
    # 2025-06-02 is a Monday
    (vehicle,) = fleet(duration="14d", **{"fleet.groups.g": group(1, days=["mon", "wed", "sat"])})
    days = [int(t.pull_out // DAY) for t in vehicle.trips]
    assert days == [0, 2, 5, 7, 9, 12]
    assert [t.index for t in vehicle.trips] == list(range(6))


def test_several_blocks_a_day_and_a_block_past_midnight() -> None:
    blocks = [
        {"pull_out": "05:00", "pull_in": "09:00", "km": 40},
        {"pull_out": "20:00", "pull_in": "02:30", "km": 60},  # back the next morning
    ]
    (vehicle,) = fleet(duration="2d", **{"fleet.groups.g.schedule.blocks": blocks})
    assert [(t.pull_out / H, t.pull_in / H, t.kwh) for t in vehicle.trips] == [
        (5.0, 9.0, 40.0),
        (20.0, 26.5, 60.0),
        (29.0, 33.0, 40.0),
        (44.0, 50.5, 60.0),  # leaves inside the run, returns after its end
    ]


def test_a_block_of_the_day_before_the_start_that_runs_past_midnight_is_not_a_trip() -> None:
    blocks = [{"pull_out": "22:00", "pull_in": "04:00", "km": 50}]
    (vehicle,) = fleet(duration="2d", **{"fleet.groups.g.schedule.blocks": blocks})
    assert [t.pull_out / H for t in vehicle.trips] == [22.0, 46.0]


def test_blocks_before_the_start_or_at_or_after_the_end_are_dropped() -> None:
    (vehicle,) = fleet(start="2025-06-02T10:00:00", duration="44h")  # until 06:00 two days on
    assert [t.pull_out / H for t in vehicle.trips] == [20.0]  # 06:00 next day; 06:00 on day 3 is the end


def test_stagger_shifts_vehicle_k_of_n_by_k_over_n_times_the_stagger() -> None:
    vehicles = fleet(duration="2d", **{"fleet.groups.g": group(4, stagger_minutes=60)})
    for k, vehicle in enumerate(vehicles):
        shift = k / 4 * 60 * 60
        assert [t.pull_out for t in vehicle.trips] == [6 * H + shift, DAY + 6 * H + shift]
        assert [t.pull_in for t in vehicle.trips] == [14 * H + shift, DAY + 14 * H + shift]
    first_out = [v.trips[0].pull_out / 60 for v in vehicles]
    assert first_out == [360.0, 375.0, 390.0, 405.0]


def test_kwh_is_km_times_consumption_without_noise() -> None:
    vehicles = fleet(
        duration="3d",
        **{
            "fleet.groups.g": group(3, stagger_minutes=30, jitter_minutes=5),
            "fleet.vehicle_types.bus.consumption_kwh_per_km": 1.3,
        },
    )
    kwhs = [t.kwh for v in vehicles for t in v.trips]
    assert len(kwhs) == 9
    assert kwhs == pytest.approx([130.0] * 9)


def test_without_randomness_the_seed_does_not_matter() -> None:
    a = fleet(seed=1, duration="3d", **{"fleet.groups.g": group(3, stagger_minutes=30)})
    b = fleet(seed=2, duration="3d", **{"fleet.groups.g": group(3, stagger_minutes=30)})
    assert [v.trips for v in a] == [v.trips for v in b]


JITTERY = {
    "fleet.groups.g": group(5, jitter_minutes=10, km_jitter=0.1),
    "fleet.vehicle_types.bus.consumption_sigma": 0.2,
}


def test_jitter_is_the_same_for_the_same_seed() -> None:
    a = fleet(seed=7, duration="5d", **JITTERY)
    b = fleet(seed=7, duration="5d", **JITTERY)
    assert [v.trips for v in a] == [v.trips for v in b]


def test_jitter_differs_for_another_seed() -> None:
    a = fleet(seed=7, duration="5d", **JITTERY)
    b = fleet(seed=8, duration="5d", **JITTERY)
    pairs = [(x, y) for va, vb in zip(a, b, strict=True) for x, y in zip(va.trips, vb.trips, strict=True)]
    assert len(pairs) == 25
    assert all(x.pull_out != y.pull_out for x, y in pairs)
    assert all(x.kwh != y.kwh for x, y in pairs)


def test_jitter_spreads_times_around_the_schedule_with_its_standard_deviation() -> None:
    vehicles = fleet(seed=3, duration="7d", **{"fleet.groups.g": group(60, jitter_minutes=10)})
    outs = np.array([t.pull_out - (t.pull_out // DAY) * DAY - 6 * H for v in vehicles for t in v.trips]) / 60
    ins = np.array([t.pull_in - (t.pull_in // DAY) * DAY - 14 * H for v in vehicles for t in v.trips]) / 60
    assert len(outs) == 420
    assert abs(outs.mean()) < 2.0
    assert abs(ins.mean()) < 2.0
    assert outs.std() == pytest.approx(10.0, rel=0.15)
    assert ins.std() == pytest.approx(10.0, rel=0.15)
    assert not np.allclose(outs, ins)  # pull-out and pull-in are jittered independently


def test_consumption_noise_averages_to_one_over_many_blocks() -> None:
    sigma = 0.3
    vehicles = fleet(
        seed=11,
        duration="10d",
        **{"fleet.groups.g": group(300), "fleet.vehicle_types.bus.consumption_sigma": sigma},
    )
    factors = np.array([t.kwh / 100.0 for v in vehicles for t in v.trips])
    assert len(factors) == 3000
    assert factors.min() > 0
    assert factors.mean() == pytest.approx(1.0, abs=0.02)  # mean-one lognormal
    assert np.median(factors) == pytest.approx(math.exp(-sigma * sigma / 2), abs=0.02)  # median below the mean
    assert np.log(factors).std() == pytest.approx(sigma, rel=0.05)


def test_km_jitter_is_a_relative_spread_of_the_distance_with_mean_one() -> None:
    vehicles = fleet(seed=4, duration="10d", **{"fleet.groups.g": group(200, km_jitter=0.1)})
    factors = np.array([t.kwh / 100.0 for v in vehicles for t in v.trips])
    assert factors.mean() == pytest.approx(1.0, abs=0.01)
    assert factors.std() == pytest.approx(0.1, rel=0.1)


def test_heavy_jitter_never_makes_a_vehicle_leave_before_it_is_back() -> None:
    blocks = [
        {"pull_out": "06:00", "pull_in": "06:30", "km": 10},
        {"pull_out": "06:40", "pull_in": "07:00", "km": 10},
    ]
    for seed in range(5):
        vehicles = fleet(
            seed=seed,
            duration="4d",
            **{
                "fleet.groups.g": {
                    **group(6, jitter_minutes=30),
                    "schedule": {**schedule(jitter_minutes=30), "blocks": blocks},
                }
            },
        )
        for vehicle in vehicles:
            for prev, cur in zip(vehicle.trips, vehicle.trips[1:], strict=False):
                assert cur.pull_out >= prev.pull_in
            for trip in vehicle.trips:
                assert trip.pull_in - trip.pull_out >= 600.0  # at least ten minutes out


def _trips_slot_by_slot(slots: list, shift: float, jitter_s: float, km_jitter: float, per_kwh: float,
                        sigma: float, horizon: float, rng: np.random.Generator) -> list[Trip]:  # fmt: skip
    """The trips one slot at a time, with the generator's own normal and lognormal draws."""
    trips: list[Trip] = []
    last_in = -math.inf
    for out_base, back_base, km in slots:
        out = out_base + shift + (float(rng.normal(0.0, jitter_s)) if jitter_s else 0.0)
        back = back_base + shift + (float(rng.normal(0.0, jitter_s)) if jitter_s else 0.0)
        out = max(out, last_in)
        back = max(back, out + 600.0)
        if km_jitter:
            km = km * max(float(rng.normal(1.0, km_jitter)), 0.05)
        kwh = km * per_kwh * (float(rng.lognormal(-sigma * sigma / 2, sigma)) if sigma > 0 else 1.0)
        if 0 <= out < horizon:
            trips.append(Trip(len(trips), out, back, kwh))
            last_in = back
    return trips


CLOSE_BLOCKS = [
    {"pull_out": "06:00", "pull_in": "06:30", "km": 10},
    {"pull_out": "06:40", "pull_in": "07:00", "km": 10},
]


@pytest.mark.parametrize(
    ("jitter", "km_jitter", "sigma", "blocks"),
    [
        (10, 0.1, 0.2, None),
        (0, 0.1, 0.2, None),
        (25, 0, 0.3, None),
        (5, 0.2, 0, None),
        (30, 0.1, 0.2, CLOSE_BLOCKS),  # blocks pushed back by the one before: trips built one by one
    ],
)
def test_trips_are_exactly_the_slot_by_slot_draws(
    jitter: int, km_jitter: float, sigma: float, blocks: list[dict[str, Any]] | None
) -> None:
    from models.fleet import _daily_slots, _daily_trips

    fields = {"jitter_minutes": jitter, "km_jitter": km_jitter, "stagger_minutes": 90}
    if blocks is not None:
        fields["blocks"] = blocks
    scenario = loaded(
        duration="30d",
        **{"fleet.groups.g": group(7, **fields), "fleet.vehicle_types.bus.consumption_sigma": sigma},
    )
    cfg = scenario.config
    sched = cfg.fleet.groups["g"].schedule
    vtype = cfg.fleet.vehicle_types["bus"]
    slots = _daily_slots(cfg, sched)
    horizon = cfg.duration.total_seconds()
    for k in range(7):
        got = _daily_trips(slots, sched, vtype, horizon, k, 7, np.random.default_rng(k))
        want = _trips_slot_by_slot(
            slots, sched.stagger_minutes * k / 7 * 60.0, jitter * 60.0, km_jitter, vtype.consumption_kwh_per_km,
            sigma, horizon, np.random.default_rng(k),
        )  # fmt: skip
        assert got == want  # every field to the last bit


def test_block_times_stay_at_local_clock_time_across_spring_forward() -> None:
    (vehicle,) = fleet(start="2025-03-08T00:00:00", timezone="America/Los_Angeles", duration="3d")
    start = datetime(2025, 3, 8, tzinfo=LA).astimezone(UTC)
    outs = [(start + timedelta(seconds=t.pull_out)).astimezone(LA) for t in vehicle.trips]
    ins = [(start + timedelta(seconds=t.pull_in)).astimezone(LA) for t in vehicle.trips]
    assert [(o.day, o.hour, o.minute) for o in outs] == [(8, 6, 0), (9, 6, 0), (10, 6, 0)]
    assert [(i.day, i.hour, i.minute) for i in ins] == [(8, 14, 0), (9, 14, 0), (10, 14, 0)]
    # the Sunday 06:00 is only 23 real hours after Saturday's
    assert [t.pull_out / H for t in vehicle.trips] == [6.0, 29.0, 53.0]


def test_block_times_stay_at_local_clock_time_across_fall_back() -> None:
    (vehicle,) = fleet(start="2025-11-01T00:00:00", timezone="America/Los_Angeles", duration="3d")
    assert [t.pull_out / H for t in vehicle.trips] == [6.0, 31.0, 55.0]


def test_an_overnight_block_over_the_dst_change_keeps_both_clock_times() -> None:
    blocks = [{"pull_out": "22:00", "pull_in": "06:00", "km": 80}]
    (vehicle,) = fleet(
        start="2025-03-08T00:00:00",
        timezone="America/Los_Angeles",
        duration="1d",
        **{"fleet.groups.g.schedule.blocks": blocks},
    )
    (trip,) = vehicle.trips
    start = datetime(2025, 3, 8, tzinfo=LA).astimezone(UTC)
    back = (start + timedelta(seconds=trip.pull_in)).astimezone(LA)
    assert (back.day, back.hour) == (9, 6)
    assert trip.pull_in - trip.pull_out == 7 * H  # 22:00 PST to 06:00 PDT


# --- dated blocks from CSV ----------------------------------------------------------------


def csv_fleet(tmp_path: Path, rows: str, seed: int = 0, **changes: Any) -> list[VehicleSpec]:
    path = tmp_path / "blocks.csv"
    path.write_text("vehicle_id,pull_out,pull_in,km,kwh\n" + rows, encoding="utf-8")
    data = scenario_dict(**{"fleet.groups.g": {"vehicle_type": "bus", "blocks_csv": str(path)}, **changes})
    scenario = load_scenario(data)
    return build_fleet(scenario.config, dict(scenario.dated_blocks), np.random.default_rng(seed))


def test_csv_blocks_become_trips_of_their_vehicles_with_kwh_given_or_from_km(tmp_path: Path) -> None:
    rows = (
        "shuttle-b,2025-06-02T07:00:00,2025-06-02T11:00:00,70,\n"
        "shuttle-a,2025-06-02T06:15:00,2025-06-02T10:45:00,,22.5\n"
        "shuttle-a,2025-06-02T13:00:00,2025-06-02T15:30:00,30,\n"
    )
    vehicles = csv_fleet(tmp_path, rows, **{"fleet.vehicle_types.bus.consumption_kwh_per_km": 0.3})
    assert [v.vehicle_id for v in vehicles] == ["shuttle-a", "shuttle-b"]
    assert all(v.group == "g" for v in vehicles)
    a, b = vehicles
    assert a.trips == [Trip(0, 6.25 * H, 10.75 * H, 22.5), Trip(1, 13 * H, 15.5 * H, pytest.approx(9.0))]
    assert b.trips == [Trip(0, 7 * H, 11 * H, pytest.approx(21.0))]


def test_csv_blocks_outside_the_run_are_dropped_and_indices_stay_consecutive(tmp_path: Path) -> None:
    # the run is 2025-06-02 00:00 to 2025-06-04 00:00 UTC
    rows = (
        "v1,2025-06-01T20:00:00,2025-06-02T01:00:00,,10\n"  # left before the start
        "v1,2025-06-02T08:00:00,2025-06-02T09:00:00,,11\n"
        "v1,2025-06-03T23:00:00,2025-06-04T01:00:00,,12\n"  # leaves inside, returns after the end
        "v1,2025-06-04T01:30:00,2025-06-04T02:00:00,,13\n"  # after the end
        "v2,2025-06-04T00:00:00,2025-06-04T02:00:00,,14\n"  # exactly at the end
    )
    v1, v2 = csv_fleet(tmp_path, rows)
    assert [(t.index, t.pull_out / H, t.pull_in / H, t.kwh) for t in v1.trips] == [
        (0, 8.0, 9.0, 11.0),
        (1, 47.0, 49.0, 12.0),
    ]
    assert v2.vehicle_id == "v2"
    assert v2.trips == []  # the vehicle still exists, it just has nothing to do


def test_csv_block_times_in_local_time_are_read_in_the_scenario_zone(tmp_path: Path) -> None:
    rows = (
        "v1,2025-06-02T06:00:00,2025-06-02T10:00:00,,20\n"  # local (PDT) times
        "v1,2025-06-02T18:00:00+00:00,2025-06-02T19:00:00+00:00,,5\n"  # 11:00-12:00 PDT
    )
    (vehicle,) = csv_fleet(tmp_path, rows, timezone="America/Los_Angeles")
    # the scenario starts at local midnight (07:00 UTC)
    assert [(t.pull_out / H, t.pull_in / H) for t in vehicle.trips] == [(6.0, 10.0), (11.0, 12.0)]


def test_csv_consumption_noise_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    rows = "".join(f"v1,2025-06-02T{h:02d}:00:00,2025-06-02T{h:02d}:30:00,10,\n" for h in range(0, 24, 2))
    changes = {"fleet.vehicle_types.bus.consumption_sigma": 0.2}
    a = csv_fleet(tmp_path, rows, seed=3, **changes)[0].trips
    b = csv_fleet(tmp_path, rows, seed=3, **changes)[0].trips
    c = csv_fleet(tmp_path, rows, seed=4, **changes)[0].trips
    assert a == b
    assert [t.kwh for t in a] != [t.kwh for t in c]
    assert len({t.kwh for t in a}) == len(a)  # every block draws its own factor
    assert [(t.pull_out, t.pull_in) for t in a] == [(t.pull_out, t.pull_in) for t in c]  # times are never jittered


def test_the_mixed_depot_builds_buses_vans_and_csv_shuttles() -> None:
    path = Path(__file__).resolve().parents[2] / "scenarios" / "mixed_depot.yaml"
    scenario = load_scenario(path)
    vehicles = build_fleet(scenario.config, dict(scenario.dated_blocks), np.random.default_rng(scenario.config.seed))
    ids = [v.vehicle_id for v in vehicles]
    assert ids[:8] == [f"bus-{k:03d}" for k in range(1, 9)]
    assert ids[8:16] == [f"van-{k:03d}" for k in range(1, 9)]
    assert ids[16:] == ["shuttle-a", "shuttle-b", "shuttle-c", "shuttle-d"]
    buses = vehicles[:8]
    assert all(len(v.trips) == 14 for v in buses)  # two blocks a day, seven days
    vans = vehicles[8:16]
    assert all(len(v.trips) == 6 for v in vans)  # Monday to Saturday
    horizon = scenario.config.duration.total_seconds()
    assert all(0 <= t.pull_out < horizon and t.pull_in > t.pull_out for v in vehicles for t in v.trips)
