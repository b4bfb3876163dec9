"""``equal_share``: max-min fair sharing of every limit, in output kW.

Equal share is the usual "no vehicle is favoured" policy of depot load managers.
Plain division (limit / sessions) wastes power when some vehicles cannot take their
share, so this uses progressive filling: everyone rises together until a vehicle hits
its own maximum or a cabinet or the grid connection is full, and the rest keep
rising. The result is exactly max-min fair: no session can get more without taking
from one that has the same or less.
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.charging.allocation import Allocation, SessionNeed, SiteSnapshot, register
from backend.charging.strategies._limits import grid_limit, water_fill


@register("equal_share")
def equal_share(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Max-min fair output kW under session, group and grid limits.

    Args:
        site: grid limit (grid-side kW, so each session weighs ``1 / efficiency``)
            and capacity groups.
        needs: the plugged-in sessions.
        now: unused; fairness does not depend on time.

    Returns:
        Output kW per session; sessions that need no energy get 0.
    """
    return Allocation(kw=water_fill(site, needs, grid_limit(site)))
