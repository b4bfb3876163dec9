# Declarations of sim/slot_kernels.pyx that other compiled modules (sim/fast_forward.pyx) call.
from libc.math cimport expm1
from libc.stdint cimport int64_t

cpdef enum:
    # quantities: the rows of the float state array ``f``
    SOC = 0  # state of charge now (at the last integration)
    CEIL = 1  # the SoC integration stops at: max(target, SoC at plug-in)
    POWER = 2  # kW at the segment start (mode 2: the curve's kW then)
    LIMIT = 3  # the allocator's last limit
    A = 4  # current curve piece: curve(s) = a + b*s on [lo, hi)
    B = 5
    SAFE_B = 6  # b, or 1 on flat pieces (a divisor that never warns)
    LO = 7
    HI = 8
    UNIT_H = 9  # curve hours per kWh from SoC 0 to lo, at full power
    TARGET_H = 10  # ... from SoC 0 to the target
    CAP = 11  # usable battery kWh
    EFF = 12
    INV_EFF = 13
    TARGET = 14
    NEXT_T = 15  # the row's next breakpoint (engine seconds), inf for none
    CRIT = 16  # the SoC at that breakpoint
    KWH = 17  # delivered to the current session
    ACC = 18  # delivered since the charger's power span opened
    DEP = 19  # next departure, UTC POSIX s (NaN: unknown)
    WAIT = 20  # SoC a delayed departure waits for (NaN: none)
    COLUMNS = 21

cpdef enum:
    # connector statuses a plan sets, as codes (every other status is 0)
    CHARGING = 1
    SUSPENDED_EV = 2
    SUSPENDED_EVSE = 3

cdef double curve_hours(double a, double b, double s0, double s1, double capacity) noexcept nogil

cpdef tuple integrate(double[:, ::1] f, const signed char[::1] mode, const unsigned char[::1] sloped, double hours)

cpdef tuple allocation_inputs(
    double[:, ::1] f, const signed char[::1] mode, const unsigned char[::1] sloped,
    const unsigned char[::1] occupied, bint with_hours, unsigned char[::1] active, double[::1] max_kw,
    double[::1] energy, double[::1] hours, int64_t[::1] full_rows,
)

cpdef Py_ssize_t plan(
    double[:, ::1] f, signed char[::1] mode, const signed char[::1] status, const int64_t[::1] rows,
    const double[::1] kw, double now, double tolerance, int64_t[::1] moved, unsigned char[::1] moved_zero,
    unsigned char[::1] moved_full,
)

cpdef tuple changed_rows(
    double[:, ::1] f, const unsigned char[::1] active, const double[::1] kw, const double[::1] max_kw, double due,
    bint waits, int64_t[::1] out,
)

cpdef bint any_power(const signed char[::1] mode)

cpdef double earliest(const double[:, ::1] f)
cpdef Py_ssize_t close_spans(
    double[:, ::1] f, double[::1] span_kw, double[::1] since, const int64_t[::1] rows,
    const int64_t[::1] row_charger, const int64_t[::1] member_start, const int64_t[::1] members,
    unsigned char[::1] seen, double now, double tolerance, bint force, int64_t[::1] out_charger,
    double[::1] out_start, double[::1] out_kw,
)

cpdef Py_ssize_t due_breakpoints(
    double[:, ::1] f, const int64_t[::1] rank, double due, int64_t[::1] out_rows, signed char[::1] out_kind
)

cpdef tuple free_and_full(
    double[:, ::1] f, const unsigned char[::1] occupied, const int64_t[::1] rank, const unsigned char[::1] available,
    const unsigned char[::1] claimed, bint with_full, int64_t[::1] free_out, int64_t[::1] full_out,
)


cdef inline double soc_after(
    double[:, ::1] f, signed char mode, bint sloped, Py_ssize_t j, double hours
) noexcept nogil:
    """Row j's SoC ``hours`` after its last integration (mode != 0): the integration step.

    Linear while the limit binds (and on a flat piece), exponential while a sloped curve
    piece binds; never past ``ceil``. Shared by ``integrate`` and the fast-forward loop's
    look-ahead, which must agree to the bit.
    """
    cdef double soc = f[SOC, j], cap = f[CAP, j], b, new
    if mode == 2 and sloped:
        b = f[B, j]
        new = soc + (f[A, j] + b * soc) / f[SAFE_B, j] * expm1(b * hours / cap)
    else:
        new = soc + f[POWER, j] * hours / cap
    return f[CEIL, j] if new > f[CEIL, j] else new


cdef inline double snapped_soc(double soc, double crit, double target) noexcept nogil:
    """The SoC a row at its breakpoint is set to: its breakpoint SoC (or target), never below ``soc``."""
    cdef double snapped = crit if crit < target else target
    if soc > snapped:
        snapped = soc
    return snapped
