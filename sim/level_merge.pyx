# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""The compiled pass of :class:`sim.recorder.Recorder` that merges logged level changes into segments.

A year of a large depot logs millions of power-level changes; replaying them one
Python call at a time cost more than the rest of the recording. The recorder logs
(series id, t, value) rows and hands them here in batches.
"""

from libc.math cimport fabs
from libc.stdint cimport int64_t


cpdef Py_ssize_t merge_levels(
    const int64_t[::1] ids, const double[::1] times, const double[::1] values, double[::1] open_value,
    double[::1] open_since, unsigned char[::1] is_open, int64_t[::1] out_id, double[::1] out_start,
    double[::1] out_value,
):
    """Replay level changes in order against each series' open value; return the segments closed.

    A change equal to the open value (NaN equal to NaN) or within 1e-9 relative is
    merged. Otherwise the open segment closes, unless it is shorter than 1 µs: then
    the new value takes over its start.
    """
    cdef Py_ssize_t k, closed = 0
    cdef int64_t sid
    cdef double t, value, old, since, scale
    for k in range(ids.shape[0]):
        sid = ids[k]
        t = times[k]
        value = values[k]
        if not is_open[sid]:
            is_open[sid] = True
            open_value[sid] = value
            open_since[sid] = t
            continue
        old = open_value[sid]
        scale = fabs(old)
        if not scale > 1.0:  # max(1.0, |old|), NaN giving 1.0 as Python's max does
            scale = 1.0
        if old == value or (old != old and value != value) or fabs(old - value) <= 1e-9 * scale:
            continue
        since = open_since[sid]
        if t - since >= 1e-6:
            out_id[closed] = sid
            out_start[closed] = since
            out_value[closed] = old
            closed += 1
        else:
            t = since
        open_value[sid] = value
        open_since[sid] = t
    return closed
