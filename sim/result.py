"""What a run hands back: result tables, run facts and KPIs.

The tables are the contract between the engine, the KPI functions, the plots and
the files on disk (their columns are documented in ``docs/outputs.md``). KPIs and plots
read only these tables and :class:`RunInfo`, never live engine objects, so
``depotsim report RUN_DIR`` can recompute everything from the Parquet files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

TABLES = ("sessions", "power", "vehicles", "departures", "events")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about a run that KPIs and plots need besides the tables.

    Attributes:
        scenario: scenario name.
        start: run start, ISO 8601 UTC.
        end: run end, ISO 8601 UTC.
        timezone: IANA zone of schedules and tariff (billing months are local).
        seed: random seed used.
        strategy: charging strategy name.
        currency: tariff currency label.
        demand_charge_per_kw: price per kW of the monthly peak demand.
        demand_window_minutes: averaging window for demand (15 or 30 typically).
        grid_kw: initial grid connection limit (None = unlimited).
        charger_kw: rated output kW per charger id (sum of its connectors, capped by
            its charger limit), for utilisation.
        connectors: number of connectors on site.
        vehicles: number of vehicles.
        target_soc: operations.target_soc.
    """

    scenario: str
    start: str
    end: str
    timezone: str
    seed: int
    strategy: str
    currency: str
    demand_charge_per_kw: float
    demand_window_minutes: int
    grid_kw: float | None
    charger_kw: dict[str, float]
    connectors: int
    vehicles: int
    target_soc: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunInfo:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class RunStats:
    """How the run went computationally (for progress output and benchmarks)."""

    wall_seconds: float
    sim_events: int
    allocations: int


@dataclass(slots=True)
class Result:
    """Everything one run produced; DataFrames for notebooks, files via ``write``.

    Attributes:
        info: run facts (see :class:`RunInfo`).
        sessions, power, vehicles, departures, events: result tables
            (schemas in ``docs/outputs.md``).
        summary: KPI dictionary (see :func:`sim.kpis.compute_kpis`).
        stats: wall time and event counts.
    """

    info: RunInfo
    sessions: pd.DataFrame
    power: pd.DataFrame
    vehicles: pd.DataFrame
    departures: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    stats: RunStats | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}
