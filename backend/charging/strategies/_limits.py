"""Constraint bookkeeping shared by the built-in strategies, over session tables.

Every strategy distributes output kW under the same three kinds of limit: each
row's own ``max_kw``, the capacity groups it belongs to (sum of output kW) and, for
all strategies except ``uncontrolled``, the site's grid limit (sum of
``kw / efficiency``). The two fill procedures here cover all of them:

* :func:`greedy_fill` serves rows one after another in a priority order
  (EDF, LLF, cost-aware), each taking all the headroom it can use.
* :func:`water_fill` is progressive filling, which yields the max-min fair point
  (equal share, and fair sharing of an oversubscribed cabinet under uncontrolled).

Both run on every simulator event, about 140,000 times per simulated year with tens
to hundreds of rows. Usually no capacity group can bind (the maxima of its members
fit), and then only the grid couples the rows: the greedy fill is a prefix
computation along the priority order and the fair share is one water level. When a
group can bind, the sequential procedures run row by row. Both give the same result
up to rounding.

At these sizes numpy's fixed cost of about a microsecond per call, or a Python loop
over the rows, costs more than the arithmetic, so all of it runs as functions
compiled with numba. They take plain arrays and floats; the public functions only
pick the procedure. They are compiled when this module is imported: about ten
seconds the first time on a machine, after which numba's cache in ``__pycache__``
loads them in a few tens of milliseconds.

The compiled code repeats the floating-point operations of the numpy and list
implementations it replaced in the same order (numpy's pairwise summation for its
sums, sequential prefix sums), so results are bit-identical, with one deliberate
exception: rows with equal ``max_kw`` enter the water level in ``rank`` order, where
numpy's unstable sort left that order to the CPU's sort routine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit  # type: ignore[import-untyped]

from backend.charging.allocation import CapacityGroup, SiteSnapshot
from backend.charging.table import FloatArray, IntArray, SessionTable, group_caps

# Relative tolerance when deciding that a constraint saturated in a filling step.
# Freezing a constraint that is within this slack of its limit over-allocates by at
# most ``_REL_TOL * level`` per member, far below the 1e-9 the callers accept.
_REL_TOL = 1e-12

# Sums shorter than this run as numpy's unrolled block; longer ones are halved first.
_PAIRWISE_BLOCK = 128
# Rows sorted by insertion before the merge passes of :func:`_order`.
_SORT_RUN = 16


def grid_limit(site: SiteSnapshot) -> float:
    """Grid-side kW available to charging; a negative or NaN limit means none."""
    grid_kw = site.grid_kw
    return grid_kw if grid_kw > 0.0 else 0.0


def wanted_kw(table: SessionTable) -> FloatArray:
    """Output kW each row would take without shared limits: ``max_kw``, or 0 when idle.

    Rows with ``max_kw > 0`` here are the *active* ones; the fills give every other
    row 0. A new array, which the fills reuse for their result.
    """
    return _wanted(table.max_kw, table.energy_kwh)


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
            ``table.rank``, NaN last); called only when a limit can bind.
        take: output kW each row may take (from :func:`wanted_kw`; 0 for rows not to
            serve, which the cost-aware strategy uses to hold rows back). Reused
            for the result.
        grid_kw: grid-side kW to share (``math.inf`` to ignore the grid).

    Returns:
        Output kW per row. Work-conserving: a served row below its ``max_kw`` is
        stopped by a constraint that is now full.
    """
    grid_kw = float(grid_kw)  # one compiled variant, also when a site's limit is an int
    efficiency = table.efficiency
    caps = group_caps(site.groups)
    if len(caps) and _demand_exceeds(take, table.member_row, table.member_group, caps):
        return _greedy_serve(
            take, efficiency, priority(), table.rank, table.member_row, table.member_group, caps, grid_kw
        )
    if _grid_fits(take, efficiency, grid_kw):
        return take
    return _greedy_prefix(take, efficiency, priority(), table.rank, grid_kw)


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
    grid_kw = float(grid_kw)  # one compiled variant, also when a site's limit is an int
    caps = group_caps(site.groups)
    if len(caps) and _demand_exceeds(take, table.member_row, table.member_group, caps):
        return _water_serve(take, table.efficiency, table.member_row, table.member_group, caps, grid_kw)
    return _water_level(take, table.efficiency, table.rank, grid_kw)


