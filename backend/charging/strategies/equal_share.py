"""``equal_share``: max-min fair sharing of every limit, in output kW.

Equal share is the usual "no vehicle is favoured" policy of depot load managers.
Plain division (limit / sessions) wastes power when some vehicles cannot take their
share, so this uses progressive filling: everyone rises together until a vehicle hits
its own maximum or a cabinet or the grid connection is full, and the rest keep
rising. The result is exactly max-min fair: no session can get more without taking
from one that has the same or less.
"""

from __future__ import annotations

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies._limits import grid_limit, wanted_kw, water_fill
from backend.charging.table import FloatArray, SessionTable, register_table


@register_table("equal_share")
def equal_share(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Max-min fair output kW under session, group and grid limits.

    Args:
        site: grid limit (grid-side kW, so each row weighs ``1 / efficiency``)
            and capacity groups.
        table: the sessions (and idle connector slots).
        now: unused; fairness does not depend on time.

    Returns:
        Output kW per row; rows that need no energy get 0.
    """
    return water_fill(site, table, wanted_kw(table), grid_limit(site))
