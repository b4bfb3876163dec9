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
one prefix sum over the change points up to the last departure and one sorted search
for all sessions.

Eligible sessions are then served in least-laxity order within every limit. The
others are held back, except from on-site PV the site would otherwise curtail
(``SiteSnapshot.free_kw``): what the eligible sessions leave of it is shared among the
held ones, again in least-laxity order within every limit (energy from it costs
nothing, whatever the tariff says). Held sessions are reconsidered at the next call.
Without prices this is exactly ``least_laxity_first``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from backend.charging.allocation import CapacityGroup, SiteSnapshot
from backend.charging.strategies._limits import greedy_fill, grid_limit, wanted_kw
from backend.charging.strategies.least_laxity_first import laxity_key
from backend.charging.table import FloatArray, SessionTable, register_table

SAFETY_FACTOR = 1.1
"""Multiplier on the hours a session needs, for taper and sharing it cannot foresee."""
MARGIN_H = 0.25
"""Hours added after the safety factor so short sessions keep some slack too."""
HORIZON_WITHOUT_DEPARTURE_S = 24 * 3600.0
"""Planning window for a session whose departure is unknown."""

_start_of = itemgetter(0)


@register_table("cost_aware")
def cost_aware(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Charge rows now only if now is among their cheapest sufficient periods.

    Args:
        site: grid limit, capacity groups and tariff change points ``prices``.
        table: the sessions (and idle connector slots).
        now: current time (UTC POSIX seconds).

    Returns:
        Output kW per row; sessions waiting for a cheaper period get 0.
    """
    grid_kw = grid_limit(site)
    margin_h = site.preemption_margin_h
    take = wanted_kw(table)
    held: FloatArray | None = None
    if site.prices:
        eligible = eligible_rows(table, take, site.prices, grid_kw, now)
        if site.free_kw > 0.0 and not eligible.all():
            held = np.where(eligible, 0.0, take)
        take[~eligible] = 0.0
    kw = greedy_fill(site, table, lambda: laxity_key(table, now, margin_h), take, grid_kw)
    if held is not None and held.any():
        kw = kw + _from_surplus(site, table, held, kw, grid_kw, now)
    return kw


def _from_surplus(
    site: SiteSnapshot, table: SessionTable, held: FloatArray, kw: FloatArray, grid_kw: float, now: float
) -> FloatArray:
    """Output kW for the held rows from the PV surplus the served rows leave, within every limit.

    The served rows draw first (``kw``): the surplus, the grid headroom and each capacity
    group shrink by what they take; the held rows then fill what is left greedily by laxity.
    """
    drawn = float(np.sum(kw / table.efficiency)) if len(kw) else 0.0
    left = min(site.free_kw, grid_kw) - drawn
    if left <= 1e-9:
        return np.zeros_like(kw)
    groups = site.groups
    if groups:
        used = np.bincount(table.member_group, weights=kw[table.member_row], minlength=len(groups))
        groups = tuple(
            CapacityGroup(g.group_id, max(g.max_kw - float(u), 0.0)) for g, u in zip(groups, used.tolist(), strict=True)
        )
    rest = SiteSnapshot(left, groups, (), site.preemption_margin_h)
    return greedy_fill(rest, table, lambda: laxity_key(table, now, site.preemption_margin_h), held, left)


def eligible_rows(
    table: SessionTable,
    wanted: FloatArray,
    prices: Sequence[tuple[float, float]],
    grid_kw: float,
    now: float,
) -> npt.NDArray[np.bool_]:
    """Rows that may charge now under the rule in the module docstring.

    Args:
        table: the rows.
        wanted: output kW per row from :func:`~backend.charging.strategies._limits.wanted_kw`;
            only rows with ``wanted > 0`` (the active ones) can be eligible.
        prices: the tariff change points, as in ``SiteSnapshot.prices`` (not empty).
        grid_kw: grid-side kW available (``math.inf`` for no limit).
        now: current time (UTC POSIX seconds).
    """
    active = wanted > 0.0
    if not active.any():
        return active
    max_kw = wanted
    rate = max_kw
    if grid_kw != math.inf:
        total_max = float(np.add.accumulate(max_kw)[-1])  # summed in row order
        rate = np.minimum(rate, grid_kw * table.efficiency * max_kw / total_max)
    positive = rate > 0.0
    with np.errstate(over="ignore"):  # a vanishing grid share needs forever, as it should
        hours = np.maximum(table.energy_kwh / np.where(positive, rate, 1.0), table.hours_to_target)
        needed_s = (np.where(positive, hours, math.inf) * SAFETY_FACTOR + MARGIN_H) * 3600.0
    departure = table.departure_s
    end = np.where(np.isnan(departure), now + HORIZON_WITHOUT_DEPARTURE_S, departure)
    must_run = end - now <= needed_s
    waiting = active & ~must_run
    if not waiting.any():
        return active

    k = max(bisect_right(prices, now, key=_start_of) - 1, 0)
    price_now = prices[k][1]
    last_end = float(end[waiting].max())
    # Periods from now: their starts, whether they are cheaper than now, and the
    # cheaper seconds accumulated before each start.
    starts = [now]
    cheaper = [False]
    cheaper_before = [0.0]
    before, last_start, last_cheaper = 0.0, now, False
    for j in range(k + 1, len(prices)):
        start, price = prices[j]
        if start >= last_end:
            break
        if last_cheaper:
            before += start - last_start
        last_start, last_cheaper = start, price < price_now
        cheaper_before.append(before)
        starts.append(start)
        cheaper.append(last_cheaper)
    starts_at = np.array(starts)
    period = np.searchsorted(starts_at, end, side="right") - 1
    cheaper_s = np.array(cheaper_before)[period] + np.where(np.array(cheaper)[period], end - starts_at[period], 0.0)
    return active & (must_run | (cheaper_s < needed_s))
