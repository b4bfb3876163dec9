"""Plots are written for synthetic tables, empty tables and long (downsampled) runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_kpis import (
    DAY0,
    baseline_with_spike,
    make_departures,
    make_info,
    make_power,
    make_sessions,
)

from sim.plots import write_plots

NAMES = ["site_power.png", "soc_at_departure.png", "charger_occupancy.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
END = "2024-01-02T00:00:00Z"


def assert_pngs(paths: list[Path], out_dir: Path) -> None:
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert path.parent == out_dir
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 1000


def synthetic_tables() -> dict[str, pd.DataFrame]:
    power = make_power(
        baseline_with_spike(("10:05", "10:15", 300.0))
        + [
            ("limit", DAY0, "12:00", 250.0),
            ("limit", "12:00", END, float("nan")),
            ("price", DAY0, "06:00", 0.10),
            ("price", "06:00", "18:00", 0.30),
            ("price", "18:00", END, 0.20),
            ("load", DAY0, END, 210.0),
            ("chargers", DAY0, END, 190.0),
            ("base", DAY0, END, 20.0),
            ("battery", DAY0, "01:00", -30.0),
            ("battery", "01:00", END, 0.0),
            ("charger:c1", DAY0, END, 95.0),
        ]
    )
    events = pd.DataFrame(
        {
            "time": pd.to_datetime(
                ["2024-01-01T08:00Z", "2024-01-01T12:00Z", "2024-01-01T20:00Z"], utc=True
            ),
            "kind": ["charger_fault", "charger_repair", "charger_fault"],
            "vehicle_id": [None, None, None],
            "charger_id": ["c1", "c1", "c2"],
            "connector_id": [None, None, "c2-1"],
            "value": [np.nan] * 3,
            "detail": ["", "", ""],
        }
    )
    return {
        "power": power,
        "departures": make_departures(),
        "sessions": make_sessions(),
        "events": events,
    }


def test_plots_for_synthetic_tables(tmp_path: Path) -> None:
    out_dir = tmp_path / "plots"  # created on demand
    info = make_info(timezone="Europe/Berlin")
    assert_pngs(write_plots(synthetic_tables(), info, out_dir), out_dir)


def test_plots_for_missing_tables(tmp_path: Path) -> None:
    assert_pngs(write_plots({}, make_info(charger_kw={}, connectors=0), tmp_path), tmp_path)


def test_plots_for_empty_tables_with_columns(tmp_path: Path) -> None:
    tables = {name: df.iloc[:0] for name, df in synthetic_tables().items()}
    assert_pngs(write_plots(tables, make_info(), tmp_path), tmp_path)


@pytest.mark.parametrize("days", [3, 40])
def test_plots_for_multi_day_runs(tmp_path: Path, days: int) -> None:
    """Runs beyond two weeks are drawn from hourly averages; both paths must work."""
    start = pd.Timestamp(DAY0)
    edges = pd.date_range(start, start + pd.Timedelta(days=days), freq="37min")
    values = np.random.default_rng(0).uniform(0, 400, len(edges) - 1)
    power = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "series": "grid", "value": values})
    info = replace(make_info(), end=edges[-1].isoformat())
    assert_pngs(write_plots({"power": power}, info, tmp_path), tmp_path)


def test_plots_tolerate_missing_ids_and_columns(tmp_path: Path) -> None:
    sessions = make_sessions()
    sessions.loc[1, "connector_id"] = None
    sessions.loc[0, "plug_out"] = pd.NaT
    departures = make_departures().drop(columns=["status", "target_soc"])
    tables = {"sessions": sessions, "departures": departures}
    assert_pngs(write_plots(tables, make_info(), tmp_path), tmp_path)