# --- compiled kernels ----------------------------------------------------------------
#
# They take only arrays and floats, so numba compiles them without Python objects (and
# other compiled code could call them). They check the lengths and indices they rely
# on: numba does not bounds-check, and a bad table must raise rather than read past an
# array.


@njit(cache=True)
def _wanted(max_kw: FloatArray, energy_kwh: FloatArray) -> FloatArray:
    """:func:`wanted_kw` as a new array."""
    n = len(max_kw)
    if len(energy_kwh) != n:
        raise ValueError("table columns differ in length")
    out = np.empty(n)
    for i in range(n):
        # A product like numpy's ``max_kw * (energy_kwh > 0)``, which keeps NaN and -0.0.
        out[i] = max_kw[i] * (1.0 if energy_kwh[i] > 0.0 else 0.0)
    return out


@njit(cache=True)
def _block_sum(values: FloatArray, lo: int, n: int) -> float:
    """``values[lo:lo + n]`` for ``n <= _PAIRWISE_BLOCK``, summed as numpy sums such a block.

    Fewer than 8 values add up in turn; more go to 8 running sums, which are combined
    pairwise before the remainder is added.
    """
    if n < 8:
        total = 0.0
        for i in range(lo, lo + n):
            total += values[i]
        return total
    r0 = values[lo]
    r1 = values[lo + 1]
    r2 = values[lo + 2]
    r3 = values[lo + 3]
    r4 = values[lo + 4]
    r5 = values[lo + 5]
    r6 = values[lo + 6]
    r7 = values[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        total += values[i]
        i += 1
    return total


@njit(cache=True)
def _pairwise_sum(values: FloatArray) -> float:
    """The sum of ``values`` in the order of ``np.add.reduce`` (numpy's pairwise summation).

    Repeating numpy's order makes a comparison with a limit decide exactly as the
    numpy code did. Numpy halves a long array (keeping the first half a multiple of 8)
    until the parts fit a block; this walks the same tree with an explicit stack,
    because numba's cache cannot hold recursive functions reliably.
    """
    n = len(values)
    if n <= _PAIRWISE_BLOCK:
        return 0.0 + _block_sum(values, 0, n)
    # Pending parts (lo, size, combine): combine=1 adds the two sums on top of `sums`.
    lo_of = np.empty(192, dtype=np.int64)
    size_of = np.empty(192, dtype=np.int64)
    combine = np.empty(192, dtype=np.int64)
    sums = np.empty(64)
    lo_of[0] = 0
    size_of[0] = n
    combine[0] = 0
    top = 1
    done = 0
    while top:
        top -= 1
        lo = lo_of[top]
        size = size_of[top]
        if combine[top]:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]
        elif size <= _PAIRWISE_BLOCK:
            sums[done] = _block_sum(values, lo, size)
            done += 1
        else:
            half = size // 2
            half -= half % 8
            # Popped in reverse: the first half, the second half, then their sum.
            lo_of[top] = lo
            size_of[top] = size
            combine[top] = 1
            lo_of[top + 1] = lo + half
            size_of[top + 1] = size - half
            combine[top + 1] = 0
            lo_of[top + 2] = lo
            size_of[top + 2] = half
            combine[top + 2] = 0
            top += 3
    return 0.0 + sums[0]


@njit(cache=True)
def _grid_draw(take: FloatArray, efficiency: FloatArray) -> FloatArray:
    """Grid-side kW per row at ``take``."""
    n = len(take)
    if len(efficiency) != n:
        raise ValueError("table columns differ in length")
    draw = np.empty(n)
    for i in range(n):
        draw[i] = take[i] / efficiency[i]
    return draw


@njit(cache=True)
def _grid_fits(take: FloatArray, efficiency: FloatArray, grid_kw: float) -> bool:
    """Whether every row at ``take`` fits the grid, summed as ``np.add.reduce`` does."""
    if grid_kw == np.inf:
        return True
    draw = _grid_draw(take, efficiency)
    return _pairwise_sum(draw) <= grid_kw


