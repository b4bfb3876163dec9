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
from heapq import heapify, heappop, heappush

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
        grid_binds = grid_left * eff <= take
        if grid_binds:
            take = grid_left * eff
        if take <= 0.0:
            continue
        kw[i] = take
        for g in groups:
            left[g] -= take
        # Zero a full grid outright: take / eff may not round back to grid_left.
        grid_left = 0.0 if grid_binds else grid_left - take / eff
    return tuple(kw)


def water_fill(site: SiteSnapshot, needs: Sequence[SessionNeed], grid_kw: float) -> tuple[float, ...]:
    """Max-min fair output kW by progressive filling.

    All unfrozen sessions share one level that rises from 0. It jumps straight to the
    next event: the smallest unfrozen ``max_kw``, the level at which a group's
    remaining capacity runs out (``left / unfrozen members``), or the one at which the
    grid does (``left / summed 1 / efficiency`` of the unfrozen sessions). Sessions at
    their max and members of a full constraint freeze at the level. With non-negative
    linear constraints this gives exactly the max-min fair allocation.

    Group exhaustion levels only change when a member freezes, so they sit in a heap
    and are updated lazily: a call costs O((sessions + memberships) log groups)
    rather than a pass over every group per event, which matters with hundreds of
    sessions.

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
    left = [group.max_kw if group.max_kw > 0.0 else 0.0 for group in site.groups]
    members: list[list[int]] = [[] for _ in left]
    demand = [0.0] * len(left)
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
    count = [len(m) if demand[g] > left[g] else 0 for g, m in enumerate(members)]
    grid_binds = grid_demand > grid_kw
    if not grid_binds and not any(count):
        for i in active:
            kw[i] = needs[i].max_kw
        return tuple(kw)

    base = [0.0] * len(left)  # level at which left[g] was last brought up to date
    version = [0] * len(left)
    heap = [(left[g] / c, 0, g) for g, c in enumerate(count) if c]
    heapify(heap)
    by_max = sorted(active, key=lambda i: needs[i].max_kw)
    frozen = [True] * n
    for i in active:
        frozen[i] = False
    remaining = len(active)
    grid_left = grid_kw
    grid_base = 0.0
    level = 0.0
    pos = 0

    def freeze(i: int) -> None:
        nonlocal remaining, inv_eff, grid_left, grid_base
        need = needs[i]
        kw[i] = need.max_kw if need.max_kw < level else level
        frozen[i] = True
        remaining -= 1
        for g in need.groups:
            c = count[g]
            if c:
                left[g] -= (level - base[g]) * c
                base[g] = level
                count[g] = c = c - 1
                if c:
                    version[g] += 1
                    heappush(heap, (level + left[g] / c, version[g], g))
        if grid_binds:
            grid_left -= (level - grid_base) * inv_eff
            grid_base = level
            inv_eff -= 1.0 / need.efficiency

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        target = needs[by_max[pos]].max_kw
        while heap and (heap[0][1] != version[heap[0][2]] or not count[heap[0][2]]):
            heappop(heap)
        if heap and heap[0][0] < target:
            target = heap[0][0]
        grid_level = grid_base + grid_left / inv_eff if grid_binds else math.inf
        if grid_level < target:
            target = grid_level
        if target > level:
            level = target
        slack = _REL_TOL * level
        if grid_level <= level + slack:
            for i in by_max:
                if not frozen[i]:
                    freeze(i)
            break
        while heap and heap[0][0] <= level + slack:
            _, ver, g = heappop(heap)
            if ver == version[g] and count[g]:
                count[g] = 0  # full: freezing its members must not re-queue it
                for i in members[g]:
                    if not frozen[i]:
                        freeze(i)
        while pos < len(by_max) and (frozen[by_max[pos]] or needs[by_max[pos]].max_kw <= level + slack):
            if not frozen[by_max[pos]]:
                freeze(by_max[pos])
            pos += 1
    return tuple(kw)
