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

# Relative tolerance when deciding that a constraint saturated in a filling step.
# Freezing a constraint that is within this slack of its limit over-allocates by at
# most ``_REL_TOL * level`` per member, far below the 1e-9 the callers accept.
_REL_TOL = 1e-12


def grid_limit(site: SiteSnapshot) -> float:
    """Grid-side kW available to charging; a negative or NaN limit means none."""
    grid_kw = site.grid_kw
    return grid_kw if grid_kw > 0.0 else 0.0


def wanted_kw(table: SessionTable) -> FloatArray:
    """Output kW each row would take without shared limits: ``max_kw``, or 0 when idle.

    Rows with ``max_kw > 0`` here are the *active* ones; the fills give every other
    row 0. A new array, which the fills reuse for their result.
    """
    return table.max_kw * (table.energy_kwh > 0.0)


def greedy_fill(
    site: SiteSnapshot,
    table: SessionTable,
    priority: Callable[[], FloatArray],
    take: FloatArray,
    grid_kw: float,
) -> FloatArray:
    """Serve rows in priority order, each taking all the headroom it can use.

    Args:
        site: the groups whose limits apply.
        table: the rows.
        priority: returns the sort key per row, most urgent lowest (ties by
            ``table.rank``); called only when a limit can bind.
        take: output kW each row may take (from :func:`wanted_kw`; 0 for rows not to
            serve, which the cost-aware strategy uses to hold rows back). Reused
            for the result.
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per row. Work-conserving: a served row below its ``max_kw`` is
        stopped by a constraint that is now full.
    """
    if _groups_can_bind(site, table, take):
        order = np.lexsort((table.rank, priority()))
        return np.array(_greedy_loop(site, table, take, order, grid_kw), dtype=np.float64)
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
    left[1:] = grid_draw[order]
    left = np.subtract.accumulate(left)
    room = left[:-1] * efficiency[order]
    binds = room <= take[order]
    first = int(binds.argmax())
    if not binds[first]:
        return take
    # The first row the grid stops gets what is left; nothing is left after it.
    take[order[first]] = max(float(room[first]), 0.0)
    take[order[first + 1 :]] = 0.0
    return take


def water_fill(site: SiteSnapshot, table: SessionTable, take: FloatArray, grid_kw: float) -> FloatArray:
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
        take: output kW each row could take (from :func:`wanted_kw`); rows at 0 get
            0. Reused for the result.
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per row.
    """
    if _groups_can_bind(site, table, take):
        return np.array(_water_loop(site, table, take, grid_kw), dtype=np.float64)
    if grid_kw == math.inf:
        return take
    if np.add.reduce(take / table.efficiency) <= grid_kw:
        return take
    if grid_kw <= 0.0:
        return np.zeros(len(take))
    by_max = take.argsort()
    maxima = take[by_max]
    weight = 1.0 / table.efficiency[by_max]
    # Grid kW of the rows up to each position at their max, and their summed weights.
    # Idle rows sort first: the level found at their positions is above their maximum
    # of 0, and beyond them they cancel out of the differences.
    upto_kw = np.add.accumulate(maxima * weight)
    upto_weight = np.add.accumulate(weight)
    total_weight = float(upto_weight[-1])
    level = grid_kw / total_weight  # all rows rising together
    if level > maxima[0]:
        if len(maxima) == 1:
            return take  # the grid fits the one row after all (a rounding tie)
        # The level if the grid runs out while the rows above each position rise.
        levels = (grid_kw - upto_kw[:-1]) / (total_weight - upto_weight[:-1])
        reached = levels <= maxima[1:]
        first = int(reached.argmax())
        if not reached[first]:
            return take
        level = float(levels[first])
    return np.minimum(take, level)


def _groups_can_bind(site: SiteSnapshot, table: SessionTable, take: FloatArray) -> bool:
    """Whether some group's members could together exceed it (a NaN limit counts)."""
    caps = group_caps(site.groups)
    if not len(caps):
        return False
    demand = np.bincount(table.member_group, weights=take[table.member_row], minlength=len(caps))
    return int(np.count_nonzero(demand <= caps)) != len(caps)


_groups_of_last: tuple[bytes, bytes, int, tuple[tuple[int, ...], ...]] = (b"", b"", 0, ())


def _groups_of(table: SessionTable) -> tuple[tuple[int, ...], ...]:
    """The groups of each row, in membership order.

    The simulator's memberships never change during a run, so the last result is
    kept, keyed by a copy of the membership bytes (never by the caller's arrays,
    which it refills in place).
    """
    global _groups_of_last
    rows = table.member_row.tobytes()
    groups = table.member_group.tobytes()
    n = len(table.max_kw)
    last_rows, last_groups, last_n, last = _groups_of_last
    if n == last_n and rows == last_rows and groups == last_groups:
        return last
    lists: list[list[int]] = [[] for _ in range(n)]
    for i, g in zip(table.member_row.tolist(), table.member_group.tolist(), strict=True):
        lists[i].append(g)
    result = tuple(map(tuple, lists))
    _groups_of_last = (rows, groups, n, result)
    return result


def _greedy_loop(
    site: SiteSnapshot, table: SessionTable, wanted: FloatArray, order: npt.NDArray[np.intp], grid_kw: float
) -> list[float]:
    max_kw = wanted.tolist()
    efficiency = table.efficiency.tolist()
    groups_of = _groups_of(table)
    kw = [0.0] * len(max_kw)
    left = [group.max_kw for group in site.groups]
    grid_left = grid_kw
    for i in order.tolist():
        take = max_kw[i]
        if take <= 0.0:
            continue
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


def _water_loop(site: SiteSnapshot, table: SessionTable, wanted: FloatArray, grid_kw: float) -> list[float]:
    # Group exhaustion levels only change when a member freezes, so they sit in a heap
    # and are updated lazily: a call costs O((rows + memberships) log groups) rather
    # than a pass over every group per event, which matters with hundreds of rows.
    max_kw = wanted.tolist()
    efficiency = table.efficiency.tolist()
    groups_of = _groups_of(table)
    n = len(max_kw)
    kw = [0.0] * n
    active = [i for i, m in enumerate(max_kw) if m > 0.0]
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
