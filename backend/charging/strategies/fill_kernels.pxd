# The C-level entry of fill_kernels.pyx, for compiled callers (sim/fast_forward_loop.pyx).
from libc.stdint cimport int64_t

# the built-in table strategies :func:`builtin` runs
cpdef enum:
    UNCONTROLLED = 0
    EQUAL_SHARE = 1
    EARLIEST_DEPARTURE_FIRST = 2
    LEAST_LAXITY_FIRST = 3

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
)

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
) except *
