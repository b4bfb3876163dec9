"""Small scenario dicts for engine tests, and assertions about result tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scenario_dicts import with_changes

BASE: dict[str, Any] = {
    "name": "tiny",
    "start": "2025-06-02T00:00:00",
    "timezone": "UTC",
    "duration": "2d",
    "seed": 1,
    "site": {"grid_kw": None},
    "chargers": {"dc": {"count": 1, "kind": "dc", "connector_kw": 100, "efficiency": 0.9, "standby_kw": 0}},
    "fleet": {
        "vehicle_types": {
            "bus": {
                "battery_kwh": 300,
                "consumption_kwh_per_km": 1.0,
                "max_dc_kw": 150,
                "max_ac_kw": 0,
                "charge_curve": [{"soc": 0, "kw": 150}, {"soc": 0.8, "kw": 150}, {"soc": 1.0, "kw": 20}],
            }
        },
        "groups": {
            "g": {
                "vehicle_type": "bus",
                "count": 1,
                "initial_soc": 0.5,
                "schedule": {"blocks": [{"pull_out": "06:00", "pull_in": "14:00", "km": 120}]},
            }
        },
    },
    "operations": {"target_soc": 0.9, "min_departure_soc": 0.2, "plug_in_delay_minutes": 5},
    "charging": {"strategy": "equal_share"},
}


def scenario(**changes: Any) -> dict[str, Any]:
    """A copy of BASE with dotted-path changes, e.g. scenario(**{"site.grid_kw": 50})."""
    return with_changes(BASE, **changes)


def series_energy(power: pd.DataFrame, name: str) -> float:
    """kWh of a power series (value x hours summed over its segments)."""
    rows = power[power["series"] == name]
    hours = (rows["end"] - rows["start"]).dt.total_seconds().to_numpy() / 3600.0
    return float(np.sum(rows["value"].to_numpy() * hours))


def series_max(power: pd.DataFrame, name: str) -> float:
    rows = power[power["series"] == name]
    return float(rows["value"].max()) if len(rows) else 0.0
