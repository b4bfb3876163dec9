"""``uncontrolled``: every session draws as much as it can, as if nothing managed it.

This is the baseline the smart strategies are compared against. The grid limit is
deliberately ignored, so the simulator can report the overload a depot without load
management would see. Capacity groups still apply, because a cabinet or a shared
charger physically cannot deliver more than its rating; an oversubscribed one is
shared max-min fairly, which is what power electronics splitting a bus roughly do.
"""

from __future__ import annotations

import math

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies._limits import wanted_kw, water_fill
from backend.charging.table import FloatArray, SessionTable, register_table


@register_table("uncontrolled")
def uncontrolled(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Give each row its ``max_kw``, capped only by its capacity groups.

    Args:
        site: the site; only ``groups`` is used (``grid_kw`` is ignored on purpose).
        table: the sessions (and idle connector slots).
        now: unused; the baseline does not look at time.

    Returns:
        Output kW per row; rows that need no energy get 0.
    """
    return water_fill(site, table, wanted_kw(table), math.inf)
