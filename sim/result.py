"""What a run hands back: result tables, run facts and KPIs.

The tables are the contract between the engine, the KPI functions, the plots and
the files on disk (their columns are documented in ``docs/outputs.md``). KPIs and plots
read only these tables and :class:`RunInfo`, never live engine objects, so
``depotsim report RUN_DIR`` can recompute everything from the Parquet files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol, overload

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
    fast_forwarded: int = 0  # of sim_events, breakpoints run by sim.fast_forward


class TableSource(Protocol):
    """Builds result tables on demand (the run's :class:`~sim.recorder.Recorder`)."""

    def frame(self, name: str) -> pd.DataFrame: ...


class _Table:
    """A table attribute of :class:`Result`: built on first read, replaceable."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Table: ...
    @overload
    def __get__(self, obj: Result, objtype: type | None = None) -> pd.DataFrame: ...
    def __get__(self, obj: Result | None, objtype: type | None = None) -> pd.DataFrame | _Table:
        return self if obj is None else obj.table(self.name)

    def __set__(self, obj: Result, df: pd.DataFrame) -> None:
        obj._tables[self.name] = df


class Result:
    """Everything one run produced; DataFrames for notebooks, files via ``write``.

    Tables are built on first access and kept: a run whose tables nobody reads (a
    sweep that keeps only the KPIs, a benchmark) never pays for their DataFrames, and
    each table's compact buffers are released once its DataFrame exists.

    Attributes:
        info: run facts (see :class:`RunInfo`).
        sessions, power, vehicles, departures, events: result tables
            (schemas in ``docs/outputs.md``).
        summary: KPI dictionary (see :func:`sim.kpis.compute_kpis`).
        stats: wall time and event counts.
    """

    __slots__ = ("_source", "_tables", "info", "stats", "summary")
    sessions = _Table()
    power = _Table()
    vehicles = _Table()
    departures = _Table()
    events = _Table()

    def __init__(
        self,
        info: RunInfo,
        sessions: pd.DataFrame | None = None,
        power: pd.DataFrame | None = None,
        vehicles: pd.DataFrame | None = None,
        departures: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        summary: dict[str, Any] | None = None,
        stats: RunStats | None = None,
        *,
        source: TableSource | None = None,
    ) -> None:
        given = {"sessions": sessions, "power": power, "vehicles": vehicles, "departures": departures, "events": events}
        missing = [name for name, df in given.items() if df is None]
        if missing and source is None:
            raise TypeError(f"Result needs the tables {', '.join(missing)} or a source to build them from")
        self.info = info
        self._tables: dict[str, pd.DataFrame] = {name: df for name, df in given.items() if df is not None}
        self._source = source
        self.summary: dict[str, Any] = {} if summary is None else summary
        self.stats = stats

    def table(self, name: str) -> pd.DataFrame:
        """One result table by name, built from the run's buffers on first access."""
        df = self._tables.get(name)
        if df is None:
            if name not in TABLES or self._source is None:
                raise KeyError(f"no result table {name!r} (tables: {', '.join(TABLES)})")
            df = self._tables[name] = self._source.frame(name)
            if len(self._tables) == len(TABLES):
                self._source = None  # every table built: the buffers can go
        return df

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: self.table(name) for name in TABLES}

    def __repr__(self) -> str:
        built = ", ".join(name for name in TABLES if name in self._tables) or "none"
        return f"Result(scenario={self.info.scenario!r}, strategy={self.info.strategy!r}, tables built: {built})"
