"""Session rows in arrays: the compiled steps agree with the closed forms and a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slots_reference import reference_plan

from models.battery import ChargeCurve
from sim import slot_kernels as K
from sim.slots import Slots

CURVES = (
    ChargeCurve.two_stage(150.0),  # flat, then a falling taper
    ChargeCurve.from_points([(0.0, 40.0), (0.2, 120.0), (0.8, 120.0), (1.0, 10.0)]),  # rising, flat, falling
    ChargeCurve.two_stage(11.0, transition_soc=0.9, end_fraction=0.5),
)


def _slots(rows: list[tuple[int, float, float, float]], target: float = 0.9) -> Slots:
    """One row per (curve index, soc, capacity kWh, efficiency); one idle row at the end."""
    slots = Slots(len(rows) + 1)
    for j, (c, soc, cap, eff) in enumerate(rows):
        slots.open(j, soc, cap, eff, target, CURVES[c], j, 1.7e9 + 3600.0 * j)
    return slots


row = st.tuples(
    st.integers(0, len(CURVES) - 1),
    st.floats(0.0, 0.95),
    st.floats(50.0, 600.0),
    st.floats(0.85, 1.0),
)


def _plan(slots: Slots, rows: list[int], kw: list[float], now: float = 0.0) -> list[bool]:
    """Plan ``rows`` with the compiled planner; which of them now draw nothing."""
    slots.plan(np.array(rows, dtype=np.int64), np.array(kw, dtype=np.float64), now, 0.05)
    return [bool(slots.mode[j] == 0) for j in rows]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(row, min_size=1, max_size=12),
    limits=st.lists(st.one_of(st.just(0.0), st.floats(0.5, 200.0)), min_size=12, max_size=12),
    waits=st.lists(st.one_of(st.just(math.nan), st.floats(0.0, 1.0)), min_size=12, max_size=12),
)
def test_plan_agrees_with_the_numpy_reference(rows, limits, waits) -> None:
    """The compiled per-row planner and the numpy one give the same modes, powers and breakpoints."""
    n = len(rows)
    a, b = _slots(rows), _slots(rows)
    for slots in (a, b):
        slots.wait[:n] = waits[:n]
    kw = np.array(limits[:n])
    zero_ref = reference_plan(a, np.arange(n), kw, 100.0, 0.05).tolist()
    zero = _plan(b, list(range(n)), kw.tolist(), 100.0)
    assert zero == zero_ref
    assert a.mode[:n].tolist() == b.mode[:n].tolist()
    np.testing.assert_allclose(a.power[:n], b.power[:n], rtol=1e-12)
    np.testing.assert_allclose(a.next_t[:n], b.next_t[:n], rtol=1e-9)
    live = ~np.array(zero)
    np.testing.assert_allclose(a.crit[:n][live], b.crit[:n][live], rtol=1e-12)


def test_plan_reports_the_connector_statuses_that_move() -> None:
    """Charging, suspended by the EVSE (limit 0) or by the EV (full); unchanged statuses are not reported."""
    slots = _slots([(0, 0.5, 300.0, 0.95), (0, 0.5, 300.0, 0.95), (0, 0.9, 300.0, 0.95)])
    slots.status[1] = K.SUSPENDED_EVSE  # already shows what its plan implies
    moved = slots.plan(np.array([0, 1, 2]), np.array([100.0, 0.0, 100.0]), 0.0, 0.05)
    assert moved == 2
    assert slots.moved[:2].tolist() == [0, 2]
    assert slots.moved_zero[:2].tolist() == [False, True]
    assert slots.moved_full[:2].tolist() == [False, True]


def test_plan_picks_the_regime_and_the_first_breakpoint() -> None:
    """Flat piece under a lower limit: constant power until the taper crosses the limit."""
    slots = _slots([(0, 0.5, 300.0, 0.95)])
    _plan(slots, [0], [100.0])
    assert slots.mode[0] == 1
    assert slots.power[0] == 100.0
    # the two-stage 150 kW curve falls from 150 at 0.8 to 15 at 1.0: it meets 100 kW at
    # soc 0.8 + (150 - 100) / 675 — but the flat piece ends first, at 0.8
    assert slots.crit[0] == pytest.approx(0.8)
    assert slots.next_t[0] == pytest.approx((0.8 - 0.5) * 300.0 / 100.0 * 3600.0)


def test_plan_on_the_taper_stops_at_the_tolerance_step() -> None:
    """Curve-bound on the taper: the next breakpoint is where power fell by the tolerance."""
    slots = _slots([(0, 0.85, 300.0, 0.95)])
    _plan(slots, [0], [150.0])
    curve_kw = 150.0 - 675.0 * 0.05  # 116.25 kW at soc 0.85
    assert slots.mode[0] == 2
    assert slots.power[0] == pytest.approx(curve_kw)
    assert slots.crit[0] == pytest.approx(0.85 + 0.05 * curve_kw / 675.0)


def test_zero_limit_or_full_battery_draws_nothing() -> None:
    slots = _slots([(0, 0.5, 300.0, 0.95), (0, 0.9, 300.0, 0.95)])
    assert _plan(slots, [0, 1], [0.0, 100.0]) == [True, True]
    assert slots.mode[:2].tolist() == [0, 0]
    assert slots.next_t[:2].tolist() == [math.inf, math.inf]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=8), limit=st.floats(1.0, 200.0), hours=st.floats(0.001, 2.0))
def test_integrate_matches_the_charge_curve(rows, limit, hours) -> None:
    """Within a breakpoint-free stretch, SoC follows ChargeCurve.soc_after exactly."""
    n = len(rows)
    slots = _slots(rows)
    _plan(slots, list(range(n)), [limit] * n)
    # integrate no further than every row's next breakpoint
    span_h = min(hours, float(np.min(slots.next_t[:n])) / 3600.0)
    before = slots.soc[:n].copy()
    delivered, drawn = slots.integrate(span_h)
    for j, (c, soc, cap, _eff) in enumerate(rows):
        expected = min(CURVES[c].soc_after(soc, limit, span_h, cap), max(0.9, soc))
        if slots.mode[j] == 0:
            expected = soc
        assert slots.soc[j] == pytest.approx(expected, abs=1e-9)
    energy = (slots.soc[:n] - before) * slots.cap[:n]
    assert delivered == pytest.approx(float(energy.sum()), abs=1e-9)
    assert drawn == pytest.approx(float((energy / slots.eff[:n]).sum()), abs=1e-9)
    assert slots.soc[n] == 0.0  # the idle row stays idle


def test_allocation_inputs_match_the_charge_curve() -> None:
    """Active rows get the curve's kW, the kWh and the full-power hours to target; others get zeros."""
    slots = _slots([(0, 0.3, 300.0, 0.95), (1, 0.1, 200.0, 0.9), (2, 0.95, 60.0, 1.0)])
    active, full = slots.allocation_inputs(with_hours=True)
    assert (active, full) == (2, 0)
    assert slots.active.tolist() == [True, True, False, False]
    for j, (c, soc, cap) in enumerate([(0, 0.3, 300.0), (1, 0.1, 200.0)]):
        assert slots.hours[j] == pytest.approx(CURVES[c].full_power_hours(soc, 0.9, cap))
        assert slots.max_kw[j] == pytest.approx(CURVES[c].kw_at(soc))
        assert slots.energy[j] == pytest.approx((0.9 - soc) * cap)
    assert slots.max_kw[2:].tolist() == slots.energy[2:].tolist() == slots.hours[2:].tolist() == [0.0, 0.0]
    slots.allocation_inputs(with_hours=False)
    assert slots.hours.tolist() == [0.0] * 4


