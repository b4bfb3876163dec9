"""``least_laxity_first``: serve the vehicle with the least slack before departure.

Laxity is the time a session can still afford to wait: hours until departure minus
hours it needs at full power (taper included). A vehicle that needs a long charge and
leaves soon has little laxity even if another one leaves earlier with a nearly full
battery, so LLF meets more departures than EDF when energy needs differ. Negative
laxity (already late) sorts first, so such vehicles get as close as possible.
"""

from __future__ import annotations

import numpy as np
from numba import njit  # type: ignore[import-untyped]

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies._limits import greedy_fill, grid_limit, wanted_kw
from backend.charging.table import FloatArray, SessionTable, register_table


def laxity_key(table: SessionTable, now: float, margin_h: float = 0.0) -> FloatArray:
    """Sort key per row: laxity hours, +inf without departure; ties go by ``table.rank``.

    Rows already charging (``current_kw > 0``) count ``margin_h`` hours less laxity,
    so a waiting session preempts one only when clearly more urgent.
    """
    return _laxity(table.departure_s, table.hours_to_target, table.current_kw, float(now), float(margin_h))


@register_table("least_laxity_first")
def least_laxity_first(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Fill rows greedily by ascending laxity within all limits.

    Args:
        site: grid limit, capacity groups and the preemption margin.
        table: the sessions (and idle connector slots).
        now: current time (UTC POSIX seconds), the base for laxity.

    Returns:
        Output kW per row.
    """
    margin_h = site.preemption_margin_h
    return greedy_fill(site, table, lambda: laxity_key(table, now, margin_h), wanted_kw(table), grid_limit(site))


@njit(cache=True)
def _laxity(
    departure_s: FloatArray, hours_to_target: FloatArray, current_kw: FloatArray, now: float, margin_h: float
) -> FloatArray:
    """:func:`laxity_key` in one compiled loop, as numpy's separate array operations cost more than the arithmetic.

    The operations and their order are those of the numpy expression
    ``fmin((departure_s - now) / 3600 - hours_to_target, inf) - (current_kw > 0) * margin_h``,
    so the keys, and with them the order of the rows, are the same to the bit.
    """
    n = len(departure_s)
    if len(hours_to_target) != n or len(current_kw) != n:
        raise ValueError("table columns differ in length")
    laxity = np.empty(n)
    for i in range(n):
        value = (departure_s[i] - now) / 3600.0 - hours_to_target[i]
        if value != value:
            value = np.inf  # an unknown (NaN) departure never makes a row urgent
        if margin_h != 0.0:
            value -= (1.0 if current_kw[i] > 0.0 else 0.0) * margin_h
        laxity[i] = value
    return laxity


# Compile now (or load from numba's cache) rather than in the first allocation.
_laxity(np.zeros(1), np.zeros(1), np.zeros(1), 0.0, 1.0)
