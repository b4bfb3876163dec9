"""ChargeCurve (models/battery.py): interpolation, capping and exact SoC integration."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.battery import ChargeCurve

# rising from 50 kW, flat at 150 kW from 20 % to 80 %, tapering to 30 kW at 100 %
HUMP = ((0.0, 50.0), (0.2, 150.0), (0.8, 150.0), (1.0, 30.0))


def interp(points: tuple[tuple[float, float], ...], soc: float) -> float:
    """Independent piecewise-linear interpolation (no ChargeCurve code involved)."""
    for (s0, k0), (s1, k1) in zip(points, points[1:], strict=False):
        if s0 <= soc <= s1:
            return k0 + (k1 - k0) * (soc - s0) / (s1 - s0)
    raise ValueError(soc)


def euler_hours(
    points: tuple[tuple[float, float], ...], soc0: float, soc1: float, limit: float, capacity: float, dt: float
) -> float:
    """Hours from soc0 to soc1 by explicit Euler steps of ``dt`` hours (last step interpolated)."""
    soc, t = soc0, 0.0
    while True:
        step = min(limit, interp(points, soc)) / capacity * dt
        if soc + step >= soc1:
            return t + dt * (soc1 - soc) / step
        soc += step
        t += dt


# --- kw_at and capped ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("soc", "kw"),
    [
        (0.0, 50.0),
        (0.1, 100.0),
        (0.2, 150.0),
        (0.5, 150.0),
        (0.8, 150.0),
        (0.9, 90.0),
        (0.95, 60.0),
        (1.0, 30.0),
    ],
)
def test_kw_at_interpolates_linearly_between_breakpoints(soc: float, kw: float) -> None:
    curve = ChargeCurve.from_points(HUMP)
    assert curve.kw_at(soc) == pytest.approx(kw)


def test_kw_at_is_never_negative_even_past_a_curve_that_ends_at_zero() -> None:
    curve = ChargeCurve.from_points([(0.0, 100.0), (0.8, 100.0), (1.0, 0.0)])
    assert curve.kw_at(1.0) == 0.0
    assert curve.kw_at(1.05) == 0.0


def test_from_points_stores_floats_in_order() -> None:
    curve = ChargeCurve.from_points([(0, 10), (1, 20)])
    assert curve.socs == (0.0, 1.0)
    assert curve.kws == (10.0, 20.0)
    assert all(isinstance(v, float) for v in (*curve.socs, *curve.kws))


def test_capped_adds_the_crossing_points_of_a_rising_and_a_falling_piece() -> None:
    capped = ChargeCurve.from_points(HUMP).capped(100.0)
    # 50 -> 150 over 0..0.2 crosses 100 at 0.1; 150 -> 30 over 0.8..1 crosses 100 at 0.8 + 50/600
    expected_socs = (0.0, 0.1, 0.2, 0.8, 0.8 + 0.2 * 50 / 120, 1.0)
    assert capped.socs == pytest.approx(expected_socs)
    assert capped.kws == pytest.approx((50.0, 100.0, 100.0, 100.0, 100.0, 30.0))


def test_capped_never_exceeds_the_cap_and_equals_min_of_curve_and_cap_everywhere() -> None:
    curve = ChargeCurve.from_points(HUMP)
    for cap in (20.0, 40.0, 75.0, 100.0, 149.0):
        capped = curve.capped(cap)
        assert max(capped.kws) <= cap
        for i in range(1001):
            soc = i / 1000
            assert capped.kw_at(soc) <= cap + 1e-9
            assert capped.kw_at(soc) == pytest.approx(min(curve.kw_at(soc), cap), abs=1e-9)


def test_capped_above_the_curve_changes_nothing() -> None:
    curve = ChargeCurve.from_points(HUMP)
    assert curve.capped(500.0) == curve


def test_capped_keeps_socs_strictly_increasing_when_a_breakpoint_sits_exactly_on_the_cap() -> None:
    capped = ChargeCurve.from_points(HUMP).capped(150.0)
    assert all(b > a for a, b in zip(capped.socs, capped.socs[1:], strict=False))
    assert capped.kws == (50.0, 150.0, 150.0, 30.0)


# --- hours_between: closed forms ----------------------------------------------------------


def test_hours_between_in_the_constant_power_region_is_energy_over_the_limit() -> None:
    curve = ChargeCurve.two_stage(150.0)
    capacity, limit = 300.0, 60.0
    assert curve.hours_between(0.2, 0.7, limit, capacity) == pytest.approx(0.5 * capacity / limit)
    # the flat part of the curve itself binds when the limit is higher
    assert curve.hours_between(0.1, 0.8, 400.0, capacity) == pytest.approx(0.7 * capacity / 150.0)


def test_hours_between_in_the_constant_power_region_holds_in_the_taper_while_the_limit_binds() -> None:
    # curve is 150 -> 15 over 0.8..1, so above 20 kW until soc 0.8 + 0.2 * 130/135
    curve = ChargeCurve.two_stage(150.0)
    assert curve.hours_between(0.8, 0.95, 20.0, 100.0) == pytest.approx(0.15 * 100.0 / 20.0)


@pytest.mark.parametrize(("soc0", "soc1"), [(0.8, 1.0), (0.82, 0.97), (0.9, 0.91)])
def test_hours_between_in_the_falling_taper_matches_the_logarithmic_closed_form(soc0: float, soc1: float) -> None:
    curve = ChargeCurve.two_stage(150.0)  # 150 kW at 0.8, 15 kW at 1.0
    capacity = 400.0
    b = (15.0 - 150.0) / (1.0 - 0.8)
    a = 150.0 - b * 0.8
    p0, p1 = a + b * soc0, a + b * soc1
    expected = capacity / b * math.log(p1 / p0)
    assert expected > 0
    assert curve.hours_between(soc0, soc1, 1000.0, capacity) == pytest.approx(expected, rel=1e-12)


def test_hours_between_in_a_rising_curve_bound_piece_matches_the_logarithmic_closed_form() -> None:
    curve = ChargeCurve.from_points([(0.0, 20.0), (0.3, 150.0), (1.0, 150.0)])
    capacity = 250.0
    b = 130.0 / 0.3
    a = 20.0
    expected = capacity / b * math.log((a + b * 0.25) / (a + b * 0.05))
    assert curve.hours_between(0.05, 0.25, 200.0, capacity) == pytest.approx(expected, rel=1e-12)


def test_hours_between_the_same_or_a_lower_soc_is_zero() -> None:
    curve = ChargeCurve.two_stage(100.0)
    assert curve.hours_between(0.5, 0.5, 50.0, 100.0) == 0.0
    assert curve.hours_between(0.6, 0.5, 50.0, 100.0) == 0.0


def test_hours_between_without_any_power_limit_is_infinite() -> None:
    curve = ChargeCurve.two_stage(100.0)
    assert curve.hours_between(0.2, 0.5, 0.0, 100.0) == math.inf
    assert curve.hours_between(0.2, 0.5, -5.0, 100.0) == math.inf


@pytest.mark.parametrize(
    ("points", "limit", "soc0", "soc1"),
    [
        (((0.0, 150.0), (0.8, 150.0), (1.0, 15.0)), 100.0, 0.5, 0.98),  # limit, then taper
        (((0.0, 150.0), (0.8, 150.0), (1.0, 15.0)), 150.0, 0.1, 0.99),  # curve == limit until 0.8
        (HUMP, 100.0, 0.0, 0.97),  # curve, limit, curve
        (HUMP, 120.0, 0.05, 1.0),
        (((0.0, 80.0), (0.5, 60.0), (0.7, 90.0), (0.9, 40.0), (1.0, 10.0)), 70.0, 0.0, 0.995),
    ],
)
def test_hours_between_a_mixed_region_agrees_with_fine_euler_integration(
    points: tuple[tuple[float, float], ...], limit: float, soc0: float, soc1: float
) -> None:
    capacity = 300.0
    exact = ChargeCurve.from_points(points).hours_between(soc0, soc1, limit, capacity)
    numeric = euler_hours(points, soc0, soc1, limit, capacity, dt=2e-4)
    assert math.isfinite(exact)
    assert exact == pytest.approx(numeric, rel=1e-3)


def test_hours_between_a_limit_then_taper_case_matches_its_piecewise_closed_form() -> None:
    curve = ChargeCurve.two_stage(150.0)
    capacity, limit = 300.0, 100.0
    b = (15.0 - 150.0) / 0.2
    a = 150.0 - b * 0.8
    cross = (limit - a) / b  # where the taper drops below the limit
    expected = (cross - 0.5) * capacity / limit + capacity / b * math.log((a + b * 0.98) / limit)
    assert curve.hours_between(0.5, 0.98, limit, capacity) == pytest.approx(expected, rel=1e-12)


def test_hours_between_adds_up_over_consecutive_intervals() -> None:
    curve = ChargeCurve.from_points(HUMP)
    whole = curve.hours_between(0.05, 0.95, 110.0, 200.0)
    parts = sum(
        curve.hours_between(a, b, 110.0, 200.0) for a, b in [(0.05, 0.1), (0.1, 0.6), (0.6, 0.85), (0.85, 0.95)]
    )
    assert whole == pytest.approx(parts, rel=1e-12)


@pytest.mark.parametrize("slope", [1e-5, 1e-7, 1e-9, 1e-11])
def test_an_almost_flat_curve_bound_piece_integrates_like_a_flat_one(slope: float) -> None:
    # regression: (s0 + a/b) * exp(...) - a/b lost all precision when |a/b| was huge
    curve = ChargeCurve.from_points([(0.0, 100.0), (1.0, 100.0 + slope)])
    p0 = 100.0 + slope * 0.3  # the curve's power at soc 0.3; b*h/C is too small to matter
    assert curve.soc_after(0.3, 200.0, 1e-4, 100.0) == pytest.approx(0.3 + 1e-4 * p0 / 100.0, abs=1e-14)
    assert curve.soc_after(0.0, 200.0, 0.5, 100.0) == pytest.approx(0.5, abs=1e-7)
    assert curve.hours_between(0.0, 0.5, 200.0, 100.0) == pytest.approx(0.5, rel=1e-7)
    assert curve.hours_between(0.3, 0.3001, 200.0, 100.0) == pytest.approx(1e-4 * 100.0 / p0, rel=1e-9)


@pytest.mark.parametrize(("soc0", "soc1"), [(0.0, 1.0), (0.1, 0.9), (0.15, 0.25), (0.85, 0.99), (0.3, 0.3)])
def test_full_power_hours_equals_hours_between_without_a_limit(soc0: float, soc1: float) -> None:
    curve = ChargeCurve.from_points(HUMP)
    assert curve.full_power_hours(soc0, soc1, 300.0) == pytest.approx(
        curve.hours_between(soc0, soc1, math.inf, 300.0), rel=1e-12, abs=1e-15
    )
    assert curve.full_power_hours(soc1, soc0, 300.0) == 0.0  # backwards is no charging


# --- zero power at the top ----------------------------------------------------------------


def test_reaching_full_when_the_curve_ends_at_zero_kw_takes_forever() -> None:
    curve = ChargeCurve.from_points([(0.0, 100.0), (0.8, 100.0), (1.0, 0.0)])
    assert curve.hours_between(0.5, 1.0, 50.0, 100.0) == math.inf
    assert curve.hours_between(0.9, 1.0, 500.0, 100.0) == math.inf
    assert math.isfinite(curve.hours_between(0.5, 0.999, 50.0, 100.0))
    assert curve.full_power_hours(0.5, 1.0, 100.0) == math.inf


def test_soc_after_approaches_but_never_passes_full_when_the_curve_ends_at_zero_kw() -> None:
    curve = ChargeCurve.from_points([(0.0, 100.0), (0.8, 100.0), (1.0, 0.0)])
    soc = curve.soc_after(0.5, 50.0, 100.0, 100.0)
    assert 0.999 < soc <= 1.0
    assert curve.soc_after(0.5, 50.0, 1e6, 100.0) <= 1.0


# --- soc_after ----------------------------------------------------------------------------


def test_soc_after_in_the_constant_power_region_is_linear_in_time() -> None:
    curve = ChargeCurve.two_stage(150.0)
    assert curve.soc_after(0.2, 60.0, 2.0, 300.0) == pytest.approx(0.2 + 2.0 * 60.0 / 300.0)


def test_soc_after_in_the_taper_follows_the_exponential_closed_form() -> None:
    curve = ChargeCurve.two_stage(150.0)
    capacity, hours = 400.0, 0.5
    b = (15.0 - 150.0) / 0.2
    a = 150.0 - b * 0.8
    expected = (0.85 + a / b) * math.exp(b * hours / capacity) - a / b
    assert curve.soc_after(0.85, 1000.0, hours, capacity) == pytest.approx(expected, rel=1e-12)


def test_soc_after_no_time_or_no_power_leaves_the_soc_unchanged() -> None:
    curve = ChargeCurve.two_stage(150.0)
    assert curve.soc_after(0.4, 100.0, 0.0, 300.0) == 0.4
    assert curve.soc_after(0.4, 0.0, 5.0, 300.0) == 0.4


def test_soc_after_a_very_long_charge_stops_at_full() -> None:
    curve = ChargeCurve.two_stage(150.0)
    assert curve.soc_after(0.1, 100.0, 1000.0, 300.0) == 1.0
    assert curve.soc_after(1.0, 100.0, 1.0, 300.0) == 1.0


@st.composite
def curves(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    inner = draw(st.lists(st.floats(0.02, 0.98), max_size=4, unique=True))
    socs = [0.0, *sorted(inner), 1.0]
    socs = [s for i, s in enumerate(socs) if i == 0 or s - socs[i - 1] > 1e-3 or s == 1.0]
    if len(socs) > 2 and socs[-1] - socs[-2] <= 1e-3:
        socs.pop(-2)
    kws = draw(st.lists(st.floats(2.0, 400.0), min_size=len(socs), max_size=len(socs)))
    return tuple(zip(socs, kws, strict=True))


@settings(max_examples=300, deadline=None)
@given(
    points=curves(),
    limit=st.floats(1.0, 500.0),
    capacity=st.floats(10.0, 1000.0),
    socs=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)).filter(lambda p: p[1] - p[0] > 1e-6),
)
def test_soc_after_inverts_hours_between(
    points: tuple[tuple[float, float], ...], limit: float, capacity: float, socs: tuple[float, float]
) -> None:
    curve = ChargeCurve.from_points(points)
    soc0, soc1 = socs
    hours = curve.hours_between(soc0, soc1, limit, capacity)
    assert math.isfinite(hours)
    assert hours > 0
    assert curve.soc_after(soc0, limit, hours, capacity) == pytest.approx(soc1, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    points=curves(),
    limit=st.floats(1.0, 500.0),
    capacity=st.floats(10.0, 1000.0),
    soc0=st.floats(0.0, 0.999),
    hours=st.floats(1e-3, 20.0),
)
def test_hours_between_inverts_soc_after(
    points: tuple[tuple[float, float], ...], limit: float, capacity: float, soc0: float, hours: float
) -> None:
    curve = ChargeCurve.from_points(points)
    soc = curve.soc_after(soc0, limit, hours, capacity)
    assert soc0 < soc <= 1.0
    back = curve.hours_between(soc0, soc, limit, capacity)
    if soc < 1.0 - 1e-9:
        assert back == pytest.approx(hours, rel=1e-7)
    else:  # full before the time ran out
        assert back <= hours * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(points=curves(), limit=st.floats(1.0, 500.0), soc=st.floats(0.0, 1.0))
# a steep fall that starts exactly where the curve crosses the limit (rounding put the
# curve a hair above the limit there, and the rest of the piece was charged at the limit)
@example(points=((0.0, 2.0), (0.90625, 280.0), (0.9140625, 2.0), (1.0, 2.0)), limit=241.0, soc=0.0)
def test_a_higher_limit_never_makes_charging_slower(
    points: tuple[tuple[float, float], ...], limit: float, soc: float
) -> None:
    curve = ChargeCurve.from_points(points)
    slow = curve.hours_between(soc, 1.0, limit, 100.0)
    fast = curve.hours_between(soc, 1.0, limit * 1.5, 100.0)
    assert fast <= slow * (1 + 1e-9)


# --- two_stage ----------------------------------------------------------------------------


def test_two_stage_default_is_full_power_to_80_percent_then_a_taper_to_a_tenth() -> None:
    curve = ChargeCurve.two_stage(150.0)
    assert curve.socs == (0.0, 0.8, 1.0)
    assert curve.kws == (150.0, 150.0, 15.0)
    assert curve.kw_at(0.9) == pytest.approx(82.5)


def test_two_stage_accepts_a_custom_transition_and_end_fraction() -> None:
    curve = ChargeCurve.two_stage(100.0, transition_soc=0.6, end_fraction=0.25)
    assert curve.socs == (0.0, 0.6, 1.0)
    assert curve.kws == (100.0, 100.0, 25.0)
