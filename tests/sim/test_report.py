"""KPI labels/formatting and the rich table built from them."""

from __future__ import annotations

import io

from rich.console import Console

from sim.kpis import kpi_rows
from sim.report import kpi_table, print_kpis

SUMMARY = {
    "scenario": "bus_depot",
    "currency": "EUR",
    "departures": 1200,
    "departures_ready_share": 0.975,
    "mean_delay_min": None,
    "energy_grid_kwh": 12345.678,
    "peak_demand_kw": 266.6667,
    "grid_limit_kw": None,
    "energy_cost": 1234.5,
    "cost_per_kwh_delivered": 0.123456,
}


def test_kpi_rows_format_units_and_currency() -> None:
    rows = dict(kpi_rows(SUMMARY))
    assert rows["Scenario"] == "bus_depot"
    assert rows["Departures scheduled"] == "1,200"
    assert rows["Departures ready (SoC >= target)"] == "97.5%"
    assert rows["Mean delay of late departures"] == "n/a"
    assert rows["Energy drawn from grid"] == "12,345.7 kWh"
    assert rows["Peak demand (billing window average)"] == "266.7 kW"
    assert rows["Grid limit"] == "unlimited"
    assert rows["Energy cost"] == "1,234.50 EUR"
    assert rows["Cost per kWh delivered"] == "0.1235 EUR/kWh"


def test_kpi_rows_skip_missing_keys_and_keep_order() -> None:
    labels = [label for label, _ in kpi_rows(SUMMARY)]
    assert len(labels) == len(SUMMARY) - 1  # currency is shown with amounts, not as a row
    assert labels.index("Departures scheduled") < labels.index("Energy cost")
    assert kpi_rows({}) == []


def test_kpi_table_has_one_row_per_kpi() -> None:
    table = kpi_table(SUMMARY)
    assert table.row_count == len(kpi_rows(SUMMARY))
    assert "bus_depot" in str(table.title)


def test_print_kpis_writes_to_given_console() -> None:
    buffer = io.StringIO()
    print_kpis(SUMMARY, Console(file=buffer, width=100, color_system=None))
    text = buffer.getvalue()
    assert "1,234.50 EUR" in text
    assert "Energy cost" in text
