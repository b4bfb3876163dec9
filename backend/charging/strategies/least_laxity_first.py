"""``least_laxity_first``: serve the vehicle with the least slack before departure.

Laxity is the time a session can still afford to wait: hours until departure minus
hours it needs at full power (taper included). A vehicle that needs a long charge and
leaves soon has little laxity even if another one leaves earlier with a nearly full
battery, so LLF meets more departures than EDF when energy needs differ. Negative
laxity (already late) sorts first, so such vehicles get as close as possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.charging.allocation import Allocation, SessionNeed, SiteSnapshot, register
from backend.charging.strategies._limits import greedy_fill, grid_limit


def laxity_hours(need: SessionNeed, now: float) -> float:
    """Hours the session can still wait and reach its target; +inf without departure."""
    if need.departure_s is None:
        return math.inf
    return (need.departure_s - now) / 3600.0 - need.hours_to_target


def laxity_order(needs: Sequence[SessionNeed], now: float, margin_h: float = 0.0) -> list[int]:
    """Indices of ``needs`` by ascending laxity, ties broken by session id.

    Sessions already charging (``current_kw > 0``) count ``margin_h`` hours less laxity,
    so a waiting session preempts one only when clearly more urgent.
    """

    def key(i: int) -> tuple[float, str]:
        need = needs[i]
        laxity = laxity_hours(need, now)
        if margin_h and need.current_kw > 0:
            laxity -= margin_h
        return (laxity, need.session_id)

    return sorted(range(len(needs)), key=key)


@register("least_laxity_first")
def least_laxity_first(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Fill sessions greedily by ascending laxity within all limits.

    Args:
        site: grid limit and capacity groups.
        needs: the plugged-in sessions.
        now: current time (UTC POSIX seconds), the base for laxity.

    Returns:
        Output kW per session.
    """
    order = laxity_order(needs, now, site.preemption_margin_h)
    return Allocation(kw=greedy_fill(site, needs, order, grid_limit(site)))