@njit(cache=True)
def _demand_exceeds(take: FloatArray, member_row: IntArray, member_group: IntArray, caps: FloatArray) -> bool:
    """Whether some group's members' ``take`` sums to more than its cap (or the cap is NaN)."""
    n = len(take)
    n_groups = len(caps)
    if len(member_group) != len(member_row):
        raise ValueError("member_row and member_group differ in length")
    demand = np.zeros(n_groups)
    for k in range(len(member_row)):
        i = member_row[k]
        g = member_group[k]
        if i < 0 or i >= n or g < 0 or g >= n_groups:
            raise IndexError("membership refers to a row or group that does not exist")
        demand[g] += take[i]  # in membership order, as np.bincount sums
    fit = 0
    for g in range(n_groups):
        if demand[g] <= caps[g]:
            fit += 1
    return fit != n_groups


@njit(cache=True)
def _precedes(key: FloatArray, rank: IntArray, a: int, b: int) -> bool:
    """Whether row ``a`` sorts before row ``b``: by key (NaN last), then rank, then row."""
    ka = key[a]
    kb = key[b]
    if ka < kb:
        return True
    if kb < ka:
        return False
    a_nan = ka != ka
    if a_nan != (kb != kb):
        return not a_nan
    if rank[a] != rank[b]:
        return rank[a] < rank[b]
    return a < b


@njit(cache=True)
def _order(key: FloatArray, rank: IntArray) -> IntArray:
    """Rows by ascending key, ties by rank: the order of ``np.lexsort((rank, key))``.

    The comparison is a total order (the row index settles equal ranks, as lexsort's
    stable passes do), so any correct sort gives the same order; this one sorts short
    runs by insertion and merges them.
    """
    n = len(key)
    if len(rank) != n:
        raise ValueError("key and rank differ in length")
    order = np.arange(n)
    for lo in range(0, n, _SORT_RUN):
        hi = min(lo + _SORT_RUN, n)
        for i in range(lo + 1, hi):
            row = order[i]
            j = i - 1
            while j >= lo and _precedes(key, rank, row, order[j]):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = row
    if n <= _SORT_RUN:
        return order
    src = order
    dst = np.empty_like(order)
    width = _SORT_RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if _precedes(key, rank, src[j], src[i]):
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    return src


@njit(cache=True)
def _greedy_prefix(
    take: FloatArray, efficiency: FloatArray, key: FloatArray, rank: IntArray, grid_kw: float
) -> FloatArray:
    """Greedy fill when only the grid binds; ``take`` becomes the result.

    Rows take their all in priority order while the grid lasts; the first row the grid
    stops gets what is left and the later ones nothing. The grid left is carried as a
    running difference, in priority order, like ``np.subtract.accumulate``.
    """
    n = len(take)
    if len(efficiency) != n or len(key) != n:
        raise ValueError("table columns differ in length")
    order = _order(key, rank)
    left = grid_kw
    for k in range(n):
        i = order[k]
        room = left * efficiency[i]
        if room <= take[i]:
            take[i] = 0.0 if room < 0.0 else room
            for m in range(k + 1, n):
                take[order[m]] = 0.0
            return take
        left = left - take[i] / efficiency[i]
    return take


@njit(cache=True)
def _water_level(take: FloatArray, efficiency: FloatArray, rank: IntArray, grid_kw: float) -> FloatArray:
    """Equal share when only the grid binds: ``min(take, L)`` for the one grid level ``L``.

    Returns ``take`` itself when the grid fits every row.
    """
    n = len(take)
    if _grid_fits(take, efficiency, grid_kw):
        return take
    if grid_kw <= 0.0:
        return np.zeros(n)
    by_max = _order(take, rank)
    # Grid kW of the rows up to each position at their max, and their summed weights.
    # Idle rows sort first: the level found at their positions is above their maximum
    # of 0, and beyond them they cancel out of the differences.
    upto_kw = np.empty(n)
    upto_weight = np.empty(n)
    kw_sum = 0.0
    weight_sum = 0.0
    for k in range(n):
        i = by_max[k]
        weight = 1.0 / efficiency[i]
        kw = take[i] * weight
        kw_sum = kw if k == 0 else kw_sum + kw
        weight_sum = weight if k == 0 else weight_sum + weight
        upto_kw[k] = kw_sum
        upto_weight[k] = weight_sum
    total_weight = upto_weight[n - 1]
    level = grid_kw / total_weight  # all rows rising together
    if level > take[by_max[0]]:
        if n == 1:
            return take  # the grid fits the one row after all (a rounding tie)
        # The first position where the level, if the grid runs out while the rows above
        # it rise, stays within the next maximum.
        for k in range(n - 1):
            candidate = (grid_kw - upto_kw[k]) / (total_weight - upto_weight[k])
            if candidate <= take[by_max[k + 1]]:
                level = candidate
                break
        else:
            return take
    out = np.empty(n)
    for i in range(n):
        value = take[i]
        # np.minimum: NaN from either side wins
        out[i] = value if value < level or value != value else level
    return out


