"""``cost_aware``: charge in the cheapest tariff periods that still meet departures.

A time-of-use heuristic in the spirit of SpiceEV's *greedy market* / *balanced
market* strategies. The aim is cheaper energy without missing a departure that is
still feasible, at the price of one decision per call (no optimisation solver, which
the simulator could not afford on every event).

For each session that needs energy:

1. Planning rate: ``min(max_kw, grid share)``, where the grid share is the grid limit
   converted to output kW (``grid_kw * efficiency``) split in proportion to the
   sessions' ``max_kw``. When the grid is shared the vehicle charges slower, so it
   must plan for more hours.
2. Hours needed: ``max(energy_kwh / rate, hours_to_target) * 1.1 + 0.25``. The factor
   and the quarter hour absorb taper, other sessions and forecast error.
3. Window: ``now`` to departure, or 24 h when the departure is unknown. Split it at
   the tariff change points and pick the cheapest periods (ties: earlier first)
   until they cover the hours needed.
4. The session may charge now if the current period is among those picked, if the
   current price is the cheapest in its window, or if the window is no longer than
   the hours needed (must-run: waiting would miss the departure).

Because the current period is the earliest in every window, it is picked exactly when
the periods strictly cheaper than the current price cover less than the hours needed
(which also covers the "cheapest price now" rule, and in fact the must-run rule, since
the cheaper periods never fill a window shorter than the hours needed; must-run is
tested first only because it is cheaper and reads as intended). That is checked with
one prefix sum over the change points up to the last departure and a bisection per
session.

Eligible sessions are then served in least-laxity order within every limit;
the others get 0 and are reconsidered at the next call. Without prices this is
exactly ``least_laxity_first``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from operator import itemgetter

from backend.charging.allocation import Allocation, SessionNeed, SiteSnapshot, register
from backend.charging.strategies._limits import greedy_fill, grid_limit
from backend.charging.strategies.least_laxity_first import laxity_order

SAFETY_FACTOR = 1.1
"""Multiplier on the hours a session needs, for taper and sharing it cannot foresee."""
MARGIN_H = 0.25
"""Hours added after the safety factor so short sessions keep some slack too."""
HORIZON_WITHOUT_DEPARTURE_S = 24 * 3600.0
"""Planning window for a session whose departure is unknown."""

_start_of = itemgetter(0)


@register("cost_aware")
def cost_aware(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Charge sessions now only if now is among their cheapest sufficient periods.

    Args:
        site: grid limit, capacity groups and tariff change points ``prices``.
        needs: the plugged-in sessions.
        now: current time (UTC POSIX seconds).

    Returns:
        Output kW per session; sessions waiting for a cheaper period get 0.
    """
    grid_kw = grid_limit(site)
    prices = site.prices
    if not prices:
        return Allocation(kw=greedy_fill(site, needs, laxity_order(needs, now, site.preemption_margin_h), grid_kw))

    eligible = [False] * len(needs)
    total_max = sum(need.max_kw for need in needs if need.energy_kwh > 0.0 and need.max_kw > 0.0)
    waiting: list[tuple[int, float, float]] = []  # (index, window end, seconds needed)
    for i, need in enumerate(needs):
        if need.energy_kwh <= 0.0 or need.max_kw <= 0.0:
            continue
        rate = need.max_kw
        if grid_kw != math.inf:
            share = grid_kw * need.efficiency * need.max_kw / total_max
            rate = min(rate, share)
        hours = max(need.energy_kwh / rate, need.hours_to_target) if rate > 0.0 else math.inf
        needed_s = (hours * SAFETY_FACTOR + MARGIN_H) * 3600.0
        end = now + HORIZON_WITHOUT_DEPARTURE_S if need.departure_s is None else need.departure_s
        if end - now <= needed_s:
            eligible[i] = True  # must run
        else:
            waiting.append((i, end, needed_s))

    if waiting:
        k = max(bisect_right(prices, now, key=_start_of) - 1, 0)
        price_now = prices[k][1]
        last_end = max(end for _, end, _ in waiting)
        # Periods from now: their starts, whether they are cheaper than now, and the
        # cheaper seconds accumulated before each start.
        starts = [now]
        cheaper = [False]
        cheaper_before = [0.0]
        for j in range(k, len(prices)):
            if j > k:
                start = prices[j][0]
                if start >= last_end:
                    break
                cheaper_before.append(cheaper_before[-1] + (start - starts[-1] if cheaper[-1] else 0.0))
                starts.append(start)
                cheaper.append(prices[j][1] < price_now)
        for i, end, needed_s in waiting:
            p = bisect_right(starts, end) - 1
            cheaper_s = cheaper_before[p] + (end - starts[p] if cheaper[p] else 0.0)
            eligible[i] = cheaper_s < needed_s

    order = [i for i in laxity_order(needs, now, site.preemption_margin_h) if eligible[i]]
    return Allocation(kw=greedy_fill(site, needs, order, grid_kw))
