"""Charge curve and exact SoC integration under a power limit.

A vehicle battery accepts at most ``curve(soc)`` kW, a piecewise-linear function of
SoC (flat in the constant-current phase, tapering in the constant-voltage phase).
With a charger limit ``L`` the power is ``p = min(L, curve(soc))`` and
``dsoc/dt = p / capacity``. Within one linear piece ``curve(s) = a + b*s`` this has
closed forms: linear in time while ``L`` binds, exponential while the curve binds.
The engine uses these to move SoC exactly from event to event, and
:meth:`ChargeCurve.next_critical_soc` tells it where the next regime change is, so
power is re-decided exactly when something changes instead of on a fixed time step.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class ChargeCurve:
    """Piecewise-linear SoC -> max kW curve from SoC 0 to 1.

    Attributes:
        socs: breakpoints, strictly increasing, first 0 and last 1.
        kws: accepted kW at each breakpoint (>= 0).
    """

    socs: tuple[float, ...]
    kws: tuple[float, ...]
    _lines: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    _unit_hours: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Per piece: the line (a, b); and the hours per kWh of capacity needed to reach
        # each breakpoint from SoC 0 at full curve power. Both make the hot-path queries
        # (power at SoC, time to target) O(log pieces) instead of a walk over the curve.
        lines = []
        for i in range(len(self.socs) - 1):
            s0, s1, k0, k1 = self.socs[i], self.socs[i + 1], self.kws[i], self.kws[i + 1]
            b = (k1 - k0) / (s1 - s0)
            lines.append((k0 - b * s0, b))
        hours = [0.0]
        for i, (a, b) in enumerate(lines):
            hours.append(hours[-1] + _curve_hours(a, b, self.socs[i], self.socs[i + 1], 1.0))
        object.__setattr__(self, "_lines", tuple(lines))
        object.__setattr__(self, "_unit_hours", tuple(hours))

    @classmethod
    def two_stage(cls, max_kw: float, transition_soc: float = 0.8, end_fraction: float = 0.1) -> ChargeCurve:
        """Full power up to ``transition_soc``, then linear taper to ``end_fraction``."""
        return cls((0.0, transition_soc, 1.0), (max_kw, max_kw, max_kw * end_fraction))

    @classmethod
    def from_points(cls, points: Sequence[tuple[float, float]]) -> ChargeCurve:
        socs, kws = zip(*points, strict=True)
        return cls(tuple(float(s) for s in socs), tuple(float(k) for k in kws))

    def capped(self, max_kw: float) -> ChargeCurve:
        """The same curve never above ``max_kw`` (adds the crossing points)."""
        socs: list[float] = [self.socs[0]]
        kws: list[float] = [min(self.kws[0], max_kw)]
        for i in range(1, len(self.socs)):
            s0, s1, k0, k1 = self.socs[i - 1], self.socs[i], self.kws[i - 1], self.kws[i]
            if (k0 - max_kw) * (k1 - max_kw) < 0:
                cross = s0 + (max_kw - k0) * (s1 - s0) / (k1 - k0)
                socs.append(cross)
                kws.append(max_kw)
            socs.append(s1)
            kws.append(min(k1, max_kw))
        return ChargeCurve(tuple(socs), tuple(kws))

    def _piece(self, soc: float) -> int:
        """Index i of the piece [socs[i], socs[i+1]) holding ``soc``."""
        return min(max(bisect_right(self.socs, soc) - 1, 0), len(self.socs) - 2)

    def _line(self, i: int) -> tuple[float, float]:
        """Intercept a and slope b of piece i: curve(s) = a + b*s."""
        return self._lines[i]

    def kw_at(self, soc: float) -> float:
        """The most kW the battery accepts at ``soc``."""
        a, b = self._lines[self._piece(soc)]
        return max(a + b * soc, 0.0)

    def full_power_hours(self, soc0: float, soc1: float, capacity_kwh: float) -> float:
        """Exact hours from soc0 to soc1 at full curve power (no other limit)."""
        if soc1 <= soc0:
            return 0.0
        return (self._hours_from_zero(soc1) - self._hours_from_zero(soc0)) * capacity_kwh

    def _hours_from_zero(self, soc: float) -> float:
        i = self._piece(soc)
        a, b = self._lines[i]
        return self._unit_hours[i] + _curve_hours(a, b, self.socs[i], soc, 1.0)

    def hours_between(self, soc0: float, soc1: float, limit_kw: float, capacity_kwh: float) -> float:
        """Exact hours to charge from soc0 to soc1 at ``min(limit_kw, curve)``.

        Returns ``math.inf`` when the power reaches zero before soc1.
        """
        if soc1 <= soc0:
            return 0.0
        if limit_kw <= 0:
            return math.inf
        total = 0.0
        soc = soc0
        while soc < soc1 - _EPS:
            i = self._piece(soc)
            a, b = self._line(i)
            end = min(self.socs[i + 1], soc1)
            # where does the curve cross the limit inside [soc, end]?
            stop = end
            if b != 0:
                cross = (limit_kw - a) / b
                if soc < cross < end:
                    stop = cross
            if _limit_binds(a, b, soc, stop, limit_kw):
                total += (stop - soc) * capacity_kwh / limit_kw
            else:
                total += _curve_hours(a, b, soc, stop, capacity_kwh)
                if math.isinf(total):
                    return total
            soc = stop
        return total

    def soc_after(self, soc0: float, limit_kw: float, hours: float, capacity_kwh: float) -> float:
        """Exact SoC after charging ``hours`` at ``min(limit_kw, curve)`` from soc0 (<= 1)."""
        soc = soc0
        left = hours
        while left > 0 and soc < 1.0 - _EPS and limit_kw > 0:
            i = self._piece(soc)
            a, b = self._line(i)
            end = self.socs[i + 1]
            stop = end
            if b != 0:
                cross = (limit_kw - a) / b
                if soc < cross < end:
                    stop = cross
            if _limit_binds(a, b, soc, stop, limit_kw):
                need = (stop - soc) * capacity_kwh / limit_kw
                if need >= left:
                    return min(soc + left * limit_kw / capacity_kwh, 1.0)
            else:
                need = _curve_hours(a, b, soc, stop, capacity_kwh)
                if need >= left:
                    return min(_curve_soc(a, b, soc, left, capacity_kwh), 1.0)
            left -= need
            soc = stop if stop > soc else end
        return min(soc, 1.0)


def _limit_binds(a: float, b: float, s0: float, s1: float, limit_kw: float) -> bool:
    """Whether the limit, not the curve line a + b*s, sets the power on [s0, s1].

    The stretch never has the curve crossing the limit inside it, so its midpoint
    decides. Testing its start instead misjudges a stretch that starts exactly at a
    crossing, where rounding can put the curve a hair above the limit although it
    falls below it right after.
    """
    return a + b * (0.5 * (s0 + s1)) >= limit_kw


def _curve_hours(a: float, b: float, s0: float, s1: float, capacity: float) -> float:
    """Hours from s0 to s1 when power equals the line a + b*s (curve-bound)."""
    p0, p1 = a + b * s0, a + b * s1
    if p0 <= _EPS or p1 <= _EPS:
        return math.inf if s1 > s0 else 0.0
    if abs(b) < 1e-12:
        return (s1 - s0) * capacity / p0
    # log1p: ln(p1/p0) without cancellation when the piece is almost flat (p1 ~ p0)
    return capacity / b * math.log1p(b * (s1 - s0) / p0)


def _curve_soc(a: float, b: float, s0: float, hours: float, capacity: float) -> float:
    """SoC after ``hours`` when power equals a + b*s: exponential approach."""
    if abs(b) < 1e-12:
        return s0 + hours * a / capacity
    # = (s0 + a/b) * exp(b*hours/capacity) - a/b, without cancellation when |a/b| >> s0
    return s0 + (a + b * s0) / b * math.expm1(b * hours / capacity)
