# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Compiled per-row arithmetic of the session rows (:mod:`sim.slots`).

An engine event touches every connector row with a few floating-point operations
each: integrate the segment that just ended, build the allocator's inputs, decide
which rows the new limits change, re-plan those and find the connector statuses that
move. Written as numpy expressions that is 20-40 array calls per event, and numpy's
~1 µs per call, not the arithmetic, set the cost of a simulated year. Here each step
is one C loop over the rows (compiled when the package is installed), so an event
costs a few microseconds.

The float state of all rows is one 2-D array ``f`` (one row of ``f`` per quantity,
indexed by the constants declared in ``slot_kernels.pxd``, one column per connector),
so a call passes one array instead of twenty. The formulas are those of
:mod:`models.battery`: within one charge-curve piece ``curve(s) = a + b*s``, SoC moves
linearly while the limit binds (mode 1) and exponentially while the curve binds
(mode 2); mode 0 draws nothing. Boolean arrays are numpy ``bool`` arrays.
"""

from libc.math cimport INFINITY, fabs, isfinite, isnan, log1p
from libc.stdint cimport int64_t

EPS_SOC = 1e-9
cdef double _EPS_SOC = 1e-9
cdef double _FLAT = 1e-12  # |b| below this: the piece is flat (as in models.battery)
FLAT = _FLAT
cdef double _P_EPS = 1e-12  # power at or below this: the curve is exhausted (hours = inf)
cdef double _CURVE_EPS = 1e-12  # models.battery._EPS


cdef double curve_hours(double a, double b, double s0, double s1, double capacity) noexcept nogil:
    """Hours from s0 to s1 when power equals the line a + b*s: :func:`models.battery._curve_hours`."""
    cdef double p0 = a + b * s0
    cdef double p1 = a + b * s1
    if p0 <= _CURVE_EPS or p1 <= _CURVE_EPS:
        return INFINITY if s1 > s0 else 0.0
    if fabs(b) < 1e-12:
        return (s1 - s0) * capacity / p0
    return capacity / b * log1p(b * (s1 - s0) / p0)


cpdef tuple integrate(double[:, ::1] f, const signed char[::1] mode, const unsigned char[::1] sloped, double hours):
    """Advance every row by ``hours``; return (kWh delivered, kWh drawn from the grid).

    Rows drawing nothing (mode 0, idle rows among them) are left as they are. A mode-2
    row on a flat piece draws the constant ``power`` = ``a``, so the linear formula is
    exact for it.
    """
    cdef double delivered = 0.0, drawn = 0.0, soc, new, energy
    cdef Py_ssize_t j
    cdef signed char m
    for j in range(f.shape[1]):
        m = mode[j]
        if m == 0:
            continue
        soc = f[SOC, j]
        new = soc_after(f, m, sloped[j], j, hours)
        energy = (new - soc) * f[CAP, j]
        f[SOC, j] = new
        f[KWH, j] += energy
        f[ACC, j] += energy
        delivered += energy
        drawn += energy * f[INV_EFF, j]
    return delivered, drawn


cdef inline double hours_to_target(double[:, ::1] f, const unsigned char[::1] sloped, Py_ssize_t j) noexcept nogil:
    """Hours row j needs to reach its target at full curve power (taper included).

    From the curve hours of SoC 0 to the target, less those to the piece start and
    those already done within the piece. An exhausted curve gives a huge figure.
    """
    cdef double a = f[A, j], b = f[B, j], lo = f[LO, j]
    cdef double p0 = a + b * lo
    cdef double ratio, done
    if not p0 > _P_EPS:
        p0 = _P_EPS
    if sloped[j]:
        ratio = b * (f[SOC, j] - lo) / p0
        if ratio < -1.0 + 1e-15:
            ratio = -1.0 + 1e-15
        done = log1p(ratio) / f[SAFE_B, j]
    else:
        done = (f[SOC, j] - lo) / p0
    return (f[TARGET_H, j] - f[UNIT_H, j] - done) * f[CAP, j]


cpdef tuple allocation_inputs(
    double[:, ::1] f, const signed char[::1] mode, const unsigned char[::1] sloped,
    const unsigned char[::1] occupied, bint with_hours, unsigned char[::1] active, double[::1] max_kw,
    double[::1] energy, double[::1] hours, int64_t[::1] full_rows,
):
    """Fill the allocator's per-row inputs; return (active rows, rows to stop).

    A row is active when a session on it still needs energy: ``max_kw`` is what its
    curve takes at its SoC, ``energy`` the kWh to its target and ``hours`` the hours
    to it at full power (0 unless ``with_hours``). Other rows get zeros. Rows that
    reached their target by integration but still draw power are listed in
    ``full_rows`` for the engine to stop.
    """
    cdef Py_ssize_t j, n_active = 0, n_full = 0
    cdef double soc, target, p
    for j in range(f.shape[1]):
        if occupied[j]:
            soc = f[SOC, j]
            target = f[TARGET, j]
            if soc < target - _EPS_SOC:
                n_active += 1
                active[j] = True
                p = f[A, j] + f[B, j] * soc
                max_kw[j] = p if p > 0.0 else 0.0
                energy[j] = (target - soc) * f[CAP, j]
                hours[j] = hours_to_target(f, sloped, j) if with_hours else 0.0
                continue
            if mode[j] != 0:
                full_rows[n_full] = j
                n_full += 1
        active[j] = False
        max_kw[j] = 0.0
        energy[j] = 0.0
        hours[j] = 0.0
    return n_active, n_full


cpdef Py_ssize_t plan(
    double[:, ::1] f, signed char[::1] mode, const signed char[::1] status, const int64_t[::1] rows,
    const double[::1] kw, double now, double tolerance, int64_t[::1] moved, unsigned char[::1] moved_zero,
    unsigned char[::1] moved_full,
):
    """Give ``rows`` the limits ``kw`` (``kw[i]`` for ``rows[i]``): mode, power and next breakpoint.

    The next breakpoint of a row is the first of: its target (or the SoC a delayed
    departure waits for), the end of its curve piece, the SoC where the curve crosses
    its limit, and — so that power freed or wanted along the curve is re-shared — the
    SoC where the curve has fallen (mode 2) or could rise (mode 1) by ``tolerance``.

    Returns:
        How many rows' connector status must change (Charging, or suspended by the EV
        when full, else by the EVSE); they are ``moved[:n]``, with whether each now
        draws nothing and whether it is full.
    """
    cdef Py_ssize_t i, n_moved = 0
    cdef int64_t j
    cdef double k, soc, target, hi, crit, a, b, cap, at_curve, wait, cand, h
    cdef bint full, zero
    cdef signed char wanted
    for i in range(rows.shape[0]):
        j = rows[i]
        k = kw[i]
        f[LIMIT, j] = k
        soc = f[SOC, j]
        target = f[TARGET, j]
        hi = f[HI, j]
        crit = target if target <= hi else hi
        full = soc >= target - _EPS_SOC
        zero = k <= 1e-9 or full
        if zero:
            mode[j] = 0
            f[POWER, j] = 0.0
            f[CRIT, j] = crit
            f[NEXT_T, j] = INFINITY
        else:
            a = f[A, j]
            b = f[B, j]
            cap = f[CAP, j]
            at_curve = a + b * soc
            wait = f[WAIT, j]
            if soc < wait < crit:
                crit = wait
            if at_curve > k + 1e-9 or (b >= 0 and at_curve >= k - 1e-9):
                mode[j] = 1
                f[POWER, j] = k
                if b != 0:
                    cand = ((k - a) if b < 0 else (k * (1.0 + tolerance) - a)) / b
                    if soc < cand < crit:
                        crit = cand
                h = (crit - soc) * cap / k
            else:
                mode[j] = 2
                f[POWER, j] = at_curve
                if b != 0:
                    cand = ((at_curve * (1.0 - tolerance) - a) if b < 0 else (k - a)) / b
                    if soc < cand < crit:
                        crit = cand
                h = curve_hours(a, b, soc, crit, cap)
            f[CRIT, j] = crit
            f[NEXT_T, j] = now + h * 3600.0 if isfinite(h) else INFINITY
        wanted = (SUSPENDED_EV if full else SUSPENDED_EVSE) if zero else CHARGING
        if status[j] != wanted:
            moved[n_moved] = j
            moved_zero[n_moved] = zero
            moved_full[n_moved] = full
            n_moved += 1
    return n_moved


cpdef tuple changed_rows(
    double[:, ::1] f, const unsigned char[::1] active, const double[::1] kw, const double[::1] max_kw, double due,
    bint waits, int64_t[::1] out,
):
    """Rows a new allocation must re-plan, into ``out``; return (their count, whether any row is throttled).

    An active row keeps its plan while its limit is the same (so is its regime: limit
    or curve) unless it is at its breakpoint (``next_t <= due``) or its vehicle waits
    for a SoC to depart (checked when ``waits``). Throttled: some row got less than it
    could take.
    """
    cdef Py_ssize_t j, n = 0
    cdef bint throttled = False
    for j in range(f.shape[1]):
        if kw[j] < max_kw[j] - 1e-9:
            throttled = True
        if active[j] and (kw[j] != f[LIMIT, j] or f[NEXT_T, j] <= due or (waits and not isnan(f[WAIT, j]))):
            out[n] = j
            n += 1
    return n, throttled


cpdef bint any_power(const signed char[::1] mode):
    """Whether some row draws power."""
    cdef Py_ssize_t j
    for j in range(mode.shape[0]):
        if mode[j] != 0:
            return True
    return False


cpdef double earliest(const double[:, ::1] f):
    """The earliest breakpoint of any row, as ``f[NEXT_T].min()`` gives it (NaN if one is NaN)."""
    cdef Py_ssize_t j
    cdef double t, least = INFINITY
    if f.shape[1] == 0:
        raise ValueError("no rows")
    for j in range(f.shape[1]):
        t = f[NEXT_T, j]
        if t != t:
            return t
        if t < least:
            least = t
    return least


cpdef Py_ssize_t close_spans(
    double[:, ::1] f, double[::1] span_kw, double[::1] since, const int64_t[::1] rows,
    const int64_t[::1] row_charger, const int64_t[::1] member_start, const int64_t[::1] members,
    unsigned char[::1] seen, double now, double tolerance, bint force, int64_t[::1] out_charger,
    double[::1] out_start, double[::1] out_kw,
):
    """Close the power span of the chargers of ``rows`` whose power moved; return how many.

    A charger's power is the sum over its connector rows (``members[member_start[k]:
    member_start[k + 1]]``). Its span stays open while that power stays within
    ``tolerance`` of the span's value (``span_kw``); otherwise (or when ``force``) the
    span takes the new value, and if it lasted, the closed span's exact average (the
    energy delivered since ``since``) is reported in ``out_*`` and its energy reset.
    ``seen`` is scratch, all False on entry and on return.
    """
    cdef Py_ssize_t i, m, n = 0
    cdef int64_t k
    cdef double kw, old, start, energy, larger
    for i in range(rows.shape[0]):
        k = row_charger[rows[i]]
        if seen[k]:
            continue
        seen[k] = True
        kw = 0.0
        for m in range(member_start[k], member_start[k + 1]):
            kw += f[POWER, members[m]]
        old = span_kw[k]
        larger = kw if kw > old else old
        if not force and (kw == old or (kw > 0 and old > 0 and fabs(kw - old) <= tolerance * larger)):
            continue
        span_kw[k] = kw
        start = since[k]
        if now <= start:
            continue
        energy = 0.0
        for m in range(member_start[k], member_start[k + 1]):
            energy += f[ACC, members[m]]
            f[ACC, members[m]] = 0.0
        out_charger[n] = k
        out_start[n] = start
        out_kw[n] = energy * 3600.0 / (now - start)
        since[k] = now
        n += 1
    for i in range(rows.shape[0]):
        seen[row_charger[rows[i]]] = False
    return n


cpdef Py_ssize_t due_breakpoints(
    double[:, ::1] f, const int64_t[::1] rank, double due, int64_t[::1] out_rows, signed char[::1] out_kind
):
    """Snap the rows whose breakpoint is due (``next_t <= due``) to it; return how many.

    Float rounding must not leave SoC a hair below a breakpoint (that would schedule
    the same instant again and again), so each due row's SoC is set to its breakpoint
    SoC, and the energy of that last step is booked. Rows come out in plug-in order
    (``rank``), with ``out_kind`` 1 when the row reached its target, 2 when it reached
    the end of its curve piece, else 0.
    """
    cdef Py_ssize_t i, j, n = 0
    cdef int64_t row
    cdef double s0, target, snapped, gained
    for j in range(f.shape[1]):
        if f[NEXT_T, j] <= due:
            i = n  # insertion by rank: few rows are due at once
            while i > 0 and rank[out_rows[i - 1]] > rank[j]:
                out_rows[i] = out_rows[i - 1]
                i -= 1
            out_rows[i] = j
            n += 1
    for i in range(n):
        row = out_rows[i]
        s0 = f[SOC, row]
        target = f[TARGET, row]
        snapped = snapped_soc(s0, f[CRIT, row], target)
        if snapped >= target - 1e-7 and target > snapped:
            snapped = target
        gained = (snapped - s0) * f[CAP, row]
        f[KWH, row] += gained
        f[ACC, row] += gained
        f[SOC, row] = snapped
        if snapped >= target - 1e-7:
            out_kind[i] = 1
        elif snapped >= f[HI, row]:
            out_kind[i] = 2
        else:
            out_kind[i] = 0
    return n


cpdef tuple free_and_full(
    double[:, ::1] f, const unsigned char[::1] occupied, const int64_t[::1] rank, const unsigned char[::1] available,
    const unsigned char[::1] claimed, bint with_full, int64_t[::1] free_out, int64_t[::1] full_out,
):
    """What the operator policy chooses from: free connector rows, and (when ``with_full``)
    rows whose session reached its target, in plug-in order (``rank``); return both counts."""
    cdef Py_ssize_t i, j, n_free = 0, n_full = 0
    for j in range(f.shape[1]):
        if available[j] and not claimed[j]:
            free_out[n_free] = j
            n_free += 1
        if with_full and occupied[j] and f[SOC, j] >= f[TARGET, j] - _EPS_SOC:
            i = n_full
            while i > 0 and rank[full_out[i - 1]] > rank[j]:
                full_out[i] = full_out[i - 1]
                i -= 1
            full_out[i] = j
            n_full += 1
    return n_free, n_full
