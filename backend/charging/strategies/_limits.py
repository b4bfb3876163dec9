"""Constraint bookkeeping shared by the built-in strategies, over session tables.

Every strategy distributes output kW under the same three kinds of limit: each
row's own ``max_kw``, the capacity groups it belongs to (sum of output kW) and, for
all strategies except ``uncontrolled``, the site's grid limit (sum of
``kw / efficiency``). The two fill procedures here cover all of them:

* :func:`greedy_fill` serves rows one after another in a priority order
  (EDF, LLF, cost-aware), each taking all the headroom it can use.
* :func:`water_fill` is progressive filling, which yields the max-min fair point
  (equal share, and fair sharing of an oversubscribed cabinet under uncontrolled).

Both run on every simulator event. Usually no capacity group can bind (the
maxima of its members fit), and then only the grid couples the rows: the greedy
fill is a prefix computation along the priority order and the fair share is one
water level, both a handful of numpy calls. When a group can bind, the sequential
procedures run on plain Python lists, which beats numpy call overheads at these
sizes. Both paths give the same result up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heapify, heappop, heappush

import numpy as np
import numpy.typing as npt

from backend.charging.allocation import SiteSnapshot
from backend.charging.table import FloatArray, SessionTable, group_caps

BoolArray = npt.NDArray[np.bool_]

# Relative tolerance when deciding that a constraint saturated in a filling step.
# Freezing a constraint that is within this slack of its limit over-allocates by at
# most ``_REL_TOL * level`` per member, far below the 1e-9 the callers accept.
_REL_TOL = 1e-12


def grid_limit(site: SiteSnapshot) -> float:
    """Grid-side kW available to charging; a negative or NaN limit means none."""
    grid_kw = site.grid_kw
    return grid_kw if grid_kw > 0.0 else 0.0


def active_rows(table: SessionTable) -> BoolArray:
    """Rows that need energy and can take power; every other row gets 0."""
    return (table.energy_kwh > 0.0) & (table.max_kw > 0.0)


def greedy_fill(
    site: SiteSnapshot,
    table: SessionTable,
    priority: Callable[[], FloatArray],
    active: BoolArray,
    grid_kw: float,
) -> FloatArray:
    """Serve rows in priority order, each taking all the headroom it can use.

    Args:
        site: the groups whose limits apply.
        table: the rows.
        priority: returns the sort key per row, most urgent lowest (ties by
            ``table.rank``); called only when a limit can bind.
        active: rows to serve; the others get 0 (the cost-aware strategy uses this
            to hold rows back).
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per row. Work-conserving: a served row below its ``max_kw`` is
        stopped by a constraint that is now full.
    """
    take = np.where(active, table.max_kw, 0.0)
    if _groups_can_bind(site, table, take):
        order = np.lexsort((table.rank, priority()))
        return np.array(_greedy_loop(site, table, active, order, grid_kw), dtype=np.float64)
    if grid_kw == math.inf:
        return take
    efficiency = table.efficiency
    grid_draw = take / efficiency
    if np.add.reduce(grid_draw) <= grid_kw:
        return take
    order = np.lexsort((table.rank, priority()))
    # Grid left before each row in priority order, subtracted in that order.
    left = np.empty(len(order) + 1)
    left[0] = grid_kw
    np.take(grid_draw, order, out=left[1:])
    np.subtract.accumulate(left, out=left)
    room = left[:-1] * efficiency[order]
    binds = room <= take[order]
    first = int(binds.argmax())
    if not binds[first]:
        return take
    # The first row the grid stops gets what is left; nothing is left after it.
    take[order[first]] = max(float(room[first]), 0.0)
    take[order[first + 1 :]] = 0.0
    return take


def water_fill(site: SiteSnapshot, table: SessionTable, active: BoolArray, grid_kw: float) -> FloatArray:
    """Max-min fair output kW by progressive filling.

    All unfrozen rows share one level that rises from 0. It jumps straight to the
    next event: the smallest unfrozen ``max_kw``, the level at which a group's
    remaining capacity runs out (``left / unfrozen members``), or the one at which the
    grid does (``left / summed 1 / efficiency`` of the unfrozen rows). Rows at their
    max and members of a full constraint freeze at the level. With non-negative
    linear constraints this gives exactly the max-min fair allocation.

    Without a group that can bind, only the grid freezes rows below their max, all
    at one level ``L`` with ``sum(min(max_kw, L) / efficiency) = grid_kw``; it is
    found between the sorted maxima.

    Args:
        site: the groups whose limits apply.
        table: the rows.
        active: rows that take part; the others get 0.
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per row.
    """
    take = np.where(active, table.max_kw, 0.0)
    if _groups_can_bind(site, table, take):
        return np.array(_water_loop(site, table, active, grid_kw), dtype=np.float64)
    if grid_kw == math.inf:
        return take
    if np.add.reduce(take / table.efficiency) <= grid_kw:
        return take
    if grid_kw <= 0.0:
        return np.zeros(len(take))
    weight = np.where(active, 1.0 / table.efficiency, 0.0)
    by_max = take.argsort()
    maxima = take[by_max]
    # Row 0: grid kW of the rows below each position at their max; row 1: the summed
    # weights below it. Idle rows sort first with weight 0 and change neither.
    below = np.zeros((2, len(take) + 1))
    np.take(weight, by_max, out=below[1, 1:])
    np.multiply(maxima, below[1, 1:], out=below[0, 1:])
    np.add.accumulate(below, axis=1, out=below)
    # The level if the grid runs out while the rows from each position up rise.
    level = (grid_kw - below[0, :-1]) / (below[1, -1] - below[1, :-1])
    reached = level <= maxima
    first = int(reached.argmax())
    if not reached[first]:
        return take
    return np.minimum(take, level[first])


def _groups_can_bind(site: SiteSnapshot, table: SessionTable, take: FloatArray) -> bool:
    """Whether some group's members could together exceed it (a NaN limit counts)."""
    caps = group_caps(site.groups)
    if not len(caps):
        return False
    demand = np.bincount(table.member_group, weights=take[table.member_row], minlength=len(caps))
    return int(np.count_nonzero(demand <= caps)) != len(caps)


