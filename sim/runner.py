"""Run a scenario: the Python API behind ``depotsim run``.

``run_scenario("scenarios/bus_depot.yaml")`` validates the scenario, runs the engine
and returns a :class:`~sim.result.Result` with DataFrames and KPIs, ready for a
notebook; :func:`sim.outputs.write_result` puts the same on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from scenarios.config import Scenario
from scenarios.loader import LoadedScenario, load_scenario
from sim.engine import Engine
from sim.heap import release_freed
from sim.kpis import compute_kpis
from sim.operator import OperatorPolicy
from sim.recorder import Recorder
from sim.result import Result, RunInfo, RunStats


def run_scenario(
    source: str | Path | Mapping[str, Any] | Scenario | LoadedScenario,
    *,
    seed: int | None = None,
    duration: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    policy: OperatorPolicy | None = None,
    progress: Callable[[float], None] | None = None,
) -> Result:
    """Validate and run one scenario.

    Args:
        source: scenario file path, plain dict, or validated config.
        seed: overrides the scenario's seed.
        duration: overrides the horizon, e.g. ``"30d"``.
        overrides: dotted-path values applied before validation
            (``{"chargers.dc150.count": 20}``).
        policy: a custom operator policy (see :mod:`sim.operator`).
        progress: called with the completed fraction (0..1) as the run advances.

    Raises:
        ScenarioError: the scenario (after overrides) is invalid; nothing is run.
    """
    changes = dict(overrides or {})
    if seed is not None:
        changes["seed"] = seed
    if duration is not None:  # validated with the scenario: a bad one is a ScenarioError naming `duration`
        changes["duration"] = duration
    loaded = load_scenario(source, changes or None)
    started = time.perf_counter()
    engine = Engine(loaded, policy=policy, progress=progress)
    engine.run()
    wall = time.perf_counter() - started
    info = run_info(loaded, engine)
    stats = RunStats(wall, engine.sim_events, engine.allocations, engine.fast_forwarded)
    recorder = engine.recorder
    del engine
    release_freed()  # free pages the run left in the heap, before the KPIs allocate
    # KPIs straight from the compact buffers: the site series they need and the few
    # columns of the small tables, each built when needed and dropped after; the result
    # tables are built when someone reads them
    summary = compute_kpis(_KpiTables(recorder), info, segments=recorder.segments())
    return Result(info, summary=summary, stats=stats, source=recorder)


class _KpiTables(Mapping[str, pd.DataFrame]):
    """The columns KPIs read, built from the recorder on each access and not kept."""

    COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "sessions": ("plug_in", "plug_out", "queued_at"),
        "departures": ("status", "ready", "soc", "delay_min", "shortfall_kwh"),
        "events": ("time", "kind", "value"),
    }
    KINDS: ClassVar[dict[str, tuple[str, ...]]] = {"events": ("queue", "charger_fault")}  # the rows KPIs count

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.COLUMNS:
            raise KeyError(name)
        return self._recorder.frame(name, self.COLUMNS[name], release=False, plain=True, kinds=self.KINDS.get(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.COLUMNS)

    def __len__(self) -> int:
        return len(self.COLUMNS)


def run_info(loaded: LoadedScenario, engine: Engine) -> RunInfo:
    cfg = loaded.config
    tariff = cfg.site.tariff
    return RunInfo(
        scenario=cfg.name,
        start=cfg.start_utc.isoformat(),
        end=(cfg.start_utc + cfg.duration).isoformat(),
        timezone=cfg.timezone,
        seed=cfg.seed,
        strategy=cfg.charging.strategy,
        currency=tariff.currency,
        demand_charge_per_kw=tariff.demand_charge_per_kw,
        demand_window_minutes=tariff.demand_window_minutes,
        grid_kw=cfg.site.grid_kw,
        charger_kw={c.charger_id: c.rated_kw for c in engine.chargers},
        connectors=len(engine.connectors),
        vehicles=len(engine.vehicles),
        target_soc=cfg.operations.target_soc,
    )
