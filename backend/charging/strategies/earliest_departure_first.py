"""``earliest_departure_first``: serve the vehicle that leaves first.

When power is scarce, the vehicle with the nearest departure has the least time left
to charge, so EDF gives it everything it can take before anyone else gets power. It
is simple and predictable for dispatchers, but it ignores how much energy each
vehicle still needs (see ``least_laxity_first`` for that).
"""

from __future__ import annotations

import numpy as np

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies._limits import greedy_fill, grid_limit, wanted_kw
from backend.charging.table import FloatArray, SessionTable, register_table


def departure_key(table: SessionTable) -> FloatArray:
    """Sort key per row: the departure, +inf when unknown.

    Ties (equal or unknown departures) are broken by ``table.rank``, which makes the
    result independent of the row order, so a simulation replays identically.
    """
    return np.fmin(table.departure_s, np.inf)  # fmin turns NaN into +inf


@register_table("earliest_departure_first")
def earliest_departure_first(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Fill rows greedily in departure order within all limits.

    Args:
        site: grid limit and capacity groups.
        table: the sessions (and idle connector slots).
        now: unused; the order depends only on departures.

    Returns:
        Output kW per row; each session takes the most its own maximum, its
        groups' remaining capacity and the remaining grid power allow.
    """
    return greedy_fill(site, table, lambda: departure_key(table), wanted_kw(table), grid_limit(site))
