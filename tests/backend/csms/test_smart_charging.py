"""Smart charging, sans-I/O: transactions in, schema-valid SetChargingProfile payloads out."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from backend.csms.smart_charging import (
    ChargerSpec,
    ProfileCommand,
    SiteConfigError,
    SiteModel,
    SmartCharging,
    site_from_mapping,
)
from backend.ocpp.framing import Fault, OcppVersion, validate_call
from sim.clock import ManualClock

T0 = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)


def smart(site: SiteModel) -> SmartCharging:
    return SmartCharging(site, ManualClock(T0))


def assert_valid(commands: list[ProfileCommand]) -> None:
    for command in commands:
        validate_call(command.action, command.payload, command.version, fault=Fault.LOCAL)


def limits(commands: list[ProfileCommand]) -> dict[str, float]:
    return {f"{c.charger_id}/{c.tx_id}": c.limit for c in commands}


def test_two_chargers_on_a_50_kw_grid_get_25_kw_each_in_watts() -> None:
    site = SiteModel(grid_kw=50.0, chargers={}, default_charger=ChargerSpec(max_kw=150.0, efficiency=1.0))
    sc = smart(site)
    sc.on_transaction_started("CP-1", 1, "1")
    sc.on_transaction_started("CP-2", 1, "2")
    commands = sc.recompute()
    assert_valid(commands)
    assert limits(commands) == {"CP-1/1": 25000.0, "CP-2/2": 25000.0}
    profile = commands[0].payload["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == 1
    assert profile["chargingSchedule"]["chargingRateUnit"] == "W"


def test_efficiency_is_counted_on_the_grid_side() -> None:
    sc = smart(SiteModel(grid_kw=47.0))  # default DC efficiency 0.94: 47 kW grid = 44.18 kW output
    sc.on_transaction_started("CP-1", 1, "1")
    (command,) = sc.recompute()
    assert command.limit == 44180.0


def test_a_charger_advertising_amps_gets_amps_rounded_down() -> None:
    site = SiteModel(
        grid_kw=20.0,
        chargers={"AC-1": ChargerSpec(max_kw=22.0, current="AC", efficiency=1.0, unit="A")},
    )
    sc = smart(site)
    sc.on_transaction_started("AC-1", 1, "7")
    (command,) = sc.recompute()
    assert_valid([command])
    assert command.unit == "A"
    assert command.limit == 28.9  # 20000 W / (3 x 230 V) = 28.98 A, rounded down
    period = command.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "limit": 28.9, "numberPhases": 3}


def test_ocpp_201_payload_is_schema_valid() -> None:
    sc = smart(SiteModel(grid_kw=50.0))
    sc.on_transaction_started("CS-1", 2, "tx-abc", OcppVersion.V201)
    (command,) = sc.recompute()
    assert_valid([command])
    profile = command.payload["chargingProfile"]
    assert command.payload["evseId"] == 2
    assert profile["transactionId"] == "tx-abc"
    assert profile["chargingSchedule"][0]["chargingRateUnit"] == "W"


def test_stopping_one_gives_the_other_the_full_limit() -> None:
    sc = smart(SiteModel(grid_kw=50.0, default_charger=ChargerSpec(max_kw=150.0, efficiency=1.0)))
    sc.on_transaction_started("CP-1", 1, "1")
    sc.on_transaction_started("CP-2", 1, "2")
    sc.recompute()
    sc.on_transaction_ended("CP-1", "1")
    commands = sc.recompute()
    assert limits(commands) == {"CP-2/2": 50000.0}
    assert [(e.charger_id, e.limit_kw) for e in sc.current_allocation()] == [("CP-2", 50.0)]


def test_nothing_is_resent_when_nothing_changed() -> None:
    sc = smart(SiteModel(grid_kw=50.0))
    sc.on_transaction_started("CP-1", 1, "1")
    assert sc.recompute()
    sc.on_meter("CP-1", "1", power_w=40000.0, soc=55.0, energy_wh=1000.0)
    assert sc.recompute() == []


def test_falling_limits_come_before_rising_ones() -> None:
    sc = smart(SiteModel(grid_kw=50.0, default_charger=ChargerSpec(max_kw=150.0, efficiency=1.0)))
    sc.on_transaction_started("CP-1", 1, "1")
    sc.recompute()
    sc.on_transaction_started("CP-2", 1, "2")
    commands = sc.recompute()
    assert [(c.charger_id, c.limit) for c in commands] == [("CP-1", 25000.0), ("CP-2", 25000.0)]


def test_a_rejected_profile_is_sent_again() -> None:
    sc = smart(SiteModel(grid_kw=50.0))
    sc.on_transaction_started("CP-1", 1, "1")
    (command,) = sc.recompute()
    sc.on_profile_failed(command)
    assert limits(sc.recompute()) == limits([command])


def test_transactions_that_cannot_take_a_tx_profile_are_not_tracked() -> None:
    sc = smart(SiteModel(grid_kw=50.0))
    sc.on_transaction_started("CP-1", 0, "1")
    sc.on_transaction_started("CP-1", 1, "not-a-number")
    assert sc.recompute() == []
    assert sc.current_allocation() == []


def test_station_max_profile_is_sent_once_where_set() -> None:
    site = SiteModel(grid_kw=500.0, chargers={"CP-1": ChargerSpec(max_kw=150.0, station_max_kw=100.0)})
    sc = smart(site)
    sc.on_transaction_started("CP-1", 1, "1")
    sc.on_transaction_started("CP-1", 2, "2")
    commands = sc.recompute()
    assert_valid(commands)
    assert commands[0].purpose == "ChargePointMaxProfile"
    assert commands[0].payload["connectorId"] == 0
    assert sum(c.limit_kw for c in commands[1:]) == pytest.approx(100.0)
    sc.on_transaction_ended("CP-1", "2")
    assert all(c.purpose == "TxProfile" for c in sc.recompute())


def test_station_max_profile_for_201() -> None:
    site = SiteModel(grid_kw=500.0, chargers={"CS-1": ChargerSpec(max_kw=150.0, station_max_kw=100.0)})
    sc = smart(site)
    sc.on_transaction_started("CS-1", 1, "t1", "ocpp2.0.1")
    commands = sc.recompute()
    assert_valid(commands)
    assert commands[0].purpose == "ChargingStationMaxProfile"


def test_site_limit_is_never_exceeded_over_random_sessions() -> None:
    rng = random.Random(7)
    site = SiteModel(
        grid_kw=180.0,
        cabinets={"CAB": 120.0},
        chargers={
            "AC-1": ChargerSpec(max_kw=22.0, current="AC", unit="A"),
            "AC-2": ChargerSpec(max_kw=11.0, current="AC", unit="A", phases=1),
            "DC-1": ChargerSpec(max_kw=150.0, cabinet="CAB"),
            "DC-2": ChargerSpec(max_kw=150.0, cabinet="CAB", efficiency=0.96),
        },
        default_charger=ChargerSpec(max_kw=50.0),
    )
    sc = smart(site)
    open_txs: list[tuple[str, str]] = []
    held: dict[tuple[str, str], float] = {}
    for step in range(400):
        if open_txs and rng.random() < 0.45:
            charger_id, tx_id = open_txs.pop(rng.randrange(len(open_txs)))
            sc.on_transaction_ended(charger_id, tx_id)
            held.pop((charger_id, tx_id), None)
        else:
            charger_id = rng.choice(["AC-1", "AC-2", "DC-1", "DC-2", "OTHER-1", "OTHER-2"])
            tx_id = str(step)
            sc.on_transaction_started(charger_id, rng.randint(1, 2), tx_id)
            open_txs.append((charger_id, tx_id))
        for command in sc.recompute():
            validate_call(command.action, command.payload, command.version, fault=Fault.LOCAL)
            held[(command.charger_id, command.tx_id or "")] = command.limit_kw
        grid = sum(kw / site.charger(charger_id).eta for (charger_id, _), kw in held.items())
        assert grid <= site.grid_kw + 1e-6
        allocated = sum(e.limit_kw / site.charger(e.charger_id).eta for e in sc.current_allocation() if e.limit_kw)
        assert allocated <= site.grid_kw + 1e-6


def test_site_from_mapping_builds_a_site() -> None:
    site = site_from_mapping(
        {
            "grid_kw": 400,
            "cabinets": {"CAB-1": 300},
            "chargers": {"CP-1": {"max_kw": 150, "cabinet": "CAB-1"}, "AC-1": {"max_kw": 22, "unit": "A"}},
        }
    )
    assert site.charger("CP-1").cabinet == "CAB-1"
    assert site.charger("unlisted").max_kw == 150.0


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({}, "grid_kw"),
        ({"grid_kw": -1}, "grid_kw"),
        ({"grid_kw": 50, "strategy": "nope"}, "strategy"),
        ({"grid_kw": 50, "chargers": {"CP-1": {"max_kw": 0}}}, "chargers.CP-1.max_kw"),
        ({"grid_kw": 50, "chargers": {"CP-1": {"max_kw": 10, "unit": "kW"}}}, "chargers.CP-1.unit"),
        ({"grid_kw": 50, "chargers": {"CP-1": {"max_kw": 10, "cabinet": "X"}}}, "chargers.CP-1.cabinet"),
        ({"grid_kw": 50, "chargers": {"CP-1": {"max_kw": 10, "colour": "red"}}}, "chargers.CP-1.colour"),
        ({"grid_kw": 50, "grid": 1}, "grid"),
    ],
)
def test_site_errors_name_the_file_and_field(data: dict[str, object], path: str) -> None:
    with pytest.raises(SiteConfigError) as info:
        site_from_mapping(data, "site.yaml")
    assert info.value.path == path
    assert str(info.value).startswith(f"site.yaml: {path}: expected")
