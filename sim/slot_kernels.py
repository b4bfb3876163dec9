"""Compiled per-row arithmetic of the session rows (:mod:`sim.slots`).

An engine event touches every connector row with a few floating-point operations
each: integrate the segment that just ended, build the allocator's inputs, decide
which rows the new limits change, re-plan those and find the connector statuses that
move. Written as numpy expressions that is 20-40 array calls per event, and numpy's
~1 µs per call, not the arithmetic, set the cost of a simulated year. Here each step
is one compiled loop over the rows (numba, cached on disk after the first run), so an
event costs a few microseconds of arithmetic plus one call.

The float state of all rows is one 2-D array ``f`` (one row of ``f`` per quantity,
indexed by the column constants below, one column per connector), so a call passes
one array instead of twenty. The formulas are those of :mod:`models.battery`:
within one charge-curve piece ``curve(s) = a + b*s``, SoC moves linearly while the
limit binds (mode 1) and exponentially while the curve binds (mode 2); mode 0 draws
nothing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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

# connector statuses a plan sets, as codes (every other status is 0)
CHARGING, SUSPENDED_EV, SUSPENDED_EVSE = 1, 2, 3

EPS_SOC = 1e-9
_FLAT = 1e-12  # |b| below this: the piece is flat (as in models.battery)
_P_EPS = 1e-12  # power at or below this: the curve is exhausted (hours = inf)
_CURVE_EPS = 1e-12  # models.battery._EPS


@njit(cache=True)
def curve_hours(a: float, b: float, s0: float, s1: float, capacity: float) -> float:
    """Hours from s0 to s1 when power equals the line a + b*s: :func:`models.battery._curve_hours`."""
    p0 = a + b * s0
    p1 = a + b * s1
    if p0 <= _CURVE_EPS or p1 <= _CURVE_EPS:
        return math.inf if s1 > s0 else 0.0
    if abs(b) < 1e-12:
        return (s1 - s0) * capacity / p0
    return capacity / b * math.log1p(b * (s1 - s0) / p0)


@njit(cache=True)
def integrate(f: np.ndarray, mode: np.ndarray, sloped: np.ndarray, hours: float) -> tuple[float, float]:
    """Advance every row by ``hours``; return (kWh delivered, kWh drawn from the grid).

    Rows drawing nothing (mode 0, idle rows among them) are left as they are. A mode-2
    row on a flat piece draws the constant ``power`` = ``a``, so the linear formula is
    exact for it.
    """
    delivered = 0.0
    drawn = 0.0
    for j in range(f.shape[1]):
        m = mode[j]
        if m == 0:
            continue
        soc = f[SOC, j]
        cap = f[CAP, j]
        if m == 2 and sloped[j]:
            b = f[B, j]
            new = soc + (f[A, j] + b * soc) / f[SAFE_B, j] * math.expm1(b * hours / cap)
        else:
            new = soc + f[POWER, j] * hours / cap
        ceil = f[CEIL, j]
        if new > ceil:
            new = ceil
        energy = (new - soc) * cap
        f[SOC, j] = new
        f[KWH, j] += energy
        f[ACC, j] += energy
        delivered += energy
        drawn += energy * f[INV_EFF, j]
    return delivered, drawn


@njit(cache=True)
def hours_to_target(f: np.ndarray, sloped: np.ndarray, j: int) -> float:
    """Hours row j needs to reach its target at full curve power (taper included).

    From the curve hours of SoC 0 to the target, less those to the piece start and
    those already done within the piece. An exhausted curve gives a huge figure.
    """
    a = f[A, j]
    b = f[B, j]
    lo = f[LO, j]
    p0 = a + b * lo
    if not p0 > _P_EPS:
        p0 = _P_EPS
    if sloped[j]:
        ratio = b * (f[SOC, j] - lo) / p0
        if ratio < -1.0 + 1e-15:
            ratio = -1.0 + 1e-15
        done = math.log1p(ratio) / f[SAFE_B, j]
    else:
        done = (f[SOC, j] - lo) / p0
    return (f[TARGET_H, j] - f[UNIT_H, j] - done) * f[CAP, j]


@njit(cache=True)
def allocation_inputs(
    f: np.ndarray,
    mode: np.ndarray,
    sloped: np.ndarray,
    occupied: np.ndarray,
    with_hours: bool,
    active: np.ndarray,
    max_kw: np.ndarray,
    energy: np.ndarray,
    hours: np.ndarray,
    full_rows: np.ndarray,
) -> tuple[int, int]:
    """Fill the allocator's per-row inputs; return (active rows, rows to stop).

    A row is active when a session on it still needs energy: ``max_kw`` is what its
    curve takes at its SoC, ``energy`` the kWh to its target and ``hours`` the hours
    to it at full power (0 unless ``with_hours``). Other rows get zeros. Rows that
    reached their target by integration but still draw power are listed in
    ``full_rows`` for the engine to stop.
    """
    n_active = 0
    n_full = 0
    for j in range(f.shape[1]):
        if occupied[j]:
            soc = f[SOC, j]
            target = f[TARGET, j]
            if soc < target - EPS_SOC:
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


@njit(cache=True)
def plan(
    f: np.ndarray,
    mode: np.ndarray,
    status: np.ndarray,
    rows: np.ndarray,
    kw: np.ndarray,
    now: float,
    tolerance: float,
    moved: np.ndarray,
    moved_zero: np.ndarray,
    moved_full: np.ndarray,
) -> int:
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
    n_moved = 0
    for i in range(rows.shape[0]):
        j = rows[i]
        k = kw[i]
        f[LIMIT, j] = k
        soc = f[SOC, j]
        target = f[TARGET, j]
        hi = f[HI, j]
        crit = target if target <= hi else hi
        full = soc >= target - EPS_SOC
        zero = k <= 1e-9 or full
        if zero:
            mode[j] = 0
            f[POWER, j] = 0.0
            f[CRIT, j] = crit
            f[NEXT_T, j] = math.inf
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
            f[NEXT_T, j] = now + h * 3600.0 if math.isfinite(h) else math.inf
        wanted = (SUSPENDED_EV if full else SUSPENDED_EVSE) if zero else CHARGING
        if status[j] != wanted:
            moved[n_moved] = j
            moved_zero[n_moved] = zero
            moved_full[n_moved] = full
            n_moved += 1
    return n_moved


@njit(cache=True)
def changed_rows(
    f: np.ndarray, active: np.ndarray, kw: np.ndarray, max_kw: np.ndarray, due: float, waits: bool, out: np.ndarray
) -> tuple[int, bool]:
    """Rows a new allocation must re-plan, into ``out``; return (their count, whether any row is throttled).

    An active row keeps its plan while its limit is the same (so is its regime: limit
    or curve) unless it is at its breakpoint (``next_t <= due``) or its vehicle waits
    for a SoC to depart (checked when ``waits``). Throttled: some row got less than it
    could take.
    """
    n = 0
    throttled = False
    for j in range(f.shape[1]):
        if kw[j] < max_kw[j] - 1e-9:
            throttled = True
        if active[j] and (kw[j] != f[LIMIT, j] or f[NEXT_T, j] <= due or (waits and not math.isnan(f[WAIT, j]))):
            out[n] = j
            n += 1
    return n, throttled


@njit(cache=True)
def any_power(mode: np.ndarray) -> bool:
    """Whether some row draws power."""
    for j in range(mode.shape[0]):  # noqa: SIM110 - a compiled loop, not a generator
        if mode[j] != 0:
            return True
    return False


@njit(cache=True)
def close_spans(
    f: np.ndarray,
    span_kw: np.ndarray,
    since: np.ndarray,
    rows: np.ndarray,
    row_charger: np.ndarray,
    member_start: np.ndarray,
    members: np.ndarray,
    seen: np.ndarray,
    now: float,
    tolerance: float,
    force: bool,
    out_charger: np.ndarray,
    out_start: np.ndarray,
    out_kw: np.ndarray,
) -> int:
    """Close the power span of the chargers of ``rows`` whose power moved; return how many.

    A charger's power is the sum over its connector rows (``members[member_start[k]:
    member_start[k + 1]]``). Its span stays open while that power stays within
    ``tolerance`` of the span's value (``span_kw``); otherwise (or when ``force``) the
    span takes the new value, and if it lasted, the closed span's exact average (the
    energy delivered since ``since``) is reported in ``out_*`` and its energy reset.
    ``seen`` is scratch, all False on entry and on return.
    """
    n = 0
    for i in range(rows.shape[0]):
        k = row_charger[rows[i]]
        if seen[k]:
            continue
        seen[k] = True
        kw = 0.0
        for m in range(member_start[k], member_start[k + 1]):
            kw += f[POWER, members[m]]
        old = span_kw[k]
        if not force and (kw == old or (kw > 0 and old > 0 and abs(kw - old) <= tolerance * max(old, kw))):
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


@njit(cache=True)
def due_breakpoints(
    f: np.ndarray, rank: np.ndarray, due: float, out_rows: np.ndarray, out_kind: np.ndarray
) -> int:
    """Snap the rows whose breakpoint is due (``next_t <= due``) to it; return how many.

    Float rounding must not leave SoC a hair below a breakpoint (that would schedule
    the same instant again and again), so each due row's SoC is set to its breakpoint
    SoC, and the energy of that last step is booked. Rows come out in plug-in order
    (``rank``), with ``out_kind`` 1 when the row reached its target, 2 when it reached
    the end of its curve piece, else 0.
    """
    n = 0
    for j in range(f.shape[1]):
        if f[NEXT_T, j] <= due:
            # insertion by rank: few rows are due at once
            i = n
            while i > 0 and rank[out_rows[i - 1]] > rank[j]:
                out_rows[i] = out_rows[i - 1]
                i -= 1
            out_rows[i] = j
            n += 1
    for i in range(n):
        j = out_rows[i]
        s0 = f[SOC, j]
        target = f[TARGET, j]
        crit = f[CRIT, j]
        snapped = crit if crit < target else target
        if s0 > snapped:
            snapped = s0
        if snapped >= target - 1e-7 and target > snapped:
            snapped = target
        gained = (snapped - s0) * f[CAP, j]
        f[KWH, j] += gained
        f[ACC, j] += gained
        f[SOC, j] = snapped
        if snapped >= target - 1e-7:
            out_kind[i] = 1
        elif snapped >= f[HI, j]:
            out_kind[i] = 2
        else:
            out_kind[i] = 0
    return n


@njit(cache=True)
def free_and_full(
    f: np.ndarray,
    occupied: np.ndarray,
    rank: np.ndarray,
    available: np.ndarray,
    claimed: np.ndarray,
    with_full: bool,
    free_out: np.ndarray,
    full_out: np.ndarray,
) -> tuple[int, int]:
    """What the operator policy chooses from: free connector rows, and (when ``with_full``)
    rows whose session reached its target, in plug-in order (``rank``); return both counts."""
    n_free = 0
    n_full = 0
    for j in range(f.shape[1]):
        if available[j] and not claimed[j]:
            free_out[n_free] = j
            n_free += 1
        if with_full and occupied[j] and f[SOC, j] >= f[TARGET, j] - EPS_SOC:
            i = n_full
            while i > 0 and rank[full_out[i - 1]] > rank[j]:
                full_out[i] = full_out[i - 1]
                i -= 1
            full_out[i] = j
            n_full += 1
    return n_free, n_full
