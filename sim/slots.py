"""Per-connector session state in numpy arrays, and the vectorised maths on it.

The engine re-plans every plugged-in session at every change, so the per-session
arithmetic (integrating SoC, the hours a session still needs, the next breakpoint of
each session) runs hundreds of thousands of times per simulated year. Keeping that
state as one row per connector in numpy arrays turns it into a few array operations
per event whatever the depot size, instead of a Python loop over the sessions: the
cost of an event stops growing with the fleet.

A row is *idle* when no session is plugged in: capacity 1, power 0, SoC 0, target 0,
no next breakpoint. Idle rows take part in every array operation and contribute
nothing, which is cheaper than gathering the occupied rows at each event.

Integration follows :mod:`models.battery`: within one charge-curve piece
``curve(s) = a + b*s``, SoC moves linearly while the limit binds (mode 1) and
exponentially while the curve binds (mode 2); mode 0 is no power.
"""

from __future__ import annotations

import math

import numpy as np

from models.battery import ChargeCurve, _curve_hours, _curve_soc

EPS_SOC = 1e-9
_FLAT = 1e-12  # |b| below this: the piece is flat (as in models.battery)
_P_EPS = 1e-12  # power at or below this: the curve is exhausted (hours = inf)
_HUGE_H = 1e18  # stands for "never" in per-row hour figures


class Slots:
    """One row per connector. Arrays are replaced, never resized, during a run."""

    def __init__(self, rows: int) -> None:
        def zeros() -> np.ndarray:
            return np.zeros(rows)

        self.rows = rows
        self.occupied = np.zeros(rows, dtype=bool)
        self.soc = zeros()
        self.ceil = zeros()  # the SoC integration stops at: max(target, SoC at plug-in)
        self.power = zeros()  # kW at the segment start (mode 2: the curve's kW then)
        self.limit = zeros()  # the allocator's last limit
        self.mode = np.zeros(rows, dtype=np.int8)
        self.a = zeros()  # current curve piece: curve(s) = a + b*s on [lo, hi)
        self.b = zeros()
        self.safe_b = np.ones(rows)  # b, or 1 on flat pieces (a divisor that never warns)
        self.sloped = np.zeros(rows, dtype=bool)  # |b| >= _FLAT
        self.lo = zeros()
        self.hi = np.ones(rows)
        self.unit_h = zeros()  # curve hours per kWh from SoC 0 to lo, at full power
        self.target_h = zeros()  # ... from SoC 0 to the target
        self.cap = np.ones(rows)
        self.eff = np.ones(rows)
        self.inv_eff = np.ones(rows)
        self.target = zeros()
        self.next_t = np.full(rows, math.inf)
        self.crit = np.full(rows, math.inf)
        self.kwh = zeros()  # delivered to the current session
        self.acc = zeros()  # delivered since the charger's power span opened
        self.dep = np.full(rows, math.nan)  # next departure, UTC POSIX s
        self.wait = np.full(rows, math.nan)  # SoC a delayed departure waits for
        self.rank = np.zeros(rows, dtype=np.int64)  # session id: allocation tie-break
        self.suspended_ev = np.zeros(rows, dtype=bool)  # connector status is SuspendedEV

    # --- rows ----------------------------------------------------------------------------
    def open(self, j: int, soc: float, cap: float, eff: float, target: float, curve: ChargeCurve,
             rank: int, dep: float) -> None:  # fmt: skip
        """Start a session on row j."""
        self.occupied[j] = True
        self.soc[j] = soc
        self.ceil[j] = max(target, soc)
        self.power[j] = 0.0
        self.limit[j] = 0.0
        self.mode[j] = 0
        self.cap[j] = cap
        self.eff[j] = eff
        self.inv_eff[j] = 1.0 / eff
        self.target[j] = target
        # an unreachable target (the curve reaches 0 kW first) is inf hours away; a huge
        # finite figure keeps the same order without inf - inf warnings in the arrays
        self.target_h[j] = min(curve._hours_from_zero(target), _HUGE_H)
        self.next_t[j] = math.inf
        self.crit[j] = math.inf
        self.kwh[j] = 0.0
        self.dep[j] = dep
        self.wait[j] = math.nan
        self.rank[j] = rank
        self.set_piece(j, curve, soc)

    def close(self, j: int) -> None:
        """Make row j idle (its ``acc`` stays: it belongs to the charger's open span)."""
        self.occupied[j] = False
        self.soc[j] = 0.0
        self.ceil[j] = 0.0
        self.power[j] = 0.0
        self.limit[j] = 0.0
        self.mode[j] = 0
        self.a[j] = 0.0
        self.b[j] = 0.0
        self.safe_b[j] = 1.0
        self.sloped[j] = False
        self.lo[j] = 0.0
        self.hi[j] = 1.0
        self.cap[j] = 1.0
        self.eff[j] = 1.0
        self.inv_eff[j] = 1.0
        self.target[j] = 0.0
        self.next_t[j] = math.inf
        self.crit[j] = math.inf
        self.kwh[j] = 0.0
        self.dep[j] = math.nan
        self.wait[j] = math.nan

    def set_piece(self, j: int, curve: ChargeCurve, soc: float) -> None:
        """Point row j at the curve piece holding ``soc``."""
        i = curve._piece(soc)
        a, b = curve._lines[i]
        self.a[j] = a
        self.b[j] = b
        sloped = abs(b) >= _FLAT
        self.sloped[j] = sloped
        self.safe_b[j] = b if sloped else 1.0
        self.lo[j] = curve.socs[i]
        self.hi[j] = curve.socs[i + 1]
        self.unit_h[j] = min(curve._unit_hours[i], _HUGE_H)

    def soc_at(self, j: int, hours: float) -> float:
        """Row j's SoC ``hours`` after its last integration (scalar, for one vehicle)."""
        soc = float(self.soc[j])
        mode = self.mode[j]
        if mode == 0 or hours <= 0:
            return soc
        cap = float(self.cap[j])
        if mode == 1:
            new = soc + float(self.power[j]) * hours / cap
        else:
            new = _curve_soc(self.a.item(j), self.b.item(j), soc, hours, cap)
        return min(new, float(self.ceil[j]))

    # --- vectorised ------------------------------------------------------------------------
    def integrate(self, hours: float, curve_rows: bool) -> tuple[float, float]:
        """Advance every row by ``hours``; return (kWh delivered, kWh drawn from the grid).

        ``curve_rows`` says whether any row is in mode 2 (else the exponential branch
        is skipped: most events find every session at a constant limit or idle). A
        mode-2 row on a flat piece draws the constant ``power`` = ``a``, so the linear
        formula is exact for it.
        """
        soc = self.soc
        cap = self.cap
        new = soc + self.power * hours / cap  # mode 0 rows have power 0
        if curve_rows:
            b = self.b
            curved = soc + (self.a + b * soc) / self.safe_b * np.expm1(b * hours / cap)
            np.copyto(new, curved, where=(self.mode == 2) & self.sloped)
        np.minimum(new, self.ceil, out=new)
        energy = (new - soc) * cap
        self.soc = new
        self.kwh += energy
        self.acc += energy
        return float(energy.sum()), float(energy @ self.inv_eff)

    def hours_to_target(self) -> np.ndarray:
        """Hours each row needs to reach its target at full curve power (taper included).

        Rows whose curve power is exhausted get a huge or non-finite figure; callers
        mask the rows that do not need energy.
        """
        a, b, lo, soc = self.a, self.b, self.lo, self.soc
        p0 = a + b * lo
        p0 = np.where(p0 > _P_EPS, p0, _P_EPS)
        ratio = np.maximum(b * (soc - lo) / p0, -1.0 + 1e-15)
        done = np.where(self.sloped, np.log1p(ratio) / self.safe_b, (soc - lo) / p0)
        return (self.target_h - self.unit_h - done) * self.cap


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


