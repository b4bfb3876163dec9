"""KPIs against numbers worked out by hand on small synthetic tables."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kpis import billing_month_shares, compute_kpis, monthly_peak_demand, resample_power
from sim.result import RunInfo

DAY0 = "2024-01-01T00:00:00Z"


def make_info(**overrides: Any) -> RunInfo:
    """A one-day UTC run with two 150 kW chargers, 15-min demand at 10 EUR/kW."""
    base = RunInfo(
        scenario="synthetic",
        start=DAY0,
        end="2024-01-02T00:00:00Z",
        timezone="UTC",
        seed=1,
        strategy="uncontrolled",
        currency="EUR",
        demand_charge_per_kw=10.0,
        demand_window_minutes=15,
        grid_kw=250.0,
        charger_kw={"c1": 150.0, "c2": 150.0},
        connectors=2,
        vehicles=2,
        target_soc=0.9,
    )
    return replace(base, **overrides)


def ts(text: str) -> pd.Timestamp:
    """A UTC timestamp from ``"HH:MM"`` on the first day or a full ISO string."""
    return pd.Timestamp(text if "T" in text else f"2024-01-01T{text}:00Z")


def make_power(rows: list[tuple[str, str, str, float]], unit: str = "ns") -> pd.DataFrame:
    """Long power table from (series, start, end, value) rows."""
    df = pd.DataFrame(rows, columns=["series", "start", "end", "value"])
    for col in ("start", "end"):
        df[col] = pd.to_datetime([ts(t) for t in df[col]], utc=True).as_unit(unit)
    df["value"] = df["value"].astype(float)
    return df[["start", "end", "series", "value"]]


def baseline_with_spike(
    spike: tuple[str, str, float], base_kw: float = 200.0, end: str = "2024-01-02T00:00:00Z"
) -> list[tuple[str, str, str, float]]:
    """Grid rows: ``base_kw`` all run with one spike (start, end, kW) in between."""
    start, stop, kw = spike
    return [
        ("grid", DAY0, start, base_kw),
        ("grid", start, stop, kw),
        ("grid", stop, end, base_kw),
    ]


def kpis_for(power: pd.DataFrame, **info: Any) -> dict[str, Any]:
    return compute_kpis({"power": power}, make_info(**info))


def test_energy_cost_intersects_price_change_inside_grid_segment() -> None:
    power = make_power(
        [
            ("grid", "00:00", "02:00", 100.0),
            ("grid", "02:00", "2024-01-02T00:00:00Z", 0.0),
            ("price", "00:00", "01:30", 0.10),
            ("price", "01:30", "2024-01-02T00:00:00Z", 0.30),
        ]
    )
    summary = kpis_for(power, demand_charge_per_kw=0.0)
    # 100 kW x 1.5 h x 0.10 + 100 kW x 0.5 h x 0.30 = 15 + 15
    assert summary["energy_cost"] == pytest.approx(30.0)
    assert summary["energy_grid_kwh"] == pytest.approx(200.0)
    assert summary["total_cost"] == pytest.approx(30.0)


def test_energy_cost_with_unaligned_boundaries_on_both_sides() -> None:
    power = make_power(
        [
            ("grid", "00:00", "01:00", 100.0),
            ("grid", "01:00", "02:00", 50.0),
            ("price", "00:00", "00:30", 0.20),
            ("price", "00:30", "02:00", 0.10),
        ]
    )
    # 100 x 0.5 x 0.2 + 100 x 0.5 x 0.1 + 50 x 1 x 0.1
    assert kpis_for(power)["energy_cost"] == pytest.approx(20.0)


def test_demand_charge_averages_ten_minute_spike_over_fifteen_minute_window() -> None:
    power = make_power(baseline_with_spike(("10:05", "10:15", 300.0)))
    summary = kpis_for(power)
    peak = (200.0 * 5 + 300.0 * 10) / 15  # 266.67 kW in window 10:00-10:15
    assert summary["peak_demand_kw"] == pytest.approx(peak)
    assert summary["demand_charge_full_months"] == pytest.approx(peak * 10.0)
    share = sum(billing_month_shares(make_info()).values())
    assert 0 < share < 1
    assert summary["demand_charge"] == pytest.approx(peak * 10.0 * share)
    assert summary["peak_kw"] == pytest.approx(300.0)
    assert summary["total_cost"] == pytest.approx(summary["energy_cost"] + peak * 10.0 * share)


def test_demand_windows_are_clock_aligned() -> None:
    # A spike across 10:15 is split between two windows: (200 x 10 + 300 x 5) / 15 each.
    power = make_power(baseline_with_spike(("10:10", "10:20", 300.0)))
    assert kpis_for(power)["peak_demand_kw"] == pytest.approx(3500.0 / 15)


def test_demand_windows_follow_local_clock() -> None:
    # Kathmandu is UTC+05:45: local half hours start at UTC :15 and :45.
    power = make_power(baseline_with_spike(("10:15", "10:45", 300.0)))
    local = kpis_for(power, demand_window_minutes=30, timezone="Asia/Kathmandu")
    utc = kpis_for(power, demand_window_minutes=30)
    assert local["peak_demand_kw"] == pytest.approx(300.0)
    assert utc["peak_demand_kw"] == pytest.approx(250.0)


def test_rolling_demand_window_starts_every_quarter_hour() -> None:
    power = make_power(baseline_with_spike(("10:15", "10:45", 300.0)))
    info = make_info(demand_window_minutes=30)
    assert monthly_peak_demand(power, info).max() == pytest.approx(250.0)
    assert monthly_peak_demand(power, info, step_minutes=15).max() == pytest.approx(300.0)


def test_demand_charge_sums_one_peak_per_local_billing_month() -> None:
    end = "2024-02-02T00:00:00Z"
    rows = [
        ("grid", "2024-01-31T00:00:00Z", "2024-01-31T12:00:00Z", 100.0),
        ("grid", "2024-01-31T12:00:00Z", "2024-01-31T12:15:00Z", 300.0),
        ("grid", "2024-01-31T12:15:00Z", "2024-01-31T23:30:00Z", 100.0),
        ("grid", "2024-01-31T23:30:00Z", "2024-01-31T23:45:00Z", 400.0),
        ("grid", "2024-01-31T23:45:00Z", end, 100.0),
    ]
    power = make_power(rows)
    period = {"start": "2024-01-31T00:00:00Z", "end": end}
    # UTC billing: both spikes in January (400), February only baseline (100).
    utc = kpis_for(power, **period)
    assert utc["demand_charge_full_months"] == pytest.approx((400.0 + 100.0) * 10.0)
    # pro-rated: the run covers 1 of January's 31 days and 1 of February's 29
    assert utc["demand_charge"] == pytest.approx(400.0 * 10.0 / 31 + 100.0 * 10.0 / 29)
    # Berlin (UTC+1): 23:30Z is 00:30 on 1 February, so each month has one spike.
    berlin = kpis_for(power, timezone="Europe/Berlin", **period)
    assert berlin["demand_charge_full_months"] == pytest.approx((300.0 + 400.0) * 10.0)
    assert berlin["peak_demand_kw"] == pytest.approx(400.0)
    peaks = monthly_peak_demand(power, make_info(timezone="Europe/Berlin", **period))
    assert peaks.to_dict() == pytest.approx({"2024-01": 300.0, "2024-02": 400.0})


def test_overload_against_limit_ignores_unlimited_periods() -> None:
    rows = baseline_with_spike(("10:00", "10:10", 300.0), end="13:00")
    rows += [
        ("grid", "13:00", "14:00", 400.0),
        ("grid", "14:00", "2024-01-02T00:00:00Z", 0.0),
        ("limit", DAY0, "12:00", 250.0),
        ("limit", "12:00", "2024-01-02T00:00:00Z", float("nan")),
    ]
    summary = kpis_for(make_power(rows))
    assert summary["overload_kwh"] == pytest.approx(50.0 * 10 / 60)
    assert summary["overload_minutes"] == pytest.approx(10.0)
    assert summary["peak_over_limit_kw"] == pytest.approx(50.0)
    assert summary["peak_kw"] == pytest.approx(400.0)
    assert summary["grid_limit_kw"] == 250.0


def test_no_overload_gives_zeros() -> None:
    power = make_power([("grid", DAY0, "2024-01-02T00:00:00Z", 100.0)])
    summary = kpis_for(power)
    assert summary["overload_kwh"] == 0.0
    assert summary["peak_over_limit_kw"] == 0.0
    assert summary["overload_minutes"] == 0.0


def make_departures() -> pd.DataFrame:
    rows = [
        # vehicle, status, soc, ready, delay, shortfall
        ("v1", "on_time", 0.90, True, 0.0, 0.0),
        ("v2", "on_time", 0.92, True, 0.0, 0.0),
        ("v3", "on_time", 0.95, True, 0.0, 0.0),
        ("v4", "late", 0.50, False, 12.0, 0.0),
        ("v5", "cancelled", 0.20, False, np.nan, 20.0),
    ]
    df = pd.DataFrame(
        rows, columns=["vehicle_id", "status", "soc", "ready", "delay_min", "shortfall_kwh"]
    )
    df["block"] = range(len(df))
    df["scheduled"] = pd.to_datetime([ts("06:00")] * len(df), utc=True)
    df["actual"] = df["scheduled"].where(df["status"] != "cancelled")
    df["target_soc"] = 0.9
    df["kwh_needed"] = 100.0
    return df


def test_departure_kpis_with_cancelled_block() -> None:
    summary = compute_kpis({"departures": make_departures()}, make_info())
    assert summary["departures"] == 5
    assert summary["departures_ready_share"] == pytest.approx(3 / 5)
    assert summary["departures_missed"] == 1
    assert summary["departures_late"] == 1
    assert summary["mean_delay_min"] == pytest.approx(12.0)
    # Departed SoCs sorted: 0.50, 0.90, 0.92, 0.95 (numpy linear percentiles).
    assert summary["soc_at_departure_p50"] == pytest.approx(0.91)
    assert summary["soc_at_departure_p5"] == pytest.approx(0.50 + 0.15 * 0.40)
    assert summary["shortfall_blocks"] == 1


def make_sessions() -> pd.DataFrame:
    rows = [
        (1, "v1", "c1", "c1-1", "00:00", "00:00", "06:00", 600.0),
        (2, "v2", "c2", "c2-1", "17:30", "18:00", "2024-01-02T00:00:00Z", 0.0),
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "session_id",
            "vehicle_id",
            "charger_id",
            "connector_id",
            "queued_at",
            "plug_in",
            "plug_out",
            "kwh",
        ],
    )
    for col in ("queued_at", "plug_in", "plug_out"):
        df[col] = pd.to_datetime([ts(t) for t in df[col]], utc=True)
    df["ended_by"] = ["departure", "end_of_run"]
    return df


def test_session_kpis_wait_occupancy_utilisation_losses() -> None:
    power = make_power(
        [
            ("delivered", "00:00", "06:00", 100.0),
            ("chargers", "00:00", "06:00", 110.0),
        ]
    )
    events = pd.DataFrame(
        {
            "time": pd.to_datetime([ts("00:00"), ts("17:30"), ts("18:00"), ts("20:00")], utc=True),
            "kind": ["queue", "queue", "queue", "charger_fault"],
            "value": [0.0, 3.0, 2.0, np.nan],
        }
    )
    tables = {"sessions": make_sessions(), "power": power, "events": events}
    summary = compute_kpis(tables, make_info())
    assert summary["sessions"] == 2
    assert summary["mean_wait_min"] == pytest.approx(15.0)  # waits of 0 and 30 min
    assert summary["charger_occupancy"] == pytest.approx((6 + 6) / (2 * 24))
    assert summary["energy_delivered_kwh"] == pytest.approx(600.0)
    assert summary["charger_utilisation"] == pytest.approx(600.0 / (300.0 * 24))
    assert summary["charging_losses_kwh"] == pytest.approx(60.0)
    assert summary["max_queue"] == 3
    assert summary["charger_faults"] == 1


def test_max_queue_counts_only_lengths_that_lasted() -> None:
    # 00:10: four vehicles join and the decision at that instant serves three of them;
    # 17:30: three join one by one and wait; 17:40: one leaves
    times = ["00:10"] * 7 + ["17:30", "17:31", "17:32", "17:40"]
    events = pd.DataFrame(
        {
            "time": pd.to_datetime([ts(t) for t in times], utc=True),
            "kind": ["queue"] * 11,
            "value": [1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0],
        }
    )
    assert compute_kpis({"events": events}, make_info())["max_queue"] == 4  # 17:32..17:40
    burst_only = events.iloc[:7]
    assert compute_kpis({"events": burst_only}, make_info())["max_queue"] == 1
    # rows of an instant keep their order when the table is not in time order
    shuffled = pd.concat([events.iloc[7:], burst_only])
    assert compute_kpis({"events": shuffled}, make_info())["max_queue"] == 4
    assert compute_kpis({"events": burst_only.drop(columns="time")}, make_info())["max_queue"] == 4  # every row


def test_pv_and_battery_energies() -> None:
    power = make_power(
        [
            ("pv", "10:00", "12:00", 50.0),
            ("pv_curtailed", "11:00", "12:00", 20.0),
            ("battery", "00:00", "01:00", -40.0),
            ("battery", "17:00", "18:30", 30.0),
        ]
    )
    summary = kpis_for(power)
    assert summary["pv_used_kwh"] == pytest.approx(100.0)
    assert summary["pv_curtailed_kwh"] == pytest.approx(20.0)
    assert summary["battery_discharged_kwh"] == pytest.approx(45.0)


def test_millisecond_timestamps_give_same_result() -> None:
    rows = baseline_with_spike(("10:05", "10:15", 300.0)) + [("price", DAY0, "12:00", 0.2)]
    ns = kpis_for(make_power(rows))
    ms = kpis_for(make_power(rows, unit="ms"))
    assert ms == ns


def test_empty_tables_give_json_safe_summary() -> None:
    summary = compute_kpis({}, make_info(grid_kw=None))
    json.dumps(summary, allow_nan=False)
    assert summary["departures"] == 0
    assert summary["departures_ready_share"] is None
    assert summary["mean_wait_min"] is None
    assert summary["max_queue"] == 0
    assert summary["demand_charge"] == 0.0
    assert summary["grid_limit_kw"] is None
    assert summary["currency"] == "EUR"


def test_full_summary_is_json_safe_plain_python() -> None:
    tables = {
        "power": make_power(baseline_with_spike(("10:05", "10:15", 300.0))),
        "departures": make_departures(),
        "sessions": make_sessions(),
    }
    summary = compute_kpis(tables, make_info())
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert all(type(v) in (int, float, str, bool, type(None)) for v in summary.values())


def test_resample_power_matches_hand_averages() -> None:
    power = make_power([("grid", "00:00", "00:10", 300.0), ("grid", "00:10", "01:00", 0.0)])
    res = resample_power(power, "grid", "15min")
    assert res.index[0] == pd.Timestamp(DAY0)
    assert res.to_list() == pytest.approx([200.0, 0.0, 0.0, 0.0])
    assert resample_power(power, "missing").empty


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 3599),
    st.lists(
        st.tuples(st.integers(1, 7200), st.floats(0, 1000, allow_nan=False)),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(["5min", "15min", "1h"]),
)
def test_resample_power_conserves_energy(
    offset_s: int, pieces: list[tuple[int, float]], freq: str
) -> None:
    t0 = pd.Timestamp(DAY0) + pd.Timedelta(seconds=offset_s)
    ends = t0 + pd.to_timedelta(np.cumsum([d for d, _ in pieces]), unit="s")
    starts = [t0, *ends[:-1]]
    power = pd.DataFrame(
        {"start": starts, "end": ends, "series": "grid", "value": [v for _, v in pieces]}
    )
    energy = sum(d * v for d, v in pieces) / 3600
    res = resample_power(power, "grid", freq)
    width = pd.Timedelta(freq)
    bins = res.index
    covered = (np.minimum(bins + width, ends[-1]) - np.maximum(bins, t0)) / pd.Timedelta(hours=1)
    assert float(np.nansum(res.to_numpy() * covered)) == pytest.approx(energy, rel=1e-9, abs=1e-9)