def _groups_of(table: SessionTable) -> list[list[int]]:
    groups_of: list[list[int]] = [[] for _ in range(len(table.max_kw))]
    for i, g in zip(table.member_row.tolist(), table.member_group.tolist(), strict=True):
        groups_of[i].append(g)
    return groups_of


def _greedy_loop(
    site: SiteSnapshot, table: SessionTable, active: BoolArray, order: npt.NDArray[np.intp], grid_kw: float
) -> list[float]:
    max_kw = table.max_kw.tolist()
    efficiency = table.efficiency.tolist()
    served = active.tolist()
    groups_of = _groups_of(table)
    kw = [0.0] * len(max_kw)
    left = [group.max_kw for group in site.groups]
    grid_left = grid_kw
    for i in order.tolist():
        if not served[i]:
            continue
        take = max_kw[i]
        groups = groups_of[i]
        for g in groups:
            if left[g] < take:
                take = left[g]
        eff = efficiency[i]
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
    return kw


def _water_loop(site: SiteSnapshot, table: SessionTable, active_mask: BoolArray, grid_kw: float) -> list[float]:
    # Group exhaustion levels only change when a member freezes, so they sit in a heap
    # and are updated lazily: a call costs O((rows + memberships) log groups) rather
    # than a pass over every group per event, which matters with hundreds of rows.
    max_kw = table.max_kw.tolist()
    efficiency = table.efficiency.tolist()
    groups_of = _groups_of(table)
    n = len(max_kw)
    kw = [0.0] * n
    active = np.flatnonzero(active_mask).tolist()
    if not active:
        return kw
    left = [group.max_kw if group.max_kw > 0.0 else 0.0 for group in site.groups]
    members: list[list[int]] = [[] for _ in left]
    demand = [0.0] * len(left)
    inv_eff = 0.0
    grid_demand = 0.0
    for i in active:
        for g in groups_of[i]:
            members[g].append(i)
            demand[g] += max_kw[i]
        inv_eff += 1.0 / efficiency[i]
        grid_demand += max_kw[i] / efficiency[i]
    # A group whose members' maxima fit can never bind; usually that is every charger.
    count = [len(m) if demand[g] > left[g] else 0 for g, m in enumerate(members)]
    grid_binds = grid_demand > grid_kw
    if not grid_binds and not any(count):
        for i in active:
            kw[i] = max_kw[i]
        return kw

    base = [0.0] * len(left)  # level at which left[g] was last brought up to date
    version = [0] * len(left)
    heap = [(left[g] / c, 0, g) for g, c in enumerate(count) if c]
    heapify(heap)
    by_max = sorted(active, key=max_kw.__getitem__)
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
        kw[i] = max_kw[i] if max_kw[i] < level else level
        frozen[i] = True
        remaining -= 1
        for g in groups_of[i]:
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
            inv_eff -= 1.0 / efficiency[i]

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        target = max_kw[by_max[pos]]
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
        while pos < len(by_max) and (frozen[by_max[pos]] or max_kw[by_max[pos]] <= level + slack):
            if not frozen[by_max[pos]]:
                freeze(by_max[pos])
            pos += 1
    return kw