@njit(cache=True)
def _memberships(n: int, member_row: IntArray, member_group: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """The groups of each row, in membership order: row i's are ``groups[start[i]:start[i + 1]]``."""
    m = len(member_row)
    if len(member_group) != m:
        raise ValueError("member_row and member_group differ in length")
    start = np.zeros(n + 1, dtype=np.int64)
    for k in range(m):
        i = member_row[k]
        g = member_group[k]
        if i < 0 or i >= n or g < 0 or g >= n_groups:
            raise IndexError("membership refers to a row or group that does not exist")
        start[i + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    groups = np.empty(m, dtype=np.int64)
    fill = start[:n].copy()
    for k in range(m):
        i = member_row[k]
        groups[fill[i]] = member_group[k]
        fill[i] += 1
    return start, groups


@njit(cache=True)
def _greedy_serve(
    take: FloatArray,
    efficiency: FloatArray,
    key: FloatArray,
    rank: IntArray,
    member_row: IntArray,
    member_group: IntArray,
    caps: FloatArray,
    grid_kw: float,
) -> FloatArray:
    """Greedy fill row by row in priority order, under groups and grid.

    Each row takes the least of its ``take``, its groups' remaining capacity and the
    grid's remaining room, and leaves that much less for the rows after it.
    """
    n = len(take)
    if len(efficiency) != n or len(key) != n:
        raise ValueError("table columns differ in length")
    order = _order(key, rank)
    start, groups = _memberships(n, member_row, member_group, len(caps))
    kw = np.zeros(n)
    left = caps.copy()
    grid_left = grid_kw
    for i in order:
        want = take[i]
        if want <= 0.0:
            continue
        for p in range(start[i], start[i + 1]):
            g = groups[p]
            if left[g] < want:
                want = left[g]
        eff = efficiency[i]
        grid_binds = grid_left * eff <= want
        if grid_binds:
            want = grid_left * eff
        if want <= 0.0:
            continue
        kw[i] = want
        for p in range(start[i], start[i + 1]):
            left[groups[p]] -= want
        # Zero a full grid outright: want / eff may not round back to grid_left.
        grid_left = 0.0 if grid_binds else grid_left - want / eff
    return kw


# A binary heap of (key, version, group) entries in three arrays, with the algorithm of
# Python's heapq, so that entries leave it in the same order as from the list version.


@njit(cache=True)
def _entry_less(key: float, version: int, group: int, other_key: float, other_version: int, other_group: int) -> bool:
    """``(key, version, group) < (other_key, ...)`` as Python compares tuples (NaN keys included)."""
    if key != other_key:
        return key < other_key
    if version != other_version:
        return version < other_version
    return group < other_group


@njit(cache=True)
def _heap_push(
    keys: FloatArray, versions: IntArray, groups: IntArray, size: int, key: float, version: int, group: int
) -> int:
    """``heapq.heappush``; returns the new size."""
    keys[size] = key
    versions[size] = version
    groups[size] = group
    _sift_down(keys, versions, groups, 0, size)
    return size + 1


@njit(cache=True)
def _heap_pop(keys: FloatArray, versions: IntArray, groups: IntArray, size: int) -> int:
    """``heapq.heappop`` of the entry at index 0, which the caller has read; returns the new size."""
    size -= 1
    if size:
        keys[0] = keys[size]
        versions[0] = versions[size]
        groups[0] = groups[size]
        _sift_up(keys, versions, groups, size, 0)
    return size


@njit(cache=True)
def _sift_down(keys: FloatArray, versions: IntArray, groups: IntArray, start: int, pos: int) -> None:
    """``heapq._siftdown``: move the entry at ``pos`` up towards ``start`` while it is less than its parent."""
    key = keys[pos]
    version = versions[pos]
    group = groups[pos]
    while pos > start:
        parent = (pos - 1) >> 1
        if not _entry_less(key, version, group, keys[parent], versions[parent], groups[parent]):
            break
        keys[pos] = keys[parent]
        versions[pos] = versions[parent]
        groups[pos] = groups[parent]
        pos = parent
    keys[pos] = key
    versions[pos] = version
    groups[pos] = group


@njit(cache=True)
def _sift_up(keys: FloatArray, versions: IntArray, groups: IntArray, size: int, pos: int) -> None:
    """``heapq._siftup``: move the entry at ``pos`` down to a leaf along smaller children, then back up."""
    start = pos
    key = keys[pos]
    version = versions[pos]
    group = groups[pos]
    child = 2 * pos + 1
    while child < size:
        right = child + 1
        if right < size and not _entry_less(
            keys[child], versions[child], groups[child], keys[right], versions[right], groups[right]
        ):
            child = right
        keys[pos] = keys[child]
        versions[pos] = versions[child]
        groups[pos] = groups[child]
        pos = child
        child = 2 * pos + 1
    keys[pos] = key
    versions[pos] = version
    groups[pos] = group
    _sift_down(keys, versions, groups, start, pos)


@njit(cache=True)
def _water_serve(
    take: FloatArray,
    efficiency: FloatArray,
    member_row: IntArray,
    member_group: IntArray,
    caps: FloatArray,
    grid_kw: float,
) -> FloatArray:
    """Progressive filling row by row (see :func:`water_fill`), for when a group can bind.

    Group exhaustion levels only change when a member freezes, so they sit in a heap
    of ``(level, version, group)`` and are updated lazily: a call costs
    O((rows + memberships) log groups) rather than a pass over every group per event.
    """
    n = len(take)
    if len(efficiency) != n:
        raise ValueError("table columns differ in length")
    n_groups = len(caps)
    start, groups = _memberships(n, member_row, member_group, n_groups)
    kw = np.zeros(n)
    n_active = 0
    for i in range(n):
        if take[i] > 0.0:
            n_active += 1
    if not n_active:
        return kw
    left = np.empty(n_groups)
    for g in range(n_groups):
        left[g] = caps[g] if caps[g] > 0.0 else 0.0
    # Active members of each group in row order: members[member_start[g]:member_start[g + 1]].
    member_count = np.zeros(n_groups, dtype=np.int64)
    demand = np.zeros(n_groups)
    inv_eff = 0.0
    grid_demand = 0.0
    for i in range(n):
        if take[i] > 0.0:
            for p in range(start[i], start[i + 1]):
                g = groups[p]
                member_count[g] += 1
                demand[g] += take[i]
            inv_eff += 1.0 / efficiency[i]
            grid_demand += take[i] / efficiency[i]
    member_start = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        member_start[g + 1] = member_start[g] + member_count[g]
    members = np.empty(member_start[n_groups], dtype=np.int64)
    fill = member_start[:n_groups].copy()
    for i in range(n):
        if take[i] > 0.0:
            for p in range(start[i], start[i + 1]):
                g = groups[p]
                members[fill[g]] = i
                fill[g] += 1
    # A group whose members' maxima fit can never bind; usually that is every charger.
    count = np.zeros(n_groups, dtype=np.int64)
    any_count = False
    for g in range(n_groups):
        if demand[g] > left[g]:
            count[g] = member_count[g]
            any_count = any_count or member_count[g] > 0
    grid_binds = grid_demand > grid_kw
    if not grid_binds and not any_count:
        for i in range(n):
            if take[i] > 0.0:
                kw[i] = take[i]
        return kw

    base = np.zeros(n_groups)  # level at which left[g] was last brought up to date
    version = np.zeros(n_groups, dtype=np.int64)
    # Each freeze pushes at most one entry per membership.
    capacity = n_groups + len(groups)
    heap_key = np.empty(capacity)
    heap_version = np.zeros(capacity, dtype=np.int64)
    heap_group = np.empty(capacity, dtype=np.int64)
    size = 0
    for g in range(n_groups):
        if count[g]:
            heap_key[size] = left[g] / count[g]
            heap_group[size] = g
            size += 1
    for k in range(size // 2 - 1, -1, -1):  # heapq.heapify
        _sift_up(heap_key, heap_version, heap_group, size, k)
    heap_size = np.array([size])  # in an array, which freeze updates
    # Active rows by ascending max, ties in row order (a stable sort of the active rows).
    by_all = _order(take, np.arange(n))
    by_max = np.empty(n_active, dtype=np.int64)
    k = 0
    for i in by_all:
        if take[i] > 0.0:
            by_max[k] = i
            k += 1
    frozen = np.ones(n, dtype=np.bool_)
    for i in by_max:
        frozen[i] = False
    remaining = n_active
    # The grid's running state: kW left, the level it was last brought up to, and the
    # summed 1 / efficiency of the unfrozen rows (in an array, which freeze updates).
    grid = np.array([grid_kw, 0.0, inv_eff])

    def freeze(i: int, level: float) -> None:
        """Fix row ``i`` at ``level`` (or its max) and bring its groups and the grid up to ``level``."""
        kw[i] = take[i] if take[i] < level else level
        frozen[i] = True
        for p in range(start[i], start[i + 1]):
            g = groups[p]
            c = count[g]
            if c:
                left[g] -= (level - base[g]) * c
                base[g] = level
                c -= 1
                count[g] = c
                if c:
                    version[g] += 1
                    heap_size[0] = _heap_push(
                        heap_key, heap_version, heap_group, heap_size[0], level + left[g] / c, version[g], g
                    )
        if grid_binds:
            grid[0] -= (level - grid[1]) * grid[2]
            grid[1] = level
            grid[2] -= 1.0 / efficiency[i]

    level = 0.0
    pos = 0

    level = 0.0
    pos = 0

    while remaining:
        while frozen[by_max[pos]]:
            pos += 1
        target = take[by_max[pos]]
        # Drop entries of groups that changed since (a newer entry is queued) or are full.
        while heap_size[0] and (heap_version[0] != version[heap_group[0]] or not count[heap_group[0]]):
            heap_size[0] = _heap_pop(heap_key, heap_version, heap_group, heap_size[0])
        if heap_size[0] and heap_key[0] < target:
            target = heap_key[0]
        grid_level = grid[1] + grid[0] / grid[2] if grid_binds else np.inf
        if grid_level < target:
            target = grid_level
        if target > level:
            level = target
        slack = _REL_TOL * level
        if grid_level <= level + slack:
            for i in by_max:
                if not frozen[i]:
                    freeze(i, level)
                    remaining -= 1
            break
        while heap_size[0] and heap_key[0] <= level + slack:
            ver = heap_version[0]
            g = heap_group[0]
            heap_size[0] = _heap_pop(heap_key, heap_version, heap_group, heap_size[0])
            if ver == version[g] and count[g]:
                count[g] = 0  # full: freezing its members must not re-queue it
                for p in range(member_start[g], member_start[g + 1]):
                    i = members[p]
                    if not frozen[i]:
                        freeze(i, level)
                        remaining -= 1
        while pos < n_active and (frozen[by_max[pos]] or take[by_max[pos]] <= level + slack):
            i = by_max[pos]
            if not frozen[i]:
                freeze(i, level)
                remaining -= 1
            pos += 1
    return kw


def _compile() -> None:
    """Compile the kernels, or load them from numba's cache, for the usual argument types.

    Numba compiles a function on its first call with each combination of argument
    types, which takes seconds the first time on a machine and milliseconds after
    that. Doing it here, on import, keeps that out of the first allocation, where a
    simulation's event timing or a test's deadline would see it.
    """
    table = SessionTable(
        max_kw=np.array([2.0, 1.0]),
        efficiency=np.ones(2),
        energy_kwh=np.ones(2),
        departure_s=np.zeros(2),
        hours_to_target=np.zeros(2),
        current_kw=np.zeros(2),
        rank=np.arange(2),
        member_row=np.arange(2),
        member_group=np.zeros(2, dtype=np.int64),
    )
    for cap in (1.0, 5.0):  # a group that binds, then one that cannot
        site = SiteSnapshot(grid_kw=2.0, groups=(CapacityGroup("compile", cap),))
        greedy_fill(site, table, lambda: table.departure_s, wanted_kw(table), grid_limit(site))
        water_fill(site, table, wanted_kw(table), grid_limit(site))


_compile()
