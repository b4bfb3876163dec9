"""Fast-forwarded breakpoints give exactly the run every breakpoint as a SimPy event gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from depot_builders import BASE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_dicts import with_changes

from models.charger import ConnectorStatus as S
from models.charger import TransitionError
from scenarios.loader import load_scenario
from sim.engine import Engine
from sim.result import TABLES

ROOT = Path(__file__).resolve().parents[2]
_PLUGGED = (S.PREPARING, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE)
COMPILED = ("uncontrolled", "equal_share", "earliest_departure_first", "least_laxity_first")


def _run(source: Any, fast_forward: bool, changes: dict[str, Any] | None = None) -> Engine:
    engine = Engine(load_scenario(source, changes), fast_forward=fast_forward)
    engine.run()
    return engine


def _assert_same_run(source: Any, changes: dict[str, Any] | None = None) -> Engine:
    """Run with and without fast-forward; every table and count must be identical."""
    slow = _run(source, False, changes)
    fast = _run(source, True, changes)
    assert slow.fast_forwarded == 0
    assert (fast.sim_events, fast.allocations) == (slow.sim_events, slow.allocations)
    slow_tables, fast_tables = slow.recorder.frames(), fast.recorder.frames()
    for name in TABLES:
        pd.testing.assert_frame_equal(fast_tables[name], slow_tables[name], check_exact=True, obj=name)
    return fast


def depot(vehicles: int, chargers: int, grid_kw: float, strategy: str) -> dict[str, Any]:
    """A grid-limited depot where curve tapers hand power on every evening."""
    return with_changes(
        BASE,
        **{
            "duration": "4d",
            "site.grid_kw": grid_kw,
            "chargers.dc.count": chargers,
            "chargers.dc.connector_kw": 50,
            "fleet.groups.g.count": vehicles,
            "fleet.groups.g.schedule.stagger_minutes": 120,
            "fleet.groups.g.schedule.jitter_minutes": 10,
            "fleet.groups.g.schedule.blocks": [{"pull_out": "06:00", "pull_in": "16:00", "km": 140}],
            "operations.plug_swap": True,
            "operations.assignment": "earliest_departure",
            "charging.strategy": strategy,
        },
    )


@pytest.mark.parametrize("strategy", COMPILED)
def test_a_grid_limited_depot_runs_the_same_and_is_fast_forwarded(strategy: str) -> None:
    fast = _assert_same_run(depot(12, 6, 120.0, strategy))
    assert fast.fast_forwarded > 0  # not a vacuous comparison


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios" / "regression").glob("*.yaml")), ids=lambda p: p.stem)
def test_regression_scenarios_run_the_same(path: Path) -> None:
    _assert_same_run(path)


@pytest.mark.parametrize("strategy", COMPILED)
def test_the_bundled_bus_depot_runs_the_same(strategy: str) -> None:
    _assert_same_run(ROOT / "scenarios" / "bus_depot.yaml", {"duration": "3d", "charging.strategy": strategy})


def test_runs_it_cannot_mirror_are_not_fast_forwarded() -> None:
    """cost_aware plans over the tariff, a battery dispatches at every allocation."""
    assert _run(depot(6, 3, 60.0, "cost_aware"), True).fast_forwarded == 0
    assert _run(ROOT / "scenarios" / "regression" / "pv_battery.yaml", True).fast_forwarded == 0


@pytest.mark.parametrize("strategy", COMPILED)
def test_shared_chargers_whose_limit_binds_run_the_same(strategy: str) -> None:
    """The allocation is the strategy's own kernel, capacity groups included."""
    shared = with_changes(
        depot(8, 3, 150.0, strategy), **{"chargers.dc.connectors_per_charger": 2, "chargers.dc.charger_kw": 80}
    )
    assert _assert_same_run(shared).fast_forwarded > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vehicles=st.integers(1, 10),
    chargers=st.integers(1, 6),
    grid_kw=st.floats(20.0, 400.0),
    strategy=st.sampled_from(COMPILED),
    tolerance=st.sampled_from([0.01, 0.05, 0.2]),
    initial_soc=st.floats(0.1, 0.95),
    connectors=st.sampled_from([1, 2]),
    operations=st.fixed_dictionaries(
        {
            "operations.plug_swap": st.booleans(),
            "operations.below_min_soc": st.sampled_from(["delay", "cancel"]),
            "operations.min_departure_soc": st.sampled_from([0.2, 0.6, 0.85]),
            "operations.assignment": st.sampled_from(["first_free", "earliest_departure"]),
        }
    ),
    faults=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_random_depots_run_the_same(
    vehicles, chargers, grid_kw, strategy, tolerance, initial_soc, connectors, operations, faults, seed
) -> None:
    """Swaps, late and cancelled departures, waits for a SoC and random faults included."""
    changes = {
        "duration": "3d",
        "seed": seed,
        "charging.reallocation_tolerance": tolerance,
        "fleet.groups.g.initial_soc": initial_soc,
        "chargers.dc.connectors_per_charger": connectors,
        **operations,
    }
    if faults:
        changes["chargers.dc.faults"] = {"mtbf_hours": 12.0, "mttr_hours": 2.0}
    _assert_same_run(with_changes(depot(vehicles, chargers, grid_kw, strategy), **changes))


