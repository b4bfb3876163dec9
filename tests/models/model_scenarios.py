"""Small scenario dicts for the models tests (validated through scenarios.loader)."""

from __future__ import annotations

from typing import Any

from scenario_dicts import with_changes

from scenarios.config import Scenario
from scenarios.loader import LoadedScenario, load_scenario

BASE: dict[str, Any] = {
    "name": "models",
    "start": "2025-06-02T00:00:00",  # a Monday
    "timezone": "UTC",
    "duration": "2d",
    "seed": 1,
    "site": {"grid_kw": None},
    "chargers": {"dc": {"count": 1, "kind": "dc", "connector_kw": 100, "standby_kw": 0}},
    "fleet": {
        "vehicle_types": {
            "bus": {
                "battery_kwh": 300,
                "consumption_kwh_per_km": 1.0,
                "max_dc_kw": 150,
                "max_ac_kw": 0,
            }
        },
        "groups": {
            "g": {
                "vehicle_type": "bus",
                "count": 1,
                "schedule": {"blocks": [{"pull_out": "06:00", "pull_in": "14:00", "km": 100}]},
            }
        },
    },
}


def scenario_dict(**changes: Any) -> dict[str, Any]:
    """A copy of BASE with dotted-path changes, e.g. scenario_dict(**{"site.grid_kw": 50})."""
    return with_changes(BASE, **changes)


def loaded(**changes: Any) -> LoadedScenario:
    return load_scenario(scenario_dict(**changes))


def config(**changes: Any) -> Scenario:
    return loaded(**changes).config