def test_allocation_inputs_list_full_rows_that_still_draw_power() -> None:
    """A session that reached its target by integration but is still planned to draw is listed to stop."""
    slots = _slots([(0, 0.5, 300.0, 0.95), (0, 0.5, 300.0, 0.95)])
    _plan(slots, [0, 1], [100.0, 100.0])
    slots.soc[1] = 0.9
    active, full = slots.allocation_inputs(with_hours=False)
    assert (active, full) == (1, 1)
    assert slots.full_rows(full).tolist() == [1]


def test_changed_rows_are_those_with_a_new_limit_a_due_breakpoint_or_a_wait() -> None:
    slots = _slots([(0, 0.5, 300.0, 0.95)] * 4)
    _plan(slots, [0, 1, 2, 3], [50.0, 50.0, 50.0, 50.0])
    slots.allocation_inputs(with_hours=False)
    kw = np.array([50.0, 40.0, 50.0, 50.0, 0.0])
    slots.next_t[2] = 10.0  # due at the allocation time 10 s
    slots.wait[3] = 0.6
    rows, throttled = slots.changed_rows(kw, due=10.0, waits=False)
    assert rows.tolist() == [1, 2]
    assert throttled  # every active row could take 150 kW
    rows, _ = slots.changed_rows(kw, due=10.0, waits=True)
    assert rows.tolist() == [1, 2, 3]


def test_close_makes_a_row_idle_but_keeps_its_span_energy() -> None:
    slots = _slots([(0, 0.5, 300.0, 0.95)])
    _plan(slots, [0], [100.0])
    slots.integrate(0.5)
    acc = slots.acc[0]
    assert acc == pytest.approx(50.0)
    slots.close(0)
    assert not slots.occupied[0]
    assert slots.power[0] == 0.0
    assert slots.next_t[0] == math.inf
    assert slots.acc[0] == acc
    delivered, _ = slots.integrate(1.0)
    assert delivered == 0.0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.just(math.inf), min_size=1, max_size=40))
def test_earliest_breakpoint_is_numpy_s_min(times) -> None:
    f = np.zeros((K.COLUMNS, len(times)))
    f[K.NEXT_T] = times
    expected = f[K.NEXT_T].min()
    got = K.earliest(f)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_earliest_breakpoint_needs_a_row() -> None:
    with pytest.raises(ValueError, match="no rows"):
        K.earliest(np.zeros((K.COLUMNS, 0)))
