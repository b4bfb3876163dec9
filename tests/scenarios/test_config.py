"""The scenario schema (scenarios/config.py): parsers, model rules and the JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from scenarios.config import (
    DEFAULT_PV_SHAPE,
    PV,
    STRATEGIES,
    BaseLoad,
    Battery,
    Block,
    ChargerFault,
    ChargerGroup,
    Charging,
    DailySchedule,
    FleetGroup,
    Operations,
    Scenario,
    Tariff,
    TariffPeriod,
    VehicleLate,
    VehicleType,
    parse_duration,
    parse_time_of_day,
)


def minimal(**changes: Any) -> dict[str, Any]:
    """The smallest valid scenario as a plain dict."""
    data: dict[str, Any] = {
        "start": "2025-06-02T00:00:00",
        "timezone": "America/Los_Angeles",
        "site": {"grid_kw": 500},
        "chargers": {"dc150": {"count": 2, "connector_kw": 150}},
        "fleet": {
            "vehicle_types": {"bus": {"battery_kwh": 400, "consumption_kwh_per_km": 1.15}},
            "groups": {
                "city": {
                    "vehicle_type": "bus",
                    "count": 2,
                    "schedule": {"blocks": [{"pull_out": "05:00", "pull_in": "12:00", "km": 120}]},
                }
            },
        },
    }
    data.update(changes)
    return data


def error_locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [err["loc"] for err in exc.value.errors()]


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("1d6h", timedelta(hours=30)),
        ("1d12h", timedelta(hours=36)),
        ("36h", timedelta(hours=36)),
        ("90min", timedelta(minutes=90)),
        ("30s", timedelta(seconds=30)),
        ("1h30min", timedelta(minutes=90)),
        ("2m", timedelta(minutes=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
        ("1d 6h", timedelta(hours=30)),
        (3600, timedelta(hours=1)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_parse_duration_accepts(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["7 weeks", "", "   ", "7", "d7", "7d garbage", "1y", "-1h", "7dd", None, True, [1], -5]
)
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=400 * 86400), st.integers(0, 999_999))
def test_duration_serialises_to_text_that_parses_back(seconds: int, micros: int) -> None:
    action = VehicleLate(
        at="1d",
        type="vehicle_late",
        vehicle="x-001",
        delay=timedelta(seconds=seconds, microseconds=micros),
    )
    dumped = action.model_dump(mode="json")
    assert "e" not in dumped["delay"]
    assert VehicleLate.model_validate(dumped) == action


def test_scenario_duration_round_trips_through_json_beyond_a_million_seconds() -> None:
    config = Scenario.model_validate(minimal(duration="14d"))
    dumped = config.model_dump(mode="json")
    assert dumped["duration"] == "1209600s"
    assert Scenario.model_validate(dumped).duration == timedelta(days=14)


def test_scenario_duration_must_be_positive() -> None:
    with pytest.raises(ValidationError) as exc:
        Scenario.model_validate(minimal(duration="0s"))
    assert error_locs(exc) == [("duration",)]
    assert "must be > 0" in str(exc.value)


def test_scenario_duration_defaults_to_a_week() -> None:
    assert Scenario.model_validate(minimal()).duration == timedelta(days=7)


# --- times of day -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("05:30", 330), ("5:30", 330), ("00:00", 0), ("25:10", 1510), ("47:59", 2879), (90, 90)],
)
def test_parse_time_of_day_accepts(text: Any, minutes: int) -> None:
    assert parse_time_of_day(text) == minutes


@pytest.mark.parametrize("text", ["24:60", "48:00", "99:00", "5.30", "05:3", "", "noon", "05:30:00", True, -1, 2880])
def test_parse_time_of_day_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="time of day"):
        parse_time_of_day(text)


def test_time_of_day_serialises_as_hh_mm() -> None:
    block = Block(pull_out="5:05", pull_in="25:10", km=10)
    assert block.pull_out == 305
    assert block.model_dump(mode="json") == {"pull_out": "05:05", "pull_in": "25:10", "km": 10.0}


# --- daily schedules --------------------------------------------------------------------


def schedule(*blocks: tuple[str, str]) -> DailySchedule:
    return DailySchedule.model_validate({"blocks": [{"pull_out": o, "pull_in": i, "km": 50} for o, i in blocks]})


def test_daily_schedule_accepts_ordered_blocks_and_overnight_return() -> None:
    sched = schedule(("05:00", "12:30"), ("15:00", "01:00"))
    assert [(b.pull_out, b.pull_in) for b in sched.blocks] == [(300, 750), (900, 60)]
    assert sched.days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.mark.parametrize(
    "blocks",
    [
        (("05:00", "12:30"), ("12:00", "18:00")),  # second starts before first ends
        (("05:00", "12:30"), ("12:30", "18:00")),  # starts exactly at the return
        (("15:00", "18:00"), ("05:00", "08:00")),  # out of order
        (("20:00", "02:00"), ("01:00", "04:00")),  # overnight block overlaps the next
    ],
)
def test_daily_schedule_rejects_overlapping_blocks(blocks: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValidationError, match="block 1 starts before block 0 ends"):
        schedule(*blocks)


def test_daily_schedule_must_span_less_than_a_day() -> None:
    with pytest.raises(ValidationError, match="less than 24 h"):
        schedule(("05:00", "20:00"), ("21:00", "05:00"))


def test_daily_schedule_needs_a_block() -> None:
    with pytest.raises(ValidationError) as exc:
        DailySchedule.model_validate({"blocks": []})
    assert error_locs(exc) == [("blocks",)]


def test_daily_schedule_rejects_unknown_weekday() -> None:
    with pytest.raises(ValidationError) as exc:
        DailySchedule.model_validate(
            {
                "days": ["mon", "funday"],
                "blocks": [{"pull_out": "05:00", "pull_in": "06:00", "km": 5}],
            }
        )
    assert error_locs(exc) == [("days", 1)]


# --- start time and time zone -----------------------------------------------------------


def test_start_without_offset_is_read_in_the_scenario_timezone() -> None:
    config = Scenario.model_validate(minimal())
    assert config.start.tzinfo is None
    assert config.start_utc == datetime(2025, 6, 2, 7, 0, tzinfo=UTC)  # PDT = UTC-7


def test_start_without_offset_in_berlin_winter() -> None:
    config = Scenario.model_validate(minimal(start="2025-01-06T00:00:00", timezone="Europe/Berlin"))
    assert config.start_utc == datetime(2025, 1, 5, 23, 0, tzinfo=UTC)


def test_start_with_offset_keeps_its_offset() -> None:
    config = Scenario.model_validate(minimal(start="2025-06-02T00:00:00+00:00"))
    assert config.start_utc == datetime(2025, 6, 2, 0, 0, tzinfo=UTC)


def test_timezone_defaults_to_utc() -> None:
    data = minimal()
    del data["timezone"]
    config = Scenario.model_validate(data)
    assert config.timezone == "UTC"
    assert config.start_utc == datetime(2025, 6, 2, tzinfo=UTC)


def test_unknown_timezone_is_rejected() -> None:
    with pytest.raises(ValidationError, match="IANA time zone") as exc:
        Scenario.model_validate(minimal(timezone="Mars/Olympus"))
    assert error_locs(exc) == [("timezone",)]


# --- JSON Schema ------------------------------------------------------------------------


def test_json_schema_has_top_level_properties_and_strategy_enum() -> None:
    schema = Scenario.model_json_schema()
    json.dumps(schema)  # serialisable as printed by `depotsim schema`
    assert set(schema["properties"]) == {
        "name", "description", "start", "timezone", "duration", "seed", "site",
        "chargers", "fleet", "operations", "charging", "actions",
    }  # fmt: skip
    assert set(schema["required"]) == {"start", "site", "chargers", "fleet"}
    assert schema["additionalProperties"] is False
    strategy = schema["$defs"]["Charging"]["properties"]["strategy"]
    assert strategy["enum"] == list(STRATEGIES)
    assert strategy["enum"] == [
        "uncontrolled",
        "equal_share",
        "earliest_departure_first",
        "least_laxity_first",
        "cost_aware",
    ]
    assert strategy["default"] == "least_laxity_first"


def test_json_schema_describes_durations_times_and_actions() -> None:
    schema = Scenario.model_json_schema()
    assert schema["properties"]["duration"]["type"] == "string"
    assert "pattern" in schema["properties"]["duration"]
    block = schema["$defs"]["Block"]["properties"]
    assert block["pull_out"]["pattern"] == r"^\d{1,2}:\d{2}$"
    action_items = schema["properties"]["actions"]["items"]
    assert set(action_items["discriminator"]["mapping"]) == {
        "charger_fault",
        "charger_repair",
        "site_limit",
        "vehicle_late",
    }
    for name in ("Site", "ChargerGroup", "VehicleType", "FleetGroup", "Operations"):
        assert schema["$defs"][name]["description"]


# --- model rules ------------------------------------------------------------------------


def test_models_are_frozen_and_forbid_unknown_fields() -> None:
    config = Scenario.model_validate(minimal())
    with pytest.raises(ValidationError):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(ValidationError) as exc:
        Scenario.model_validate(minimal(sede=3))
    assert exc.value.errors()[0]["type"] == "extra_forbidden"


def test_defaults_of_optional_sections() -> None:
    config = Scenario.model_validate(minimal())
    assert config.name == "scenario"
    assert config.seed == 0
    assert config.actions == ()
    assert config.charging == Charging()
    assert config.charging.strategy == "least_laxity_first"
    assert config.operations.target_soc == 0.9
    assert config.operations.min_departure_soc == 0.3
    assert config.site.tariff == Tariff()
    assert config.site.tariff.energy_price == 0.15
    assert config.site.tariff.demand_window_minutes == 15


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_accepted(strategy: str) -> None:
    assert Charging(strategy=strategy).strategy == strategy


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Charging(strategy="fastest")  # type: ignore[arg-type]
    assert exc.value.errors()[0]["type"] == "literal_error"


def test_base_load_needs_exactly_one_form() -> None:
    assert BaseLoad(kw=30).hourly_kw() == (30.0,) * 24
    profile = tuple(float(h) for h in range(24))
    assert BaseLoad(profile_kw=profile).hourly_kw() == profile
    with pytest.raises(ValidationError, match="exactly one"):
        BaseLoad()
    with pytest.raises(ValidationError, match="exactly one"):
        BaseLoad(kw=1, profile_kw=profile)
    with pytest.raises(ValidationError, match=">= 0"):
        BaseLoad(profile_kw=(-1.0,) + profile[1:])
    with pytest.raises(ValidationError):
        BaseLoad(profile_kw=profile[:23])


def test_pv_shape_defaults_and_limits() -> None:
    pv = PV(peak_kw=250)
    assert pv.shape == DEFAULT_PV_SHAPE
    assert len(pv.shape) == 24
    assert max(pv.shape) == 0.9
    with pytest.raises(ValidationError):
        PV(peak_kw=250, shape=(0.5,) * 23)
    with pytest.raises(ValidationError):
        PV(peak_kw=250, shape=(1.5,) * 24)
    with pytest.raises(ValidationError):
        PV(peak_kw=0)


def test_battery_window_and_defaults() -> None:
    battery = Battery(capacity_kwh=500, power_kw=250)
    assert (battery.round_trip_efficiency, battery.initial_soc) == (0.9, 0.5)
    assert (battery.min_soc, battery.max_soc) == (0.1, 0.95)
    with pytest.raises(ValidationError, match="min_soc must be < max_soc"):
        Battery(capacity_kwh=500, power_kw=250, min_soc=0.9, max_soc=0.9)
    with pytest.raises(ValidationError):
        Battery(capacity_kwh=500, power_kw=250, round_trip_efficiency=1.1)


def test_tariff_demand_window_must_divide_an_hour() -> None:
    assert Tariff(demand_window_minutes=30).demand_window_minutes == 30
    with pytest.raises(ValidationError, match="must divide 60"):
        Tariff(demand_window_minutes=7)
    with pytest.raises(ValidationError):
        Tariff(demand_window_minutes=90)


def test_tariff_period_parses_times_and_days() -> None:
    period = TariffPeriod(start="23:00", end="07:00", price=0.056)
    assert (period.start, period.end) == (1380, 420)
    assert len(period.days) == 7
    with pytest.raises(ValidationError):
        TariffPeriod(start="23:00", end="07:00", price=-0.1)


def test_charger_group_efficiency_defaults_by_kind() -> None:
    assert ChargerGroup(count=1, connector_kw=150).effective_efficiency == 0.94
    assert ChargerGroup(count=1, kind="ac", connector_kw=11).effective_efficiency == 0.88
    assert ChargerGroup(count=1, connector_kw=150, efficiency=0.9).effective_efficiency == 0.9
    with pytest.raises(ValidationError):
        ChargerGroup(count=1, connector_kw=150, connectors_per_charger=9)
    with pytest.raises(ValidationError):
        ChargerGroup(count=0, connector_kw=150)


def test_vehicle_type_needs_a_charging_path_and_a_valid_curve() -> None:
    vt = VehicleType(battery_kwh=113, consumption_kwh_per_km=0.219)
    assert (vt.max_ac_kw, vt.max_dc_kw, vt.charge_curve) == (22.0, 150.0, None)
    with pytest.raises(ValidationError, match="max_ac_kw > 0 or max_dc_kw > 0"):
        VehicleType(battery_kwh=113, consumption_kwh_per_km=0.2, max_ac_kw=0, max_dc_kw=0)
    good = [{"soc": 0, "kw": 150}, {"soc": 0.8, "kw": 150}, {"soc": 1, "kw": 20}]
    curved = VehicleType(battery_kwh=400, consumption_kwh_per_km=1.1, charge_curve=good)
    assert [(p.soc, p.kw) for p in curved.charge_curve or ()] == [(0, 150), (0.8, 150), (1, 20)]
    for curve, message in [
        ([{"soc": 0, "kw": 150}], "at least 2 points"),
        ([{"soc": 0.1, "kw": 150}, {"soc": 1, "kw": 20}], "start at soc 0"),
        ([{"soc": 0, "kw": 150}, {"soc": 0.9, "kw": 20}], "end at soc 1"),
        (
            [
                {"soc": 0, "kw": 1},
                {"soc": 0.5, "kw": 1},
                {"soc": 0.5, "kw": 1},
                {"soc": 1, "kw": 1},
            ],
            "increase strictly",
        ),
    ]:
        with pytest.raises(ValidationError, match=message):
            VehicleType(battery_kwh=400, consumption_kwh_per_km=1.1, charge_curve=curve)


def test_fleet_group_needs_exactly_one_source_and_a_count_for_schedules() -> None:
    sched = {"blocks": [{"pull_out": "07:00", "pull_in": "16:00", "km": 100}]}
    assert FleetGroup(vehicle_type="van", blocks_csv="b.csv").count is None
    with pytest.raises(ValidationError, match="exactly one of 'schedule' or 'blocks_csv'"):
        FleetGroup(vehicle_type="van", count=2)
    with pytest.raises(ValidationError, match="exactly one of 'schedule' or 'blocks_csv'"):
        FleetGroup(vehicle_type="van", count=2, schedule=sched, blocks_csv="b.csv")
    with pytest.raises(ValidationError, match="'count' is required"):
        FleetGroup(vehicle_type="van", schedule=sched)


def test_operations_min_departure_soc_at_most_target() -> None:
    assert Operations(target_soc=0.8, min_departure_soc=0.8).min_departure_soc == 0.8
    with pytest.raises(ValidationError, match="min_departure_soc must be <= target_soc"):
        Operations(target_soc=0.8, min_departure_soc=0.85)
    with pytest.raises(ValidationError):
        Operations(assignment="random")  # type: ignore[arg-type]


def test_actions_are_chosen_by_type() -> None:
    config = Scenario.model_validate(
        minimal(
            actions=[
                {"at": "1d", "type": "charger_fault", "charger": "dc150-01", "duration": "90min"},
                {"at": "1d2h", "type": "charger_repair", "charger": "dc150-01"},
                {"at": "2d", "type": "site_limit", "grid_kw": None},
                {"at": "3d", "type": "vehicle_late", "vehicle": "city-001", "delay": "1h"},
            ]
        )
    )
    kinds = [type(a).__name__ for a in config.actions]
    assert kinds == ["ChargerFault", "ChargerRepair", "SiteLimit", "VehicleLate"]
    fault = config.actions[0]
    assert isinstance(fault, ChargerFault)
    assert fault.duration == timedelta(minutes=90)


def test_action_requires_known_type_and_site_limit_value() -> None:
    with pytest.raises(ValidationError) as exc:
        Scenario.model_validate(minimal(actions=[{"at": "1d", "type": "explode"}]))
    assert exc.value.errors()[0]["type"] == "union_tag_invalid"
    with pytest.raises(ValidationError) as exc:
        Scenario.model_validate(minimal(actions=[{"at": "1d", "type": "site_limit"}]))
    assert exc.value.errors()[0]["loc"] == ("actions", 0, "site_limit", "grid_kw")


def test_action_at_accepts_yaml_timestamps() -> None:
    fault = ChargerFault.model_validate(
        # naive, as PyYAML returns an unquoted timestamp without offset
        {"at": datetime(2025, 6, 3, 10, 0), "type": "charger_fault", "charger": "dc150-01"}  # noqa: DTZ001
    )
    assert fault.at == "2025-06-03T10:00:00"
    assert ChargerFault(at=date(2025, 6, 3), type="charger_fault", charger="x").at == "2025-06-03"


def test_negative_action_durations_are_rejected() -> None:
    with pytest.raises(ValidationError, match=">= 0"):
        VehicleLate(at="1d", type="vehicle_late", vehicle="city-001", delay=-60)


def test_readme_documents_every_field_and_strategy() -> None:
    from pathlib import Path

    from scenarios import config as cfg

    readme = (Path(cfg.__file__).parent / "README.md").read_text(encoding="utf-8")
    models = [
        cfg.Scenario, cfg.Site, cfg.BaseLoad, cfg.PV, cfg.Battery, cfg.Tariff,
        cfg.TariffPeriod, cfg.ChargerGroup, cfg.Cabinet, cfg.Faults, cfg.Fleet,
        cfg.VehicleType, cfg.CurvePoint, cfg.FleetGroup, cfg.DailySchedule, cfg.Block,
        cfg.Operations, cfg.Charging, cfg.ChargerFault, cfg.ChargerRepair, cfg.SiteLimit,
        cfg.VehicleLate,
    ]  # fmt: skip
    missing = [
        f"{model.__name__}.{name}" for model in models for name in model.model_fields if f"`{name}`" not in readme
    ]
    assert missing == []
    for name in (*STRATEGIES, "charger_fault", "charger_repair", "site_limit", "vehicle_late"):
        assert f"`{name}`" in readme


def test_tariff_band_times_must_lie_within_the_day() -> None:
    from pydantic import ValidationError

    from scenarios.config import TariffPeriod

    assert TariffPeriod(start="23:00", end="07:00", price=0.1).end == 7 * 60
    assert TariffPeriod(start="18:00", end="24:00", price=0.1).end == 1440
    with pytest.raises(ValidationError, match="within 00:00-24:00"):
        TariffPeriod(start="24:30", end="25:30", price=0.1)
