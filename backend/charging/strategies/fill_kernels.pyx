# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Compiled loops of the allocation fills (:mod:`backend.charging.strategies._limits`) and the LLF key.

The fills run on every simulator event with tens to hundreds of rows, where numpy's
fixed cost of about a microsecond per call, or a Python loop over the rows, costs
more than the arithmetic. So the fast paths (grid prefix, water level), the group
demand check, ``wanted_kw``, the sequential fills and the laxity key are C loops
here, compiled ahead of time when the package is installed (no JIT: a process pays
neither a compiler's memory nor a warm-up). They take plain arrays and floats; the
Python functions of ``_limits`` only pick the procedure.

Results are bit-identical to the numpy and list code these loops replaced (kept as
references in ``tests/backend/charging/test_limits_compiled.py``): every sum adds in
the order that code did (numpy's pairwise summation, sequential prefix sums), and rows
sort by key with NaN last, ties by rank, then row (so rows with equal maxima enter the
water level in rank order, the one deliberate change, see ``_limits``).
``-ffp-contract=off`` keeps the C compiler from fusing ``a - b * c`` into one rounding
where the target has FMA.

Arrays are C-contiguous float64 and int64 columns, as those of a
:class:`~backend.charging.table.SessionTable` are (others raise ``ValueError`` when a
call converts them). Bounds checks are off, so every function checks the lengths and
indices it relies on and raises ``ValueError`` (columns of different lengths) or
``IndexError`` (memberships outside the table) instead of reading past an array.
Float division follows IEEE (``cdivision``): an efficiency of 0, which the table
contract excludes, gives inf rather than an exception.
"""

from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

import numpy as np

# Relative tolerance when deciding that a constraint saturated in a filling step.
# Freezing a constraint that is within this slack of its limit over-allocates by at
# most ``_REL_TOL * level`` per member, far below the 1e-9 the callers accept.
cdef double _REL_TOL = 1e-12

# Sums shorter than this run as numpy's unrolled block; longer ones are halved first.
cdef Py_ssize_t _PAIRWISE_BLOCK = 128
# Rows sorted by insertion before the merge passes of :func:`order`.
cdef Py_ssize_t _SORT_RUN = 16


cdef void* _alloc(Py_ssize_t count, size_t size) except NULL:
    """``count`` zeroed items of ``size`` bytes (at least one, so an empty table still gets a pointer)."""
    cdef void* block = calloc(count if count > 0 else 1, size)
    if block == NULL:
        raise MemoryError()
    return block


# --- sums in numpy's order ------------------------------------------------------------


cdef inline double _term(const double* values, const double* divisors, Py_ssize_t i) noexcept nogil:
    """``values[i]``, or ``values[i] / divisors[i]`` when divisors are given (the grid draw of a row)."""
    if divisors == NULL:
        return values[i]
    return values[i] / divisors[i]


cdef double _block_sum(const double* values, const double* divisors, Py_ssize_t n) noexcept nogil:
    """The first ``n <= _PAIRWISE_BLOCK`` terms, summed as numpy sums such a block.

    Fewer than 8 terms add up in turn; more go to 8 running sums, which are combined
    pairwise before the remainder is added.
    """
    cdef double total, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i, end
    if n < 8:
        total = 0.0
        for i in range(n):
            total += _term(values, divisors, i)
        return total
    r0 = _term(values, divisors, 0)
    r1 = _term(values, divisors, 1)
    r2 = _term(values, divisors, 2)
    r3 = _term(values, divisors, 3)
    r4 = _term(values, divisors, 4)
    r5 = _term(values, divisors, 5)
    r6 = _term(values, divisors, 6)
    r7 = _term(values, divisors, 7)
    i = 8
    end = n - n % 8
    while i < end:
        r0 += _term(values, divisors, i)
        r1 += _term(values, divisors, i + 1)
        r2 += _term(values, divisors, i + 2)
        r3 += _term(values, divisors, i + 3)
        r4 += _term(values, divisors, i + 4)
        r5 += _term(values, divisors, i + 5)
        r6 += _term(values, divisors, i + 6)
        r7 += _term(values, divisors, i + 7)
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += _term(values, divisors, i)
        i += 1
    return total


cdef double _pairwise(const double* values, const double* divisors, Py_ssize_t n) noexcept nogil:
    """The sum of the first ``n`` terms in the order of ``np.add.reduce`` (numpy's pairwise summation).

    Repeating numpy's order makes a comparison with a limit decide exactly as the
    numpy code did. Numpy halves a long array, keeping the first half a multiple of 8,
    until the parts fit a block, and adds the first part's sum to the second's.
    """
    cdef Py_ssize_t half
    if n <= _PAIRWISE_BLOCK:
        return _block_sum(values, divisors, n)
    half = n // 2
    half -= half % 8
    if divisors == NULL:
        return _pairwise(values, NULL, half) + _pairwise(values + half, NULL, n - half)
    return _pairwise(values, divisors, half) + _pairwise(values + half, divisors + half, n - half)


cpdef double pairwise_sum(const double[::1] values):
    """The sum of ``values``, to the bit as ``np.add.reduce(values)``."""
    return 0.0 + _pairwise(&values[0], NULL, values.shape[0])


cpdef bint grid_fits(const double[::1] take, const double[::1] efficiency, double grid_kw) except -1:
    """Whether every row at ``take`` fits the grid: ``np.add.reduce(take / efficiency) <= grid_kw``."""
    cdef Py_ssize_t n = take.shape[0]
    if grid_kw == INFINITY:
        return True
    if efficiency.shape[0] != n:
        raise ValueError("table columns differ in length")
    return 0.0 + _pairwise(&take[0], &efficiency[0], n) <= grid_kw


# --- memberships ------------------------------------------------------------------------


cdef int _check_memberships(
    Py_ssize_t n, const int64_t[::1] member_row, const int64_t[::1] member_group, Py_ssize_t n_groups
) except -1:
    """Raise unless every membership names a row below ``n`` and a group below ``n_groups``."""
    cdef Py_ssize_t k, m = member_row.shape[0]
    cdef int64_t i, g
    if member_group.shape[0] != m:
        raise ValueError("member_row and member_group differ in length")
    for k in range(m):
        i = member_row[k]
        g = member_group[k]
        if i < 0 or i >= n or g < 0 or g >= n_groups:
            raise IndexError("membership refers to a row or group that does not exist")
    return 0


cdef void _memberships(
    Py_ssize_t n, const int64_t[::1] member_row, const int64_t[::1] member_group, int64_t* start, int64_t* groups
) noexcept nogil:
    """The groups of each row, in membership order: row i's are ``groups[start[i]:start[i + 1]]``.

    ``start`` holds ``n + 1`` zeros on entry; the memberships must have been checked.
    """
    cdef Py_ssize_t k, i, m = member_row.shape[0]
    for k in range(m):
        start[member_row[k] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    # start[i] serves as row i's cursor, which ends at the next row's start; shift back.
    for k in range(m):
        i = member_row[k]
        groups[start[i]] = member_group[k]
        start[i] += 1
    i = n
    while i > 0:
        start[i] = start[i - 1]
        i -= 1
    start[0] = 0


cpdef bint demand_exceeds(
    const double[::1] take, const int64_t[::1] member_row, const int64_t[::1] member_group, const double[::1] caps
) except -1:
    """Whether some group's members' ``take`` sums to more than its cap (or the cap is NaN)."""
    cdef Py_ssize_t k, g, n_groups = caps.shape[0], fit = 0
    cdef double* demand
    _check_memberships(take.shape[0], member_row, member_group, n_groups)
    demand = <double*>_alloc(n_groups, sizeof(double))
    try:
        for k in range(member_row.shape[0]):
            demand[member_group[k]] += take[member_row[k]]  # in membership order, as np.bincount sums
        for g in range(n_groups):
            if demand[g] <= caps[g]:
                fit += 1
    finally:
        free(demand)
    return fit != n_groups


# --- row order ----------------------------------------------------------------------------


cdef inline bint _precedes(const double* key, const int64_t* rank, int64_t a, int64_t b) noexcept nogil:
    """Whether row ``a`` sorts before row ``b``: by key (NaN last), then rank, then row."""
    cdef double ka = key[a], kb = key[b]
    cdef bint a_nan
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


cdef void _sort_rows(
    const double* key, const int64_t* rank, Py_ssize_t n, int64_t* order, int64_t* scratch
) noexcept nogil:
    """Fill ``order`` with the rows by ascending key, ties by rank: the order of ``np.lexsort((rank, key))``.

    The comparison is a total order (the row index settles equal ranks, as lexsort's
    stable passes do), so any correct sort gives the same order; this one sorts short
    runs by insertion and merges them through ``scratch`` (``n`` entries).
    """
    cdef Py_ssize_t lo, mid, hi, i, j, k, width
    cdef int64_t row
    cdef int64_t* src
    cdef int64_t* dst
    cdef int64_t* swap
    for i in range(n):
        order[i] = i
    lo = 0
    while lo < n:
        hi = min(lo + _SORT_RUN, n)
        for i in range(lo + 1, hi):
            row = order[i]
            j = i - 1
            while j >= lo and _precedes(key, rank, row, order[j]):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = row
        lo += _SORT_RUN
    if n <= _SORT_RUN:
        return
    src = order
    dst = scratch
    width = _SORT_RUN
    while width < n:
        lo = 0
        while lo < n:
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
            lo += 2 * width
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != order:
        memcpy(order, src, n * sizeof(int64_t))


cdef int64_t* _ordered(const double[::1] key, const int64_t[::1] rank) except NULL:
    """The rows in :func:`order`'s order, in a new block the caller frees."""
    cdef Py_ssize_t n = key.shape[0]
    cdef int64_t* rows
    cdef int64_t* scratch
    if rank.shape[0] != n:
        raise ValueError("key and rank differ in length")
    rows = <int64_t*>_alloc(n, sizeof(int64_t))
    scratch = <int64_t*>calloc(n if n > 0 else 1, sizeof(int64_t))
    if scratch == NULL:
        free(rows)
        raise MemoryError()
    _sort_rows(&key[0], &rank[0], n, rows, scratch)
    free(scratch)
    return rows


cdef int64_t* _rows_in_order(
    const double[::1] key, const int64_t[::1] rank, int64_t* kept, int64_t* scratch
) except NULL:
    """The rows in :func:`order`'s order: ``kept`` (the last call's order) re-sorted in place
    with ``scratch`` (see :func:`_resort`), or, without it, a new block the caller frees."""
    cdef Py_ssize_t n = key.shape[0]
    if kept == NULL:
        return _ordered(key, rank)
    if n:
        _resort(&key[0], &rank[0], n, kept, scratch)
    return kept


cdef void _resort(
    const double* key, const int64_t* rank, Py_ssize_t n, int64_t* order, int64_t* scratch
) noexcept nogil:
    """Sort ``order``, a permutation of the rows (the order of a previous call), in place into
    :func:`order`'s order.

    Between two allocations most rows keep their place, so an insertion sort from the last
    order is about linear; past a budget of moves (many rows moved) it runs the full sort.
    The order is a total one, so the result is the same either way.
    """
    cdef Py_ssize_t i, j, moves = 0, budget = 8 * n + 64
    cdef int64_t row
    for i in range(1, n):
        row = order[i]
        j = i - 1
        while j >= 0 and _precedes(key, rank, row, order[j]):
            order[j + 1] = order[j]
            j -= 1
            moves += 1
        order[j + 1] = row
        if moves > budget:
            _sort_rows(key, rank, n, order, scratch)
            return


cdef int _check_permutation(const int64_t[::1] order, Py_ssize_t n, int64_t[::1] scratch) except -1:
    """Raise unless ``order`` holds each row 0..n-1 once (``scratch``: n entries, overwritten)."""
    cdef Py_ssize_t k
    cdef int64_t i
    if order.shape[0] != n or scratch.shape[0] < n:
        raise ValueError("order and scratch must have one entry per row")
    for k in range(n):
        scratch[k] = 0
    for k in range(n):
        i = order[k]
        if i < 0 or i >= n or scratch[i]:
            raise ValueError("order must be a permutation of the rows")
        scratch[i] = 1
    return 0


cpdef resort(int64_t[::1] last, const double[::1] key, const int64_t[::1] rank):
    """:func:`order` computed from ``last`` (a permutation of the rows, sorted in place): what the
    compiled allocations do with the order they keep from one call to the next."""
    cdef Py_ssize_t n = key.shape[0]
    if rank.shape[0] != n:
        raise ValueError("key and rank differ in length")
    scratch = np.empty(max(n, 1), dtype=np.int64)
    cdef int64_t[::1] buf = scratch
    _check_permutation(last, n, buf)
    if n:
        _resort(&key[0], &rank[0], n, &last[0], &buf[0])
    return np.asarray(last)


cpdef order(const double[::1] key, const int64_t[::1] rank):
    """Rows by ascending key (NaN last), ties by rank: ``np.lexsort((rank, key))`` as an int64 array."""
    cdef Py_ssize_t n = key.shape[0]
    cdef int64_t* rows = _ordered(key, rank)
    result = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = result
    if n:
        memcpy(&out[0], rows, n * sizeof(int64_t))
    free(rows)
    return result


# --- fast paths: only the grid couples the rows ---------------------------------------------


cpdef wanted(const double[::1] max_kw, const double[::1] energy_kwh):
    """Output kW per row without shared limits, as a new array: ``max_kw``, or 0 for rows without energy to take."""
    result = np.empty(max_kw.shape[0])
    _wanted_into(max_kw, energy_kwh, result)
    return result


cdef int _wanted_into(const double[::1] max_kw, const double[::1] energy_kwh, double[::1] out) except -1:
    """:func:`wanted` into ``out``."""
    cdef Py_ssize_t i, n = max_kw.shape[0]
    if energy_kwh.shape[0] != n or out.shape[0] != n:
        raise ValueError("table columns differ in length")
    for i in range(n):
        # A product like numpy's ``max_kw * (energy_kwh > 0)``, which keeps NaN and -0.0.
        out[i] = max_kw[i] * (1.0 if energy_kwh[i] > 0.0 else 0.0)
    return 0


cpdef greedy_prefix(
    object take, const double[::1] efficiency, const double[::1] key, const int64_t[::1] rank, double grid_kw
):
    """Greedy fill when only the grid binds; ``take`` (a float64 array) becomes the result and is returned.

    Rows take their all in priority order while the grid lasts; the first row the grid
    stops gets what is left and the later ones nothing. The grid left is carried as a
    running difference, in priority order, like ``np.subtract.accumulate``.
    """
    return _greedy_prefix(take, take, efficiency, key, rank, grid_kw)


cdef object _greedy_prefix(
    object take, double[::1] kw, const double[::1] efficiency, const double[::1] key, const int64_t[::1] rank,
    double grid_kw, int64_t* kept=NULL, int64_t* scratch=NULL,
):
    """:func:`greedy_prefix` with ``take`` also given as a view ``kw`` (callers that hold one convert it once);
    ``kept``: the order of the last call, re-sorted in place (see :func:`resort`), with ``scratch``."""
    cdef Py_ssize_t k, m, n = kw.shape[0]
    cdef int64_t i
    cdef double left = grid_kw, room
    cdef int64_t* rows
    if efficiency.shape[0] != n or key.shape[0] != n or rank.shape[0] != n:
        raise ValueError("table columns differ in length")
    rows = _rows_in_order(key, rank, kept, scratch)
    for k in range(n):
        i = rows[k]
        room = left * efficiency[i]
        if room <= kw[i]:
            kw[i] = 0.0 if room < 0.0 else room
            for m in range(k + 1, n):
                kw[rows[m]] = 0.0
            break
        left = left - kw[i] / efficiency[i]
    if kept == NULL:
        free(rows)
    return take


cpdef water_level(object take, const double[::1] efficiency, const int64_t[::1] rank, double grid_kw):
    """Equal share when only the grid binds: ``min(take, L)`` for the one grid level ``L``.

    Returns ``take`` itself when the grid fits every row, else a new array.
    """
    return _water_level(take, take, efficiency, rank, grid_kw)


cdef object _water_level(
    object take, const double[::1] maxima, const double[::1] efficiency, const int64_t[::1] rank, double grid_kw,
    int64_t* kept=NULL, int64_t* scratch=NULL, double[::1] into=None,
):
    """:func:`water_level` with ``take`` also given as a view ``maxima`` (converted once by callers that hold one).

    With ``kept`` (the order of the last call, re-sorted in place, see :func:`resort`, with
    ``scratch``) the result is written into ``into``, a writable view of ``take``'s buffer,
    and ``take`` is returned.
    """
    cdef Py_ssize_t k, n = maxima.shape[0]
    cdef int64_t i
    cdef int64_t* by_max = NULL
    cdef double* upto_kw = NULL
    cdef double* upto_weight = NULL
    cdef double kw_sum = 0.0, weight_sum = 0.0, weight, kw, total_weight, level, candidate, value
    cdef bint found
    cdef double[::1] out
    if grid_fits(maxima, efficiency, grid_kw):
        return take
    if kept != NULL and (into is None or into.shape[0] != n or &into[0] != &maxima[0]):
        raise ValueError("an in-place water level needs a writable view of take")
    if grid_kw <= 0.0:
        if kept != NULL:
            for k in range(n):
                into[k] = 0.0
            return take
        return np.zeros(n)
    if rank.shape[0] != n:
        raise ValueError("table columns differ in length")
    by_max = _rows_in_order(maxima, rank, kept, scratch)
    try:
        if n == 0:
            return take  # only a NaN grid gets here: there is nothing to share
        upto_kw = <double*>_alloc(n, sizeof(double))
        upto_weight = <double*>_alloc(n, sizeof(double))
        # Grid kW of the rows up to each position at their max, and their summed weights.
        # Idle rows sort first: the level found at their positions is above their maximum
        # of 0, and beyond them they cancel out of the differences.
        for k in range(n):
            i = by_max[k]
            weight = 1.0 / efficiency[i]
            kw = maxima[i] * weight
            kw_sum = kw if k == 0 else kw_sum + kw
            weight_sum = weight if k == 0 else weight_sum + weight
            upto_kw[k] = kw_sum
            upto_weight[k] = weight_sum
        total_weight = upto_weight[n - 1]
        level = grid_kw / total_weight  # all rows rising together
        if level > maxima[by_max[0]]:
            if n == 1:
                return take  # the grid fits the one row after all (a rounding tie)
            # The first position where the level, if the grid runs out while the rows above
            # it rise, stays within the next maximum.
            found = False
            for k in range(n - 1):
                candidate = (grid_kw - upto_kw[k]) / (total_weight - upto_weight[k])
                if candidate <= maxima[by_max[k + 1]]:
                    level = candidate
                    found = True
                    break
            if not found:
                return take
    finally:
        if kept == NULL:
            free(by_max)
        free(upto_kw)
        free(upto_weight)
    if kept != NULL:
        result = take
        out = into
    else:
        result = np.empty(n)
        out = result
    for k in range(n):
        value = maxima[k]
        # np.minimum: NaN from either side wins
        out[k] = value if value < level or value != value else level
    return result


# --- sequential fills: a group can bind ---------------------------------------------------------


cpdef greedy_serve(
    const double[::1] take,
    const double[::1] efficiency,
    const double[::1] key,
    const int64_t[::1] rank,
    const int64_t[::1] member_row,
    const int64_t[::1] member_group,
    const double[::1] caps,
    double grid_kw,
):
    """Greedy fill row by row in priority order, under groups and grid, as a new array.

    Each row takes the least of its ``take``, its groups' remaining capacity and the
    grid's remaining room, and leaves that much less for the rows after it.
    """
    cdef Py_ssize_t k, p, n = take.shape[0], n_groups = caps.shape[0]
    cdef int64_t i, g
    cdef double want, eff, grid_left = grid_kw
    cdef bint grid_binds
    cdef int64_t* rows = NULL
    cdef int64_t* start = NULL
    cdef int64_t* groups = NULL
    cdef double* left = NULL
    cdef double[::1] kw
    if efficiency.shape[0] != n or key.shape[0] != n:
        raise ValueError("table columns differ in length")
    rows = _ordered(key, rank)
    try:
        _check_memberships(n, member_row, member_group, n_groups)
        start = <int64_t*>_alloc(n + 1, sizeof(int64_t))
        groups = <int64_t*>_alloc(member_row.shape[0], sizeof(int64_t))
        left = <double*>_alloc(n_groups, sizeof(double))
        _memberships(n, member_row, member_group, start, groups)
        for g in range(n_groups):
            left[g] = caps[g]
        result = np.zeros(n)
        kw = result
        for k in range(n):
            i = rows[k]
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
    finally:
        free(rows)
        free(start)
        free(groups)
        free(left)
    return result


# The progressive filling's state. Group exhaustion levels sit in a binary heap of
# (level, version, group) entries in three arrays, run with the algorithm of Python's
# heapq, so that entries leave it in the order of the list version it replaced.
cdef struct _Water:
    const double* take
    const double* efficiency
    double* kw
    unsigned char* frozen
    const int64_t* start  # the groups of row i: groups[start[i]:start[i + 1]]
    const int64_t* groups
    int64_t* count  # unfrozen members of a group that can still bind, else 0
    double* left  # a group's kW left at level base[g]
    double* base
    int64_t* version  # bumped when a group's exhaustion level changes
    double* heap_key
    int64_t* heap_version
    int64_t* heap_group
    Py_ssize_t heap_size
    bint grid_binds
    double grid_left  # the grid's kW left at level grid_base
    double grid_base
    double inv_eff  # summed 1 / efficiency of the unfrozen rows


cdef inline bint _entry_less(
    double key, int64_t version, int64_t group, double other_key, int64_t other_version, int64_t other_group
) noexcept nogil:
    """``(key, version, group) < (other_key, ...)`` as Python compares tuples (NaN keys included)."""
    if key != other_key:
        return key < other_key
    if version != other_version:
        return version < other_version
    return group < other_group


cdef void _sift_down(_Water* w, Py_ssize_t start, Py_ssize_t pos) noexcept nogil:
    """``heapq._siftdown``: move the entry at ``pos`` up towards ``start`` while it is less than its parent."""
    cdef double key = w.heap_key[pos]
    cdef int64_t version = w.heap_version[pos], group = w.heap_group[pos]
    cdef Py_ssize_t parent
    while pos > start:
        parent = (pos - 1) >> 1
        if not _entry_less(key, version, group, w.heap_key[parent], w.heap_version[parent], w.heap_group[parent]):
            break
        w.heap_key[pos] = w.heap_key[parent]
        w.heap_version[pos] = w.heap_version[parent]
        w.heap_group[pos] = w.heap_group[parent]
        pos = parent
    w.heap_key[pos] = key
    w.heap_version[pos] = version
    w.heap_group[pos] = group


cdef void _sift_up(_Water* w, Py_ssize_t pos) noexcept nogil:
    """``heapq._siftup``: move the entry at ``pos`` down to a leaf along smaller children, then back up."""
    cdef Py_ssize_t start = pos, size = w.heap_size, child = 2 * pos + 1, right
    cdef double key = w.heap_key[pos]
    cdef int64_t version = w.heap_version[pos], group = w.heap_group[pos]
    while child < size:
        right = child + 1
        if right < size and not _entry_less(
            w.heap_key[child], w.heap_version[child], w.heap_group[child],
            w.heap_key[right], w.heap_version[right], w.heap_group[right],
        ):
            child = right
        w.heap_key[pos] = w.heap_key[child]
        w.heap_version[pos] = w.heap_version[child]
        w.heap_group[pos] = w.heap_group[child]
        pos = child
        child = 2 * pos + 1
    w.heap_key[pos] = key
    w.heap_version[pos] = version
    w.heap_group[pos] = group
    _sift_down(w, start, pos)


cdef inline void _heap_push(_Water* w, double key, int64_t version, int64_t group) noexcept nogil:
    """``heapq.heappush``."""
    cdef Py_ssize_t size = w.heap_size
    w.heap_key[size] = key
    w.heap_version[size] = version
    w.heap_group[size] = group
    _sift_down(w, 0, size)
    w.heap_size = size + 1


cdef inline void _heap_pop(_Water* w) noexcept nogil:
    """``heapq.heappop`` of the entry at index 0, which the caller has read."""
    cdef Py_ssize_t size = w.heap_size - 1
    w.heap_size = size
    if size:
        w.heap_key[0] = w.heap_key[size]
        w.heap_version[0] = w.heap_version[size]
        w.heap_group[0] = w.heap_group[size]
        _sift_up(w, 0)


cdef void _freeze(_Water* w, int64_t i, double level) noexcept nogil:
    """Fix row ``i`` at ``level`` (or its max) and bring its groups and the grid up to ``level``."""
    cdef Py_ssize_t p
    cdef int64_t g, c
    w.kw[i] = w.take[i] if w.take[i] < level else level
    w.frozen[i] = True
    for p in range(w.start[i], w.start[i + 1]):
        g = w.groups[p]
        c = w.count[g]
        if c:
            w.left[g] -= (level - w.base[g]) * c
            w.base[g] = level
            c -= 1
            w.count[g] = c
            if c:
                w.version[g] += 1
                _heap_push(w, level + w.left[g] / c, w.version[g], g)
    if w.grid_binds:
        w.grid_left -= (level - w.grid_base) * w.inv_eff
        w.grid_base = level
        w.inv_eff -= 1.0 / w.efficiency[i]


cpdef water_serve(
    const double[::1] take,
    const double[::1] efficiency,
    const int64_t[::1] member_row,
    const int64_t[::1] member_group,
    const double[::1] caps,
    double grid_kw,
):
    """Progressive filling row by row (see ``_limits.water_fill``), for when a group can bind; a new array.

    Group exhaustion levels only change when a member freezes, so they sit in a heap
    of ``(level, version, group)`` and are updated lazily: a call costs
    O((rows + memberships) log groups) rather than a pass over every group per event.
    """
    cdef Py_ssize_t n = take.shape[0], n_groups = caps.shape[0], m = member_row.shape[0]
    cdef Py_ssize_t k, p, pos, n_active = 0, remaining, capacity
    cdef int64_t i, g, ver
    cdef double grid_demand = 0.0, level, target, grid_level, slack
    cdef bint any_count = False
    cdef _Water w
    cdef double[::1] kw
    # every block, so that the finally clause can free them whatever was allocated
    cdef int64_t* start = NULL
    cdef int64_t* groups = NULL
    cdef double* left = NULL
    cdef double* demand = NULL
    cdef double* base = NULL
    cdef int64_t* member_count = NULL
    cdef int64_t* member_start = NULL
    cdef int64_t* members = NULL
    cdef int64_t* fill = NULL
    cdef int64_t* count = NULL
    cdef int64_t* version = NULL
    cdef double* heap_key = NULL
    cdef int64_t* heap_version = NULL
    cdef int64_t* heap_group = NULL
    cdef int64_t* row_rank = NULL
    cdef int64_t* by_all = NULL
    cdef int64_t* by_max = NULL
    cdef unsigned char* frozen = NULL
    if efficiency.shape[0] != n:
        raise ValueError("table columns differ in length")
    _check_memberships(n, member_row, member_group, n_groups)
    result = np.zeros(n)
    kw = result
    for i in range(n):
        if take[i] > 0.0:
            n_active += 1
    if not n_active:
        return result
    try:
        start = <int64_t*>_alloc(n + 1, sizeof(int64_t))
        groups = <int64_t*>_alloc(m, sizeof(int64_t))
        _memberships(n, member_row, member_group, start, groups)
        left = <double*>_alloc(n_groups, sizeof(double))
        for g in range(n_groups):
            left[g] = caps[g] if caps[g] > 0.0 else 0.0
        # Active members of each group in row order: members[member_start[g]:member_start[g + 1]].
        member_count = <int64_t*>_alloc(n_groups, sizeof(int64_t))
        demand = <double*>_alloc(n_groups, sizeof(double))
        w.inv_eff = 0.0
        for i in range(n):
            if take[i] > 0.0:
                for p in range(start[i], start[i + 1]):
                    g = groups[p]
                    member_count[g] += 1
                    demand[g] += take[i]
                w.inv_eff += 1.0 / efficiency[i]
                grid_demand += take[i] / efficiency[i]
        member_start = <int64_t*>_alloc(n_groups + 1, sizeof(int64_t))
        for g in range(n_groups):
            member_start[g + 1] = member_start[g] + member_count[g]
        members = <int64_t*>_alloc(member_start[n_groups], sizeof(int64_t))
        fill = <int64_t*>_alloc(n_groups, sizeof(int64_t))
        for g in range(n_groups):
            fill[g] = member_start[g]
        for i in range(n):
            if take[i] > 0.0:
                for p in range(start[i], start[i + 1]):
                    g = groups[p]
                    members[fill[g]] = i
                    fill[g] += 1
        # A group whose members' maxima fit can never bind; usually that is every charger.
        count = <int64_t*>_alloc(n_groups, sizeof(int64_t))
        for g in range(n_groups):
            if demand[g] > left[g]:
                count[g] = member_count[g]
                any_count = any_count or member_count[g] > 0
        w.grid_binds = grid_demand > grid_kw
        if not w.grid_binds and not any_count:
            for i in range(n):
                if take[i] > 0.0:
                    kw[i] = take[i]
            return result

        base = <double*>_alloc(n_groups, sizeof(double))  # level at which left[g] was last brought up to date
        version = <int64_t*>_alloc(n_groups, sizeof(int64_t))
        # Each freeze pushes at most one entry per membership.
        capacity = n_groups + m
        heap_key = <double*>_alloc(capacity, sizeof(double))
        heap_version = <int64_t*>_alloc(capacity, sizeof(int64_t))
        heap_group = <int64_t*>_alloc(capacity, sizeof(int64_t))
        w.heap_size = 0
        for g in range(n_groups):
            if count[g]:
                heap_key[w.heap_size] = left[g] / count[g]
                heap_group[w.heap_size] = g
                w.heap_size += 1
        # Active rows by ascending max, ties in row order (a stable sort of the active rows).
        row_rank = <int64_t*>_alloc(n, sizeof(int64_t))
        for i in range(n):
            row_rank[i] = i
        by_all = <int64_t*>_alloc(n, sizeof(int64_t))
        by_max = <int64_t*>_alloc(n, sizeof(int64_t))  # scratch of the sort, then the active rows
        _sort_rows(&take[0], row_rank, n, by_all, by_max)
        frozen = <unsigned char*>_alloc(n, sizeof(unsigned char))
        k = 0
        for i in range(n):
            frozen[i] = True
        for p in range(n):
            i = by_all[p]
            if take[i] > 0.0:
                by_max[k] = i
                frozen[i] = False
                k += 1

        w.take = &take[0]
        w.efficiency = &efficiency[0]
        w.kw = &kw[0]
        w.frozen = frozen
        w.start = start
        w.groups = groups
        w.count = count
        w.left = left
        w.base = base
        w.version = version
        w.heap_key = heap_key
        w.heap_version = heap_version
        w.heap_group = heap_group
        w.grid_left = grid_kw
        w.grid_base = 0.0
        k = w.heap_size // 2 - 1
        while k >= 0:  # heapq.heapify
            _sift_up(&w, k)
            k -= 1

        remaining = n_active
        level = 0.0
        pos = 0
        while remaining:
            while frozen[by_max[pos]]:
                pos += 1
            target = take[by_max[pos]]
            # Drop entries of groups that changed since (a newer entry is queued) or are full.
            while w.heap_size and (heap_version[0] != version[heap_group[0]] or not count[heap_group[0]]):
                _heap_pop(&w)
            if w.heap_size and heap_key[0] < target:
                target = heap_key[0]
            grid_level = w.grid_base + w.grid_left / w.inv_eff if w.grid_binds else INFINITY
            if grid_level < target:
                target = grid_level
            if target > level:
                level = target
            slack = _REL_TOL * level
            if grid_level <= level + slack:
                for p in range(n_active):
                    i = by_max[p]
                    if not frozen[i]:
                        _freeze(&w, i, level)
                        remaining -= 1
                break
            while w.heap_size and heap_key[0] <= level + slack:
                ver = heap_version[0]
                g = heap_group[0]
                _heap_pop(&w)
                if ver == version[g] and count[g]:
                    count[g] = 0  # full: freezing its members must not re-queue it
                    for p in range(member_start[g], member_start[g + 1]):
                        i = members[p]
                        if not frozen[i]:
                            _freeze(&w, i, level)
                            remaining -= 1
            while pos < n_active and (frozen[by_max[pos]] or take[by_max[pos]] <= level + slack):
                i = by_max[pos]
                if not frozen[i]:
                    _freeze(&w, i, level)
                    remaining -= 1
                pos += 1
    finally:
        free(start)
        free(groups)
        free(left)
        free(demand)
        free(base)
        free(member_count)
        free(member_start)
        free(members)
        free(fill)
        free(count)
        free(version)
        free(heap_key)
        free(heap_version)
        free(heap_group)
        free(row_rank)
        free(by_all)
        free(by_max)
        free(frozen)
    return result


# --- the LLF key ---------------------------------------------------------------------------


cpdef laxity(
    const double[::1] departure_s, const double[::1] hours_to_target, const double[::1] current_kw, double now,
    double margin_h,
):
    """Laxity hours per row (``least_laxity_first.laxity_key``), as a new array.

    The operations and their order are those of the numpy expression
    ``fmin((departure_s - now) / 3600 - hours_to_target, inf) - (current_kw > 0) * margin_h``,
    so the keys, and with them the order of the rows, are the same to the bit.
    """
    cdef Py_ssize_t n = departure_s.shape[0]
    result = np.empty(n)
    _laxity_into(departure_s, hours_to_target, current_kw, now, margin_h, result)
    return result


cdef int _laxity_into(
    const double[::1] departure_s, const double[::1] hours_to_target, const double[::1] current_kw, double now,
    double margin_h, double[::1] out,
) except -1:
    """:func:`laxity` into ``out``."""
    cdef Py_ssize_t i, n = departure_s.shape[0]
    cdef double value
    if hours_to_target.shape[0] != n or current_kw.shape[0] != n or out.shape[0] != n:
        raise ValueError("table columns differ in length")
    for i in range(n):
        value = (departure_s[i] - now) / 3600.0 - hours_to_target[i]
        if value != value:
            value = INFINITY  # an unknown (NaN) departure never makes a row urgent
        if margin_h != 0.0:
            value -= (1.0 if current_kw[i] > 0.0 else 0.0) * margin_h
        out[i] = value
    return 0


# --- the built-in strategies in one call ------------------------------------------------------


cdef int _departure_key_into(const double[::1] departure_s, double[::1] out) except -1:
    """``earliest_departure_first.departure_key`` (``np.fmin(departure_s, inf)``) into ``out``."""
    cdef Py_ssize_t i, n = departure_s.shape[0]
    cdef double value
    if out.shape[0] != n:
        raise ValueError("table columns differ in length")
    for i in range(n):
        value = departure_s[i]
        out[i] = INFINITY if value != value else value
    return 0


cpdef object builtin(
    int strategy,
    const double[::1] max_kw,
    const double[::1] energy_kwh,
    const double[::1] efficiency,
    const double[::1] departure_s,
    const double[::1] hours_to_target,
    const double[::1] current_kw,
    const int64_t[::1] rank,
    const int64_t[::1] member_row,
    const int64_t[::1] member_group,
    const double[::1] caps,
    double grid_kw,
    double now,
    double margin_h,
):
    """A built-in strategy's output kW per row, as its table function computes it.

    ``strategy`` is one of UNCONTROLLED, EQUAL_SHARE, EARLIEST_DEPARTURE_FIRST and
    LEAST_LAXITY_FIRST; the other arguments are the columns of the
    :class:`~backend.charging.table.SessionTable`, the groups' caps and the site's
    grid kW (``SiteSnapshot.grid_kw``) and preemption margin. The same steps as
    ``uncontrolled``, ``equal_share``, ``earliest_departure_first`` and
    ``least_laxity_first`` with ``_limits.greedy_fill``/``water_fill`` take, in one
    call, as a new array (or ``wanted``'s, where the fill works in place). Compiled
    callers (the simulator's fast-forward loop) call :func:`builtin_view` with their own
    buffers. The tests hold the results equal to the functions'.
    """
    cdef Py_ssize_t n = max_kw.shape[0]
    take = np.empty(n)
    return np.asarray(builtin_view(
        strategy, max_kw, energy_kwh, efficiency, departure_s, hours_to_target, current_kw, rank, member_row,
        member_group, caps, grid_kw, now, margin_h, take, take, np.empty(n), np.arange(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
    ))


cdef double[::1] builtin_view(
    int strategy,
    const double[::1] max_kw,
    const double[::1] energy_kwh,
    const double[::1] efficiency,
    const double[::1] departure_s,
    const double[::1] hours_to_target,
    const double[::1] current_kw,
    const int64_t[::1] rank,
    const int64_t[::1] member_row,
    const int64_t[::1] member_group,
    const double[::1] caps,
    double grid_kw,
    double now,
    double margin_h,
    object take,
    double[::1] kw,
    double[::1] key,
    int64_t[::1] kept,
    int64_t[::1] scratch,
) except *:
    """:func:`builtin` with the caller's buffers: ``take`` (a float64 array) and ``kw`` (its
    view) receive the wanted kW, ``key`` the order key, ``kept`` keeps the rows' order from
    one call to the next (a permutation of the rows, first any) and ``scratch`` is the
    sort's; returns a view of the result, which is ``kw`` itself where the fill works in
    place, so a caller that keeps its buffers allocates nothing per call."""
    cdef bint groups_bind
    cdef double grid
    cdef Py_ssize_t n = max_kw.shape[0]
    if kept.shape[0] != n or scratch.shape[0] < n:
        raise ValueError("order buffers must have one entry per row")
    _wanted_into(max_kw, energy_kwh, kw)
    grid = grid_kw if grid_kw > 0.0 else 0.0  # _limits.grid_limit: a negative or NaN limit means none
    groups_bind = caps.shape[0] > 0 and demand_exceeds(kw, member_row, member_group, caps)
    if strategy == UNCONTROLLED or strategy == EQUAL_SHARE:
        if strategy == UNCONTROLLED:
            grid = INFINITY  # the grid limit is ignored on purpose
        if groups_bind:
            return water_serve(kw, efficiency, member_row, member_group, caps, grid)
        if n:
            _water_level(take, kw, efficiency, rank, grid, &kept[0], &scratch[0], kw)
        return kw
    if strategy != EARLIEST_DEPARTURE_FIRST and strategy != LEAST_LAXITY_FIRST:
        raise ValueError(f"unknown built-in strategy {strategy}")
    if not groups_bind and grid_fits(kw, efficiency, grid):
        return kw
    if strategy == EARLIEST_DEPARTURE_FIRST:
        _departure_key_into(departure_s, key)
    else:
        _laxity_into(departure_s, hours_to_target, current_kw, now, margin_h, key)
    if groups_bind:
        return greedy_serve(kw, efficiency, key, rank, member_row, member_group, caps, grid)
    if n:
        _greedy_prefix(take, kw, efficiency, key, rank, grid, &kept[0], &scratch[0])
    return kw

