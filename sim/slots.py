"""Per-connector session state in numpy arrays.

The engine re-plans every plugged-in session at every change, so the per-session
arithmetic (integrating SoC, the hours a session still needs, the next breakpoint of
each session) runs hundreds of thousands of times per simulated year. Keeping that
state as one row per connector in arrays lets each of those steps be one compiled
loop over the rows (:mod:`sim.slot_kernels`), whatever the depot size, instead of a
Python pass over the sessions or a string of numpy calls.

A row is *idle* when no session is plugged in: capacity 1, power 0, SoC 0, target 0,
no next breakpoint. Idle rows take part in every step and contribute nothing.

Integration follows :mod:`models.battery`: within one charge-curve piece
``curve(s) = a + b*s``, SoC moves linearly while the limit binds (mode 1) and
exponentially while the curve binds (mode 2); mode 0 is no power.
"""

from __future__ import annotations

import math

import numpy as np

from models.battery import ChargeCurve, _curve_soc
from sim import slot_kernels as K

EPS_SOC = K.EPS_SOC
_FLAT = K.FLAT  # |b| below this: the piece is flat (as in models.battery)
_HUGE_H = 1e18  # stands for "never" in per-row hour figures


class Slots:
    """One row per connector. Arrays are updated in place, never replaced or resized,
    during a run, so views of them (the allocator's table) stay valid.

    The float quantities are rows of one 2-D array ``f`` (see :mod:`sim.slot_kernels`
    for their meaning); the attributes of the same names are views of it.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.f = np.zeros((K.COLUMNS, rows))
        f = self.f
        self.soc = f[K.SOC]
        self.ceil = f[K.CEIL]
        self.power = f[K.POWER]
        self.limit = f[K.LIMIT]
        self.a = f[K.A]
        self.b = f[K.B]
        self.safe_b = f[K.SAFE_B]
        self.lo = f[K.LO]
        self.hi = f[K.HI]
        self.unit_h = f[K.UNIT_H]
        self.target_h = f[K.TARGET_H]
        self.cap = f[K.CAP]
        self.eff = f[K.EFF]
        self.inv_eff = f[K.INV_EFF]
        self.target = f[K.TARGET]
        self.next_t = f[K.NEXT_T]
        self.crit = f[K.CRIT]
        self.kwh = f[K.KWH]
        self.acc = f[K.ACC]
        self.dep = f[K.DEP]
        self.wait = f[K.WAIT]
        for column in (K.SAFE_B, K.HI, K.CAP, K.EFF, K.INV_EFF):
            f[column] = 1.0
        for column, idle in ((K.NEXT_T, math.inf), (K.CRIT, math.inf), (K.DEP, math.nan), (K.WAIT, math.nan)):
            f[column] = idle
        self.occupied = np.zeros(rows, dtype=bool)
        self.mode = np.zeros(rows, dtype=np.int8)
        self.sloped = np.zeros(rows, dtype=bool)  # |b| >= _FLAT
        self.rank = np.zeros(rows, dtype=np.int64)  # session id: allocation tie-break
        # the connector status a plan last set (sim.slot_kernels.CHARGING, ...), 0 for any other
        self.status = np.zeros(rows, dtype=np.int8)
        # the allocator's inputs, refilled in place by allocation_inputs
        self.active = np.zeros(rows, dtype=bool)
        self.max_kw = np.zeros(rows)
        self.energy = np.zeros(rows)
        self.hours = np.zeros(rows)
        # (curve id, target) -> (curve, capped hours from SoC 0): a plug-in repeats a few pairs
        self._target_hours: dict[tuple[int, float], tuple[ChargeCurve, float]] = {}
        # scratch outputs of the compiled steps
        self._rows_out = np.zeros(rows, dtype=np.int64)
        self.moved = np.zeros(rows, dtype=np.int64)
        self.moved_zero = np.zeros(rows, dtype=bool)
        self.moved_full = np.zeros(rows, dtype=bool)

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
        self.target_h[j] = self.target_hours(curve, target)
        self.next_t[j] = math.inf
        self.crit[j] = math.inf
        self.kwh[j] = 0.0
        self.dep[j] = dep
        self.wait[j] = math.nan
        self.rank[j] = rank
        self.set_piece(j, curve, soc)

    def target_hours(self, curve: ChargeCurve, target: float) -> float:
        """Curve hours per kWh from SoC 0 to ``target`` at full power (capped), as a row keeps it."""
        cached = self._target_hours.get((id(curve), target))
        if cached is None or cached[0] is not curve:
            cached = self._target_hours[id(curve), target] = (curve, min(curve._hours_from_zero(target), _HUGE_H))
        return cached[1]

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

    # --- compiled steps (sim.slot_kernels) ----------------------------------------------
    def integrate(self, hours: float) -> tuple[float, float]:
        """Advance every row by ``hours``; return (kWh delivered, kWh drawn from the grid)."""
        return K.integrate(self.f, self.mode, self.sloped, hours)

    def allocation_inputs(self, with_hours: bool) -> tuple[int, int]:
        """Refill ``active``, ``max_kw``, ``energy`` and ``hours`` (0 unless ``with_hours``).

        Returns:
            (active rows, rows that reached their target but still draw power); the
            latter are :meth:`full_rows`.
        """
        return K.allocation_inputs(
            self.f, self.mode, self.sloped, self.occupied, with_hours, self.active, self.max_kw, self.energy,
            self.hours, self._rows_out,
        )  # fmt: skip

    def full_rows(self, n: int) -> np.ndarray:
        """The ``n`` rows the last :meth:`allocation_inputs` found full (a copy)."""
        return self._rows_out[:n].copy()

    def changed_rows(self, kw: np.ndarray, due: float, waits: bool) -> tuple[np.ndarray, bool]:
        """Active rows the limits ``kw`` must re-plan, and whether ``kw`` throttles any row.

        A row keeps its plan while its limit is the same unless its breakpoint is due
        (``next_t <= due``) or, when ``waits``, its vehicle waits for a SoC to depart.
        """
        n, throttled = K.changed_rows(self.f, self.active, kw, self.max_kw, due, waits, self._rows_out)
        return self._rows_out[:n].copy(), throttled

    def plan(self, rows: np.ndarray, kw: np.ndarray, now: float, tolerance: float) -> int:
        """Apply new limits ``kw`` (``kw[i]`` for ``rows[i]``): mode, power and next breakpoint.

        See :func:`sim.slot_kernels.plan`.

        Returns:
            How many connector statuses must change; the rows are ``moved[:n]``, with
            ``moved_zero`` (draws nothing) and ``moved_full`` (reached its target).
        """
        return K.plan(
            self.f, self.mode, self.status, rows, kw, now, tolerance, self.moved, self.moved_zero, self.moved_full
        )

    def any_power(self) -> bool:
        """Whether some row draws power (else integration can be skipped)."""
        return K.any_power(self.mode)
