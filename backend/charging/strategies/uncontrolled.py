"""``uncontrolled``: every session draws as much as it can, as if nothing managed it.

This is the baseline the smart strategies are compared against. The grid limit is
deliberately ignored, so the simulator can report the overload a depot without load
management would see. Capacity groups still apply, because a cabinet or a shared
charger physically cannot deliver more than its rating; an oversubscribed one is
shared max-min fairly, which is what power electronics splitting a bus roughly do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.charging.allocation import Allocation, SessionNeed, SiteSnapshot, register
from backend.charging.strategies._limits import water_fill


@register("uncontrolled")
def uncontrolled(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Give each session its ``max_kw``, capped only by its capacity groups.

    Args:
        site: the site; only ``groups`` is used (``grid_kw`` is ignored on purpose).
        needs: the plugged-in sessions.
        now: unused; the baseline does not look at time.

    Returns:
        Output kW per session; sessions that need no energy get 0.
    """
    return Allocation(kw=water_fill(site, needs, math.inf))
