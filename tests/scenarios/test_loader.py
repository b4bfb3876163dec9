"""Loading scenario files (scenarios/loader.py): bundled examples, errors, overrides, CSVs."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.errors import DepotsimError
from scenarios.config import Scenario
from scenarios.errors import FieldProblem, ScenarioError
from scenarios.loader import LoadedScenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BUNDLED = sorted(SCENARIOS.glob("*.yaml"))


def bus_dict() -> dict[str, Any]:
    return yaml.safe_load((SCENARIOS / "bus_depot.yaml").read_text(encoding="utf-8"))


def write_yaml(tmp_path: Path, data: Any, name: str = "bus_depot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(source: Any, overrides: dict[str, Any] | None = None) -> ScenarioError:
    with pytest.raises(ScenarioError) as exc:
        load_scenario(source, overrides)
    return exc.value


def csv_scenario(tmp_path: Path, rows: str, count: int | None = None) -> Path:
    """bus_depot with its 'peak' group replaced by a group read from blocks.csv."""
    (tmp_path / "blocks.csv").write_text(rows, encoding="utf-8")
    data = bus_dict()
    group: dict[str, Any] = {"vehicle_type": "ebus_12m", "blocks_csv": "blocks.csv"}
    if count is not None:
        group["count"] = count
    data["fleet"]["groups"]["peak"] = group
    return write_yaml(tmp_path, data)


CSV_HEADER = "vehicle_id,pull_out,pull_in,km,kwh\n"
CSV_WHERE = "fleet.groups.peak.blocks_csv"


# --- bundled scenarios ------------------------------------------------------------------


def test_there_are_three_bundled_scenarios() -> None:
    assert {p.name for p in BUNDLED} >= {"bus_depot.yaml", "van_depot.yaml", "mixed_depot.yaml"}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_scenario_loads(path: Path) -> None:
    loaded = load_scenario(path)
    assert isinstance(loaded, LoadedScenario)
    assert isinstance(loaded.config, Scenario)
    assert loaded.source == str(path)
    assert loaded.config.name == path.stem
    assert len(loaded.action_offsets) == len(loaded.config.actions)
    horizon = loaded.config.duration.total_seconds()
    assert all(0 <= off <= horizon for off in loaded.action_offsets)  # all happen in the run
    assert loaded.config.site.grid_kw is not None  # all examples are grid-limited


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_scenario_loads_identically_from_json(path: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for csv_file in SCENARIOS.glob("*.csv"):
        shutil.copy(csv_file, tmp_path / csv_file.name)
    json_path = tmp_path / f"{path.stem}.json"
    json_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    from_yaml = load_scenario(path)
    from_json = load_scenario(json_path)
    assert from_json.config == from_yaml.config
    assert from_json.dated_blocks == from_yaml.dated_blocks
    assert from_json.action_offsets == from_yaml.action_offsets
    assert from_json.source == str(json_path)


def test_van_depot_contents() -> None:
    config = load_scenario(SCENARIOS / "van_depot.yaml").config
    groups = config.fleet.groups
    assert sum(g.count or 0 for g in groups.values()) == 120
    types = config.fleet.vehicle_types
    assert sorted(t.battery_kwh for t in types.values()) == [68, 113]
    assert all(c.kind == "ac" for c in config.chargers.values())
    assert all(11 <= c.connector_kw <= 22 for c in config.chargers.values())
    connectors = sum(c.count * c.connectors_per_charger for c in config.chargers.values())
    assert connectors >= 120
    assert config.charging.strategy in {"equal_share", "cost_aware"}
    assert config.duration == timedelta(days=7)
    for group in groups.values():
        assert group.schedule is not None
        assert group.schedule.days == ("mon", "tue", "wed", "thu", "fri", "sat")
        for block in group.schedule.blocks:
            assert 90 <= block.km <= 160
            assert 7 * 60 <= block.pull_out <= 8 * 60 + 30
            assert 16 * 60 <= block.pull_in + group.schedule.stagger_minutes <= 18 * 60 + 30
    assert {p.price for p in config.site.tariff.periods} | {config.site.tariff.energy_price} == {
        0.149,
        0.177,
        0.232,
    }
    assert config.site.tariff.demand_charge_per_kw > 0


def test_mixed_depot_contents() -> None:
    loaded = load_scenario(SCENARIOS / "mixed_depot.yaml")
    config = loaded.config
    assert config.charging.strategy == "cost_aware"
    assert config.site.pv is not None
    assert config.site.pv.peak_kw == 250
    assert config.site.battery is not None
    assert (config.site.battery.capacity_kwh, config.site.battery.power_kw) == (500, 250)
    assert {type(a).__name__ for a in config.actions} == {
        "ChargerFault",
        "ChargerRepair",
        "SiteLimit",
        "VehicleLate",
    }
    assert any(getattr(a, "duration", None) for a in config.actions)
    blocks = loaded.dated_blocks["shuttle"]
    assert len({b.vehicle_id for b in blocks}) == 4
    assert any(b.kwh is not None for b in blocks)
    assert any(b.km is not None for b in blocks)
    assert [b.pull_out for b in blocks] == sorted(b.pull_out for b in blocks)
    start, end = config.start_utc, config.start_utc + config.duration
    assert all(start <= b.pull_out < b.pull_in <= end for b in blocks)
    days = {(b.pull_out - start) // timedelta(days=1) for b in blocks}
    assert days == set(range(7))  # the timetable covers the whole week


def test_csv_times_without_offset_are_in_the_scenario_timezone() -> None:
    blocks = load_scenario(SCENARIOS / "mixed_depot.yaml").dated_blocks["shuttle"]
    first = blocks[0]
    # 2025-06-02T06:15:00 in Los Angeles (PDT, UTC-7)
    assert first.pull_out == datetime(2025, 6, 2, 13, 15, tzinfo=UTC)


# --- errors -----------------------------------------------------------------------------


def test_scenario_error_is_a_depotsim_error() -> None:
    assert issubclass(ScenarioError, DepotsimError)


def test_wrong_type(tmp_path: Path) -> None:
    data = bus_dict()
    data["chargers"]["dc150"]["count"] = "many"
    path = write_yaml(tmp_path, data)
    err = load_error(path)
    assert err.file == str(path)
    assert len(err.problems) == 1
    problem = err.problems[0]
    assert problem.path == "chargers.dc150.count"
    assert "valid integer" in problem.expected
    assert problem.got == "many"
    assert str(err).startswith(f"{path}: chargers.dc150.count: ")
    assert str(err).endswith(", got 'many'")


def test_missing_section(tmp_path: Path) -> None:
    data = bus_dict()
    del data["site"]
    path = write_yaml(tmp_path, data)
    err = load_error(path)
    assert err.file == str(path)
    assert [(p.path, p.expected, p.has_got) for p in err.problems] == [("site", "required field is missing", False)]
    assert str(err) == f"{path}: site: required field is missing"


def test_negative_power(tmp_path: Path) -> None:
    data = bus_dict()
    data["chargers"]["dc150"]["connector_kw"] = -5
    path = write_yaml(tmp_path, data)
    err = load_error(path)
    assert (err.path, err.expected, err.got) == ("chargers.dc150.connector_kw", "must be > 0", -5)
    assert err.problems == [FieldProblem("chargers.dc150.connector_kw", "must be > 0", -5)]
    assert str(err) == f"{path}: chargers.dc150.connector_kw: must be > 0, got -5"


def test_negative_battery_message_format(tmp_path: Path) -> None:
    data = bus_dict()
    data["fleet"]["vehicle_types"]["ebus_12m"]["battery_kwh"] = -5
    path = write_yaml(tmp_path, data)
    assert str(load_error(path)) == (f"{path}: fleet.vehicle_types.ebus_12m.battery_kwh: must be > 0, got -5")


def test_unknown_strategy(tmp_path: Path) -> None:
    data = bus_dict()
    data["charging"]["strategy"] = "fastest"
    err = load_error(write_yaml(tmp_path, data))
    assert err.path == "charging.strategy"
    assert err.got == "fastest"
    assert err.expected.startswith("expected one of ")
    for name in ("uncontrolled", "equal_share", "least_laxity_first", "cost_aware"):
        assert f"'{name}'" in err.expected


def test_unknown_field(tmp_path: Path) -> None:
    data = bus_dict()
    data["chargers"]["dc150"]["conector_kw"] = data["chargers"]["dc150"].pop("connector_kw")
    data["durration"] = "7d"
    err = load_error(write_yaml(tmp_path, data))
    by_path = {p.path: p for p in err.problems}
    assert set(by_path) == {
        "durration",
        "chargers.dc150.conector_kw",
        "chargers.dc150.connector_kw",
    }
    assert by_path["durration"].expected.startswith("unknown field")
    assert by_path["chargers.dc150.conector_kw"].expected.startswith("unknown field")
    assert by_path["chargers.dc150.connector_kw"].expected == "required field is missing"


def test_vehicle_type_must_exist(tmp_path: Path) -> None:
    data = bus_dict()
    data["fleet"]["groups"]["peak"]["vehicle_type"] = "ebus_18m"
    err = load_error(write_yaml(tmp_path, data))
    assert err.problems == [FieldProblem("fleet.groups.peak.vehicle_type", "expected one of ['ebus_12m']", "ebus_18m")]


def test_a_timetable_id_that_a_daily_group_also_has_is_refused(tmp_path: Path) -> None:
    path = csv_scenario(tmp_path, CSV_HEADER + "trunk-001,2025-06-02T06:00,2025-06-02T09:00,50,\n"
                        "p-1,2025-06-02T06:00,2025-06-02T09:00,50,\n")  # fmt: skip
    err = load_error(path)
    assert err.problems == [
        FieldProblem(
            CSV_WHERE, "vehicle ids must be unique across groups; group 'trunk' already has 'trunk-001'", has_got=False
        )
    ]


def test_vehicles_that_can_use_no_charger_of_the_depot_are_refused(tmp_path: Path) -> None:
    data = bus_dict()
    data["fleet"]["vehicle_types"]["ebus_12m"]["max_dc_kw"] = 0  # AC only, at a DC-only depot
    data["fleet"]["vehicle_types"]["ebus_12m"]["max_ac_kw"] = 22
    err = load_error(write_yaml(tmp_path, data))
    assert [p.path for p in err.problems] == ["fleet.groups.trunk.vehicle_type", "fleet.groups.peak.vehicle_type"]
    assert err.problems[0].describe() == (
        "fleet.groups.trunk.vehicle_type: vehicle type 'ebus_12m' charges only AC (max_ac_kw 22, max_dc_kw 0) "
        "and the depot has only DC chargers"
    )


def test_action_naming_unknown_charger(tmp_path: Path) -> None:
    data = bus_dict()
    data["actions"][2]["charger"] = "dc150-41"  # the group has dc150-01 .. dc150-40
    err = load_error(write_yaml(tmp_path, data))
    assert err.path == "actions.2.charger"
    assert err.got == "dc150-41"
    assert err.expected == "expected a charger id such as 'dc150-01'"


def test_action_naming_unknown_vehicle(tmp_path: Path) -> None:
    data = bus_dict()
    data["actions"] = [{"at": "1d", "type": "vehicle_late", "vehicle": "trunk-37", "delay": "1h"}]
    err = load_error(write_yaml(tmp_path, data))
    assert err.path == "actions.0.vehicle"
    assert err.got == "trunk-37"
    assert "'peak-001'" in err.expected
    data["actions"][0]["vehicle"] = "trunk-036"  # exists: trunk has 36 vehicles
    assert load_scenario(write_yaml(tmp_path, data)).action_offsets == (86400.0,)


@pytest.mark.parametrize(
    "at",
    [
        "2025-06-01T23:00:00",  # local time, one hour before the start
        "2025-06-02T06:59:59+00:00",  # 23:59:59 the day before in Los Angeles
        "2025-05-01",
    ],
)
def test_action_before_the_start(tmp_path: Path, at: str) -> None:
    data = bus_dict()
    data["actions"] = [{"at": at, "type": "site_limit", "grid_kw": 1000}]
    err = load_error(write_yaml(tmp_path, data))
    assert err.problems == [FieldProblem("actions.0.at", "must not be before the start", at)]


@pytest.mark.parametrize(
    ("at", "offset"),
    [("0s", 0.0), ("7d", 7 * 86400.0), ("8d", 8 * 86400.0), ("2025-06-09T00:00:01", 7 * 86400.0 + 1)],
)
def test_action_at_or_after_the_end_is_kept(tmp_path: Path, at: str, offset: float) -> None:
    # after the end is allowed: a shorter --duration simply never reaches the action
    data = bus_dict()
    data["actions"] = [{"at": at, "type": "site_limit", "grid_kw": 1000}]
    path = write_yaml(tmp_path, data)
    assert load_scenario(path).action_offsets == (offset,)
    assert load_scenario(path, {"duration": "1d"}).action_offsets == (offset,)


def test_action_time_that_is_neither_iso_nor_offset(tmp_path: Path) -> None:
    data = bus_dict()
    data["actions"] = [{"at": "next tuesday", "type": "site_limit", "grid_kw": 1000}]
    err = load_error(write_yaml(tmp_path, data))
    assert err.path == "actions.0.at"
    assert "ISO 8601" in err.expected


def test_action_iso_time_is_read_in_the_scenario_timezone(tmp_path: Path) -> None:
    data = bus_dict()
    data["actions"] = [
        {"at": "2025-06-03T06:30:00", "type": "site_limit", "grid_kw": 1000},
        {"at": "2025-06-03T06:30:00+00:00", "type": "site_limit", "grid_kw": 1000},
        {"at": "1d6h30min", "type": "site_limit", "grid_kw": None},
    ]
    offsets = load_scenario(write_yaml(tmp_path, data)).action_offsets
    assert offsets == (30.5 * 3600, 23.5 * 3600, 30.5 * 3600)


def test_unquoted_yaml_timestamp_in_action(tmp_path: Path) -> None:
    text = (SCENARIOS / "bus_depot.yaml").read_text(encoding="utf-8")
    text += "  - {at: 2025-06-03T06:30:00, type: site_limit, grid_kw: 1800}\n"
    path = tmp_path / "bus_depot.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_scenario(path).action_offsets[-1] == 30.5 * 3600


def test_malformed_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "name: broken\nstart: '2025-06-02T00:00:00'\ntimezone: UTC: Europe\nsite: {}\n",
        encoding="utf-8",
    )
    err = load_error(path)
    assert err.file == str(path)
    assert len(err.problems) == 1
    assert err.problems[0].path == ""
    assert err.problems[0].expected.startswith("invalid YAML at line 3")
    assert str(err).startswith(f"{path}: (top level): invalid YAML at line 3")


def test_malformed_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "seed": 1,,\n}\n', encoding="utf-8")
    err = load_error(path)
    assert "invalid JSON at line 3" in err.expected


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert err.file == str(tmp_path / "nope.yaml")
    assert err.expected.startswith("cannot read file")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    err = load_error(path)
    assert err.problems == [FieldProblem("", "expected a mapping at the top level", "list")]


def test_several_errors_are_reported_at_once(tmp_path: Path) -> None:
    data = bus_dict()
    data["chargers"]["dc150"]["count"] = "many"
    data["chargers"]["dc150"]["connector_kw"] = -5
    data["charging"]["strategy"] = "fastest"
    data["operations"]["target_soc"] = 1.5
    del data["start"]
    path = write_yaml(tmp_path, data)
    err = load_error(path)
    assert {p.path for p in err.problems} == {
        "start",
        "chargers.dc150.count",
        "chargers.dc150.connector_kw",
        "charging.strategy",
        "operations.target_soc",
    }
    lines = str(err).splitlines()
    assert len(lines) == 5
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert f"{path}: operations.target_soc: must be <= 1, got 1.5" in lines


def test_reference_errors_are_reported_together(tmp_path: Path) -> None:
    data = bus_dict()
    data["fleet"]["groups"]["peak"]["vehicle_type"] = "tram"
    data["actions"] = [
        {"at": "2025-06-01T12:00:00", "type": "charger_fault", "charger": "dc999-01"},
        {"at": "1d", "type": "vehicle_late", "vehicle": "ghost", "delay": "1h"},
    ]
    err = load_error(write_yaml(tmp_path, data))
    assert [p.path for p in err.problems] == [
        "fleet.groups.peak.vehicle_type",
        "actions.0.at",
        "actions.0.charger",
        "actions.1.vehicle",
    ]


def test_dict_source_is_named_config() -> None:
    data = bus_dict()
    data["seed"] = -1
    err = load_error(data)
    assert err.file == "<config>"
    assert err.problems == [FieldProblem("seed", "must be >= 0", -1)]


# --- CSV timetables ---------------------------------------------------------------------


def test_csv_blocks_are_read_sorted_and_counted(tmp_path: Path) -> None:
    path = csv_scenario(
        tmp_path,
        CSV_HEADER
        + "x-2,2025-06-02T08:00:00,2025-06-02T12:00:00,80,\n"
        + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,,90.5\n"
        + "x-1,2025-06-02T11:00:00,2025-06-02T15:00:00,60,\n",
        count=2,
    )
    loaded = load_scenario(path)
    blocks = loaded.dated_blocks["peak"]
    assert [(b.vehicle_id, b.km, b.kwh) for b in blocks] == [
        ("x-1", None, 90.5),
        ("x-2", 80.0, None),
        ("x-1", 60.0, None),
    ]
    assert blocks[0].pull_out == datetime(2025, 6, 2, 13, 0, tzinfo=UTC)


def test_bad_csv_row_reports_its_line(tmp_path: Path) -> None:
    path = csv_scenario(
        tmp_path,
        CSV_HEADER + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n" + "x-1,yesterday,2025-06-02T18:00:00,50,\n",
    )
    err = load_error(path)
    assert err.file == str(path)
    assert len(err.problems) == 1
    assert err.path == f"{CSV_WHERE} (blocks.csv line 3)"
    assert "ISO pull_out/pull_in" in err.expected
    assert "blocks.csv line 3" in str(err)


def test_csv_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = csv_scenario(
        tmp_path,
        CSV_HEADER
        + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n"
        + "\n"
        + "x-1,2025-06-02T12:00:00,2025-06-02T11:00:00,50,\n",
    )
    err = load_error(path)
    assert err.problems == [
        FieldProblem(
            f"{CSV_WHERE} (blocks.csv line 4)",
            "pull_in must be after pull_out",
            "2025-06-02T11:00:00",
        )
    ]


def test_short_csv_row_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = csv_scenario(tmp_path, CSV_HEADER + "x-1,2025-06-02T06:00:00\n")
    err = load_error(path)
    assert err.path == f"{CSV_WHERE} (blocks.csv line 2)"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,20", "exactly one of km or kwh"),
        ("x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,,", "exactly one of km or kwh"),
        ("x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,-3,", "exactly one of km or kwh, > 0"),
        (",2025-06-02T06:00:00,2025-06-02T10:00:00,50,", "non-empty id"),
        ("x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,far,", "ISO pull_out/pull_in"),
    ],
)
def test_invalid_csv_values(tmp_path: Path, row: str, expected: str) -> None:
    err = load_error(csv_scenario(tmp_path, CSV_HEADER + row + "\n"))
    assert err.path == f"{CSV_WHERE} (blocks.csv line 2)"
    assert expected in err.expected


def test_csv_missing_column(tmp_path: Path) -> None:
    err = load_error(csv_scenario(tmp_path, "vehicle_id,pull_out,km\nx-1,2025-06-02T06:00:00,50\n"))
    assert "missing column 'pull_in'" in err.expected


def test_overlapping_csv_blocks(tmp_path: Path) -> None:
    path = csv_scenario(
        tmp_path,
        CSV_HEADER
        + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n"
        + "x-2,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n"
        + "x-1,2025-06-02T09:30:00,2025-06-02T12:00:00,50,\n",
    )
    err = load_error(path)
    assert len(err.problems) == 1
    assert err.path == CSV_WHERE
    assert err.expected == "blocks of x-1 overlap at 2025-06-02T16:30:00+00:00"


def test_csv_count_must_match_vehicle_ids(tmp_path: Path) -> None:
    path = csv_scenario(tmp_path, CSV_HEADER + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n", count=3)
    err = load_error(path)
    assert err.problems == [FieldProblem("fleet.groups.peak.count", "must equal the 1 vehicle ids in blocks_csv", 3)]


def test_empty_or_missing_csv(tmp_path: Path) -> None:
    err = load_error(csv_scenario(tmp_path, CSV_HEADER))
    assert (err.path, err.expected) == (CSV_WHERE, "the CSV holds no blocks")
    (tmp_path / "blocks.csv").unlink()
    err = load_error(tmp_path / "bus_depot.yaml")
    assert err.path == CSV_WHERE
    assert err.expected.startswith("cannot read CSV file")


def test_csv_vehicle_ids_can_be_named_by_actions(tmp_path: Path) -> None:
    path = csv_scenario(tmp_path, CSV_HEADER + "x-1,2025-06-02T06:00:00,2025-06-02T10:00:00,50,\n")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["actions"] = [{"at": "1h", "type": "vehicle_late", "vehicle": "x-1", "delay": "30min"}]
    assert load_scenario(write_yaml(tmp_path, data)).action_offsets == (3600.0,)
    data["actions"][0]["vehicle"] = "peak-001"  # a CSV group has no generated ids
    assert load_error(write_yaml(tmp_path, data)).path == "actions.0.vehicle"


def test_pv_csv_profile(tmp_path: Path) -> None:
    (tmp_path / "pv.csv").write_text("time,kw\n2025-01-01T12:00:00,80\n2025-01-01T01:00:00,0\n", encoding="utf-8")
    data = bus_dict()
    data["site"]["pv"] = {"peak_kw": 100, "csv": "pv.csv"}
    loaded = load_scenario(write_yaml(tmp_path, data))
    assert loaded.pv_profile == ((3600.0, 0.0), (43200.0, 80.0))


def test_pv_csv_times_with_an_offset_are_instants_read_in_the_scenario_timezone(tmp_path: Path) -> None:
    # bus_depot is in America/Los_Angeles: UTC-7 in June, UTC-8 in January
    rows = "time,kw\n2025-06-02T12:00:00Z,100\n2025-01-01T09:30:00+01:00,5\n2025-01-01T12:00:00,80\n"
    (tmp_path / "pv.csv").write_text(rows, encoding="utf-8")
    data = bus_dict()
    data["site"]["pv"] = {"peak_kw": 100, "csv": "pv.csv"}
    loaded = load_scenario(write_yaml(tmp_path, data))
    june_2 = 152 * 86400.0
    assert loaded.pv_profile == ((1800.0, 5.0), (43200.0, 80.0), (june_2 + 5 * 3600.0, 100.0))


@pytest.mark.parametrize("row", ["2025-01-01T12:00:00,-1", "noon,5", "2025-01-01T12:00:00"])
def test_bad_pv_csv_row(tmp_path: Path, row: str) -> None:
    (tmp_path / "pv.csv").write_text(f"time,kw\n2025-01-01T11:00:00,1\n{row}\n", encoding="utf-8")
    data = bus_dict()
    data["site"]["pv"] = {"peak_kw": 100, "csv": "pv.csv"}
    err = load_error(write_yaml(tmp_path, data))
    assert err.path == "site.pv.csv (pv.csv line 3)"
    assert "expected time (ISO 8601) and kw >= 0" in err.expected


# --- overrides --------------------------------------------------------------------------


def test_overrides_apply_before_validation() -> None:
    loaded = load_scenario(
        SCENARIOS / "bus_depot.yaml",
        {"chargers.dc150.count": 20, "seed": 3, "charging.strategy": "equal_share"},
    )
    assert loaded.config.chargers["dc150"].count == 20
    assert loaded.config.seed == 3
    assert loaded.config.charging.strategy == "equal_share"
    assert load_scenario(SCENARIOS / "bus_depot.yaml").config.chargers["dc150"].count == 40


def test_override_shrinking_chargers_invalidates_actions() -> None:
    err = load_error(SCENARIOS / "bus_depot.yaml", {"chargers.dc150.count": 5})
    assert err.path == "actions.2.charger"  # the fault names dc150-07
    assert err.got == "dc150-07"


def test_override_into_missing_section() -> None:
    path = SCENARIOS / "bus_depot.yaml"
    err = load_error(path, {"chargers.dc999.count": 20})
    assert err.file == str(path)
    assert err.path == "chargers.dc999.count"
    assert "'chargers.dc999' is not a section" in err.expected
    err = load_error(path, {"seed.value": 1})
    assert "'seed' is not a section" in err.expected


def test_override_with_bad_value_names_the_field() -> None:
    err = load_error(SCENARIOS / "bus_depot.yaml", {"chargers.dc150.count": 0})
    assert (err.path, err.expected, err.got) == ("chargers.dc150.count", "must be >= 1", 0)


def test_loaded_scenario_passes_through_or_reloads_with_overrides() -> None:
    loaded = load_scenario(SCENARIOS / "bus_depot.yaml", {"duration": "14d"})
    assert load_scenario(loaded) is loaded
    again = load_scenario(loaded, {"seed": 9})
    assert again.config.seed == 9
    assert again.config.duration == timedelta(days=14)
    assert again.source == loaded.source
    assert again.config.model_copy(update={"seed": 1}) == loaded.config


def test_scenario_object_reloads() -> None:
    config = load_scenario(SCENARIOS / "bus_depot.yaml").config
    assert load_scenario(config).config == config
