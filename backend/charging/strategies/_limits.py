"""Constraint bookkeeping shared by the built-in strategies.

Every strategy distributes output kW under the same three kinds of limit: each
session's own ``max_kw``, the capacity groups it belongs to (sum of output kW) and,
for all strategies except ``uncontrolled``, the site's grid limit (sum of
``kw / efficiency``). The two fill procedures here cover all of them:

* :func:`greedy_fill` serves sessions one after another in a priority order
  (EDF, LLF, cost-aware), each taking all the headroom it can use.
* :func:`water_fill` is progressive filling, which yields the max-min fair point
  (equal share, and fair sharing of an oversubscribed cabinet under uncontrolled).

Both run on every simulator event, so they are plain loops over lists: no numpy for
5-60 sessions, no per-session objects, group membership computed once per call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from backend.charging.allocation import SessionNeed, SiteSnapshot

# Relative tolerance when deciding that a constraint saturated in a filling step.
# Freezing a constraint that is within this slack of its limit over-allocates by at
# most ``_REL_TOL * level`` per member, far below the 1e-9 the callers accept.
_REL_TOL = 1e-12


def grid_limit(site: SiteSnapshot) -> float:
    """Grid-side kW available to charging; a negative or NaN limit means none."""
    grid_kw = site.grid_kw
    return grid_kw if grid_kw > 0.0 else 0.0


def greedy_fill(
    site: SiteSnapshot, needs: Sequence[SessionNeed], order: Iterable[int], grid_kw: float
) -> tuple[float, ...]:
    """Serve sessions in priority order, each taking all the headroom it can use.

    Args:
        site: the groups whose limits apply.
        needs: all sessions of the call (indices in ``order`` refer to these).
        order: indices of the sessions to serve, highest priority first; sessions
            left out get 0 (the cost-aware strategy uses this to hold them back).
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per session, aligned with ``needs``. Work-conserving: a served
        session below its ``max_kw`` is stopped by a constraint that is now full.
    """
    kw = [0.0] * len(needs)
    left = [group.max_kw for group in site.groups]
    grid_left = grid_kw
    for i in order:
        need = needs[i]
        if need.energy_kwh <= 0.0:
            continue
        take = need.max_kw
        groups = need.groups
        for g in groups:
            if left[g] < take:
                take = left[g]
        eff = need.efficiency
        if grid_left * eff < take:
            take = grid_left * eff
        if take <= 0.0:
            continue
        kw[i] = take
        for g in groups:
            left[g] -= take
        grid_left -= take / eff
        if grid_left < 0.0:  # rounding of take / eff when the grid was the limit
            grid_left = 0.0
    return tuple(kw)


def water_fill(
    site: SiteSnapshot, needs: Sequence[SessionNeed], grid_kw: float
) -> tuple[float, ...]:
    """Max-min fair output kW by progressive filling.

    All unfrozen sessions share one level that rises in closed-form steps: each step
    goes to the nearest of (the smallest unfrozen ``max_kw``, a group's remaining
    capacity over its unfrozen members, the grid's remaining kW over the unfrozen
    sessions' summed ``1 / efficiency``). Sessions at their max and members of a
    saturated constraint freeze at the level. With non-negative linear constraints
    this is exactly the max-min fair allocation, in at most
    ``sessions + groups + 1`` steps.

    Args:
        site: the groups whose limits apply.
        needs: the sessions; those with ``energy_kwh <= 0`` get 0.
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per session, aligned with ``needs``.
    """
    n = len(needs)
    kw = [0.0] * n
    active = [i for i in range(n) if needs[i].energy_kwh > 0.0 and needs[i].max_kw > 0.0]
    if not active:
        return tuple(kw)
    caps = [group.max_kw if group.max_kw > 0.0 else 0.0 for group in site.groups]
    members: list[list[int]] = [[] for _ in caps]
    demand = [0.0] * len(caps)
    inv_eff = 0.0
    grid_demand = 0.0
    for i in active:
        need = needs[i]
        for g in need.groups:
            members[g].append(i)
            demand[g] += need.max_kw
        inv_eff += 1.0 / need.efficiency
        grid_demand += need.max_kw / need.efficiency
    # A group whose members' maxima fit can never bind; usually that is every charger.
    live = [g for g in range(len(caps)) if demand[g] > caps[g]]
    grid_binds = grid_demand > grid_kw
    if not live and not grid_binds:
        for i in active:
            kw[i] = needs[i].max_kw
        return tuple(kw)

    left = caps
    count = [len(m) for m in members]
    by_max = sorted(active, key=lambda i: needs[i].max_kw)
    frozen = [True] * n
    for i in active:
        frozen[i] = False
    remaining = len(active)
    grid_left = grid_kw
    level = 0.0
    pos = 0

    def freeze(i: int) -> None:
        nonlocal remaining, inv_eff
        need = needs[i]
        kw[i] = need.max_kw if need.max_kw < level else level
        frozen[i] = True
        remaining -= 1
        for g in need.groups:
            count[g] -= 1
        inv_eff -= 1.0 / need.efficiency

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        step = needs[by_max[pos]].max_kw - level
        live = [g for g in live if count[g]]
        for g in live:
            room = left[g] / count[g]
            if room < step:
                step = room
        if grid_binds:
            room = grid_left / inv_eff if inv_eff > 0.0 else math.inf
            if room < step:
                step = room
        if step < 0.0:
            step = 0.0
        level += step
        slack = _REL_TOL * level
        saturated = [g for g in live if left[g] / count[g] <= step + slack]
        for g in live:
            left[g] -= step * count[g]
        if grid_binds:
            grid_full = grid_left / inv_eff <= step + slack
            grid_left -= step * inv_eff
            if grid_full:
                for i in active:
                    if not frozen[i]:
                        freeze(i)
                break
        for g in saturated:
            for i in members[g]:
                if not frozen[i]:
                    freeze(i)
        while pos < len(by_max) and (
            frozen[by_max[pos]] or needs[by_max[pos]].max_kw <= level + slack
        ):
            if not frozen[by_max[pos]]:
                freeze(by_max[pos])
            pos += 1
    return tuple(kw)