def test_status_rows_written_by_the_loop_fill_widened_event_columns_too() -> None:
    """The loop writes connector status rows straight into the recorder's int16 code
    columns, or into int32 ones once a run has named more than int16 holds."""
    source = depot(12, 6, 120.0, "least_laxity_first")
    plain = _run(source, True)
    widened = Engine(load_scenario(source), fast_forward=True)
    widened.recorder._widen_events()  # as after the 32,768th name
    assert widened.recorder.e_kind.typecode == "i"
    widened.run()
    assert widened.fast_forwarded > 0
    events = plain.recorder.frames()["events"]
    assert (events["kind"] == "connector_status").sum() > 100  # the loop wrote status rows
    pd.testing.assert_frame_equal(widened.recorder.frames()["events"], events, check_exact=True)


@pytest.mark.parametrize(("grid_kw", "allocation_after_decision"), [(120.0, True), (1000.0, False)])
def test_a_target_where_a_plug_swap_follows_is_handled_by_the_loop_then_decided(
    monkeypatch: pytest.MonkeyPatch, grid_kw: float, allocation_after_decision: bool
) -> None:
    """The timer's own breakpoint: the loop handles it and stops for the policy's decision."""
    seen: list[bool] = []
    on_timer = Engine._on_timer

    def watched(engine: Engine) -> None:
        on_timer(engine)
        if engine._ff is not None and engine._ff.steps and engine._ff.decide:
            seen.append(engine._ff.needs_alloc)

    monkeypatch.setattr(Engine, "_on_timer", watched)
    _assert_same_run(depot(12, 6, grid_kw, "least_laxity_first"))
    assert allocation_after_decision in seen  # throttled sessions: the allocation waits for the update


def test_the_loop_sets_the_connector_statuses_and_checks_a_move_from_outside_plugged_in() -> None:
    """After the loop writes status rows, each connector's status is its row's; a move
    from a status that is not plugged in (here Available, forced) is checked and refused."""
    class Stop(Exception):
        pass

    def stop_in_the_evening(done: float) -> None:
        if done * 4 * 24 >= 20:  # 20:00 on the first day of four
            raise Stop

    engine = Engine(load_scenario(depot(12, 6, 120.0, "least_laxity_first")), fast_forward=True)
    engine.progress = stop_in_the_evening
    with pytest.raises(Stop):
        engine.run()
    codes = engine.slots.status
    plugged = [j for j, conn in enumerate(engine.connectors) if conn.vehicle is not None and conn.status in _PLUGGED]
    assert plugged
    for j in plugged:  # the statuses the loop set agree with the rows' codes
        status = engine.connectors[j].status
        assert codes[j] == {S.CHARGING: 1, S.SUSPENDED_EV: 2, S.SUSPENDED_EVSE: 3}.get(status, codes[j])
    j = next(j for j in plugged if engine.connectors[j].status is S.CHARGING)
    engine.connectors[j].status = S.AVAILABLE  # not a status a session's row can move from
    with pytest.raises(TransitionError, match="Available"):
        engine._apply_limits(np.array([j]), np.zeros(1), engine.env.now)


def test_the_loop_sets_one_status_as_the_engine_does_or_leaves_it_to_python() -> None:
    """``Loop.set_status``: a valid move sets the status, the row's flags and one event row;
    an invalid move raises and changes nothing; a name without a code yet is left to the
    engine's Python path (False, nothing changed)."""
    engine = _run(depot(4, 2, 120.0, "least_laxity_first"), True)  # after it: all Available, names coded
    rec, loop = engine.recorder, engine._ff
    j = 0
    conn = engine.connectors[j]
    assert conn.status is S.AVAILABLE
    assert engine._available[j]
    rows = len(rec.e_time)
    args = (engine._event_columns, engine._event_name_codes, engine._status_kind_code)
    with pytest.raises(TransitionError, match="Available"):
        loop.set_status(j, S.CHARGING, 5.0, *args)
    assert conn.status is S.AVAILABLE
    assert len(rec.e_time) == rows
    conn.vehicle = "a vehicle the recorder has not named"
    assert not loop.set_status(j, S.PREPARING, 5.0, *args)
    assert conn.status is S.AVAILABLE
    assert len(rec.e_time) == rows
    conn.vehicle = None
    assert loop.set_status(j, S.PREPARING, 5.0, *args)
    assert conn.status is S.PREPARING
    assert not engine._available[j]
    assert engine.slots.status[j] == 0
    events = rec.frame("events", release=False)
    assert len(events) == rows + 1
    last = events.iloc[-1]
    assert (last["kind"], last["connector_id"], last["detail"]) == ("connector_status", conn.connector_id, "Preparing")
    assert pd.isna(last["vehicle_id"])
    assert pd.isna(last["value"])
    assert loop.set_status(j, S.PREPARING, 6.0, *args)
    assert len(rec.e_time) == rows + 1