def plan(slots: Slots, rows: np.ndarray, kw: np.ndarray, now: float, tolerance: float) -> np.ndarray:
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


def plan_few(slots: Slots, rows: list[int], kw: list[float], now: float, tolerance: float) -> list[bool]:
    """:func:`plan` for a handful of rows, in scalar arithmetic.

    Most events re-plan one to a few sessions; numpy's per-call overhead would cost
    more than the arithmetic, so this is the same computation one row at a time
    (tests check that both agree).
    """
    zero_rows = []
    soc_a, target_a, a_a, b_a, cap_a, hi_a, wait_a = (
        slots.soc, slots.target, slots.a, slots.b, slots.cap, slots.hi, slots.wait,
    )  # fmt: skip
    for j, k in zip(rows, kw, strict=True):
        slots.limit[j] = k
        soc = soc_a.item(j)
        target = target_a.item(j)
        if k <= 1e-9 or soc >= target - EPS_SOC:
            slots.mode[j] = 0
            slots.power[j] = 0.0
            slots.crit[j] = min(target, hi_a.item(j))
            slots.next_t[j] = math.inf
            zero_rows.append(True)
            continue
        zero_rows.append(False)
        a = a_a.item(j)
        b = b_a.item(j)
        cap = cap_a.item(j)
        at_curve = a + b * soc
        crit = min(target, hi_a.item(j))
        wait = wait_a.item(j)
        if soc < wait < crit:
            crit = wait
        if at_curve > k + 1e-9 or (b >= 0 and at_curve >= k - 1e-9):
            slots.mode[j] = 1
            slots.power[j] = k
            if b != 0:
                cand = ((k - a) if b < 0 else (k * (1.0 + tolerance) - a)) / b
                if soc < cand < crit:
                    crit = cand
            hours = (crit - soc) * cap / k
        else:
            slots.mode[j] = 2
            slots.power[j] = at_curve
            if b != 0:
                cand = ((at_curve * (1.0 - tolerance) - a) if b < 0 else (k - a)) / b
                if soc < cand < crit:
                    crit = cand
            hours = _curve_hours(a, b, soc, crit, cap)
        slots.crit[j] = crit
        slots.next_t[j] = now + hours * 3600.0 if math.isfinite(hours) else math.inf
    return zero_rows
