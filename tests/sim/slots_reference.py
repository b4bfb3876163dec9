"""The numpy planner the compiled one replaced, kept as an independent reference.

It computes the same breakpoints with array expressions instead of a per-row loop,
so the two share no code: tests hold :meth:`sim.slots.Slots.plan` equal to it.
"""

from __future__ import annotations

import math

import numpy as np

from sim.slots import EPS_SOC, Slots

_FLAT = 1e-12
_P_EPS = 1e-12


def curve_hours(a: np.ndarray, b: np.ndarray, s0: np.ndarray, s1: np.ndarray, cap: np.ndarray | float) -> np.ndarray:
    """Vectorised :func:`models.battery._curve_hours` (inf where the power reaches 0)."""
    p0 = a + b * s0
    p1 = a + b * s1
    flat = np.abs(b) < _FLAT
    with np.errstate(divide="ignore", invalid="ignore"):
        hours = np.where(flat, (s1 - s0) * cap / p0, cap / np.where(flat, 1.0, b) * np.log1p(b * (s1 - s0) / p0))
    dead = (p0 <= _P_EPS) | (p1 <= _P_EPS)
    if dead.any():
        hours = np.where(dead, np.where(s1 > s0, math.inf, 0.0), hours)
    return hours


def reference_plan(slots: Slots, rows: np.ndarray, kw: np.ndarray, now: float, tolerance: float) -> np.ndarray:
    """Apply new limits ``kw`` to ``rows``: integration mode, power and next breakpoint.

    The next breakpoint of a row is the first of: its target (or the SoC a delayed
    departure waits for), the end of its curve piece, the SoC where the curve crosses
    its limit, and — so that power freed or wanted along the curve is re-shared — the
    SoC where the curve has fallen (mode 2) or could rise (mode 1) by ``tolerance``.

    Returns:
        Mask over ``rows`` of those that now draw nothing (limit 0 or target reached).
    """
    soc = slots.soc[rows]
    target = slots.target[rows]
    slots.limit[rows] = kw
    zero = (kw <= 1e-9) | (soc >= target - EPS_SOC)
    a = slots.a[rows]
    b = slots.b[rows]
    cap = slots.cap[rows]
    at_curve = a + b * soc
    crit = np.minimum(target, slots.hi[rows])
    wait = slots.wait[rows]
    crit = np.where((soc < wait) & (wait < crit), wait, crit)  # NaN (no wait) compares False
    limited = (at_curve > kw + 1e-9) | ((b >= 0) & (at_curve >= kw - 1e-9))
    falling = b < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where(
            limited,
            np.where(falling, kw - a, kw * (1.0 + tolerance) - a),
            np.where(falling, at_curve * (1.0 - tolerance) - a, kw - a),
        ) / np.where(b == 0, 1.0, b)
        crit = np.where((b != 0) & (soc < cand) & (cand < crit), cand, crit)
        hours = np.where(limited, (crit - soc) * cap / kw, curve_hours(a, b, soc, crit, cap))
    slots.mode[rows] = np.where(zero, 0, np.where(limited, 1, 2))
    slots.power[rows] = np.where(zero, 0.0, np.where(limited, kw, at_curve))
    slots.crit[rows] = crit
    slots.next_t[rows] = np.where(zero | ~np.isfinite(hours), math.inf, now + hours * 3600.0)
    return zero


