"""``earliest_departure_first``: serve the vehicle that leaves first.

When power is scarce, the vehicle with the nearest departure has the least time left
to charge, so EDF gives it everything it can take before anyone else gets power. It
is simple and predictable for dispatchers, but it ignores how much energy each
vehicle still needs (see ``least_laxity_first`` for that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.charging.allocation import Allocation, SessionNeed, SiteSnapshot, register
from backend.charging.strategies._limits import greedy_fill, grid_limit


def departure_order(needs: Sequence[SessionNeed]) -> list[int]:
    """Indices of ``needs`` by departure; unknown departures last, ties by session id.

    The session-id tie break makes the result independent of the order the caller
    lists sessions in, so a simulation replays identically.
    """
    return sorted(
        range(len(needs)),
        key=lambda i: (
            math.inf if needs[i].departure_s is None else needs[i].departure_s,
            needs[i].session_id,
        ),
    )


@register("earliest_departure_first")
def earliest_departure_first(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Fill sessions greedily in departure order within all limits.

    Args:
        site: grid limit and capacity groups.
        needs: the plugged-in sessions.
        now: unused; the order depends only on departures.

    Returns:
        Output kW per session; each session takes the most its own maximum, its
        groups' remaining capacity and the remaining grid power allow.
    """
    return Allocation(kw=greedy_fill(site, needs, departure_order(needs), grid_limit(site)))
