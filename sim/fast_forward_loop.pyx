# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""The compiled loop of :mod:`sim.fast_forward`: breakpoints that need no decision.

See :mod:`sim.fast_forward` for what it does and when the engine may call it. The loop
holds the engine's row arrays (all updated in place, never replaced) so that a call
passes only what changed: the site, the time of the next event of another process,
and where the engine stands.
"""

from cpython cimport array
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int64_t

from backend.charging.strategies.fill_kernels cimport builtin_view
from sim.slot_kernels cimport (
    A, ACC, B, CAP, CEIL, CHARGING, CRIT, DEP, EFF, HI, INV_EFF, KWH, LIMIT, LO, NEXT_T, POWER, SAFE_B, SOC,
    SUSPENDED_EV, SUSPENDED_EVSE, TARGET, TARGET_H, UNIT_H, WAIT,
    allocation_inputs, changed_rows, close_spans, due_breakpoints, earliest, free_and_full, integrate, plan,
    snapped_soc, soc_after,
)

cdef double _EPS_SOC = 1e-9
cdef enum:
    MAX_STATUSES = 16
cdef double _FLAT = 1e-12
cdef double _HUGE_H = 1e18

cpdef enum:
    # the recorder's level ids of the site series, in this order (site_levels)
    L_GRID = 0
    L_LOAD = 1
    L_CHARGERS = 2
    L_DELIVERED = 3
    L_PV = 4
    L_PV_CURTAILED = 5


cdef inline void _put(array.array column, Py_ssize_t at, int64_t code) noexcept:
    """Store a string code in an event code column (int16 until the recorder widens it to int32)."""
    if column.ob_descr.itemsize == 2:
        column.data.as_shorts[at] = <short>code
    else:
        column.data.as_ints[at] = <int>code


cdef int _check_event_columns(list columns) except -1:
    """The recorder's event columns (``Recorder.event_columns``), checked before compiled code
    writes rows into them: time, kind, vehicle, charger, connector, value and detail;
    doubles for time and value, int16 or int32 codes for the others."""
    cdef Py_ssize_t i
    cdef array.array column
    if len(columns) != 7:
        raise ValueError("expected the 7 event columns")
    for i in range(7):
        column = columns[i]
        if i == 0 or i == 5:
            if column.ob_descr.itemsize != 8:
                raise TypeError("event time and value columns must be arrays of doubles")
        elif column.ob_descr.itemsize != 2 and column.ob_descr.itemsize != 4:
            raise TypeError("event code columns must be arrays of int16 or int32")
    return 0


cdef Py_ssize_t _grow_event_columns(list columns, Py_ssize_t n) except -1:
    """Make room for ``n`` more rows in each (checked) event column; return the first new row."""
    cdef array.array column
    cdef Py_ssize_t start = len(columns[0])
    for column in columns:
        if len(column) != start:
            raise ValueError("event columns differ in length")
        array.resize_smart(column, start + n)
    return start


cdef class Loop:
    """The engine's arrays, bound once; :meth:`run` advances through breakpoints."""

    cdef double[:, ::1] f
    cdef signed char[::1] mode
    cdef unsigned char[::1] sloped, occupied, active, moved_zero, moved_full, seen
    cdef signed char[::1] status, due_kind
    cdef const int64_t[::1] row_charger, member_start, members, site_levels, charger_levels
    cdef int64_t[::1] rank, row_curve, rows_buf, due_rows, moved, span_charger
    cdef double[::1] max_kw, energy, hours, kw_buf, span_kw, since, span_start, span_value, ahead
    cdef const int64_t[::1] soc_start, piece_start
    cdef const double[::1] socs, line_a, line_b, unit_h
    # the allocator: a built-in strategy (fill_kernels.builtin) over the session table's columns
    cdef int strategy
    cdef const double[::1] eff, dep, current_kw, caps
    cdef const int64_t[::1] member_row, member_group
    cdef double margin_h
    # the recorder's string codes of each row's vehicle, charger and connector, and of the
    # statuses' names (index: status code); -2 where none is drawn yet; rows on a faulted charger
    cdef const int64_t[::1] row_vehicle_code, row_charger_code, row_connector_code, status_name_code
    cdef const unsigned char[::1] row_faulted
    cdef unsigned char[::1] row_mark  # scratch: rows seen, all False between calls
    cdef int64_t[::1] touched
    # the engine's connectors by row, with what setting their status takes (bind_connectors)
    cdef list connectors
    cdef tuple code_status
    cdef object check_transition
    # set_status: every status (found by identity: an enum member's hash is a Python call),
    # and by its index the moves allowed, its code (0: none), its name and whether it is Available
    cdef tuple statuses, status_names
    cdef unsigned char allowed[MAX_STATUSES][MAX_STATUSES]
    cdef signed char status_plan_code[MAX_STATUSES]
    cdef unsigned char status_available[MAX_STATUSES]
    cdef object take  # scratch of the allocation: wanted kW (an array, and its view), order key
    cdef double[::1] take_view, key_view
    cdef int64_t[::1] kept_order, order_scratch
    # the operator policy's choices (free_and_full)
    cdef unsigned char[::1] available
    cdef const unsigned char[::1] claimed
    cdef int64_t[::1] free_rows, full_rows
    # level changes go straight into the recorder's level log (Recorder.level_log); the
    # other logs the engine writes to its recorder after each call
    cdef array.array level_log
    cdef Py_ssize_t level_room
    cdef double[::1] status_t
    cdef int64_t[::1] status_row
    cdef signed char[::1] status_code
    cdef double[::1] target_t
    cdef int64_t[::1] target_row
    # results of the last run
    cdef public double now, timer_t, timer_at
    cdef public bint throttled, any_power, decide, needs_alloc
    cdef public Py_ssize_t steps, allocations, n_levels, n_status, n_targets

    def __init__(self, slots, row_curve, row_charger, member_start, members, span_kw, since, site_levels,
                 charger_levels, due_rows, due_kind, logs, int strategy, member_row, member_group, caps,
                 double margin_h, available, claimed, free_rows, full_rows, array.array level_log,
                 row_vehicle_code, row_charger_code, row_connector_code, status_name_code, row_faulted):
        self.row_vehicle_code = row_vehicle_code
        self.row_charger_code = row_charger_code
        self.row_connector_code = row_connector_code
        self.status_name_code = status_name_code
        self.row_faulted = row_faulted
        self.row_mark = logs.row_mark
        self.touched = logs.touched
        self.take = logs.take
        self.take_view = logs.take
        self.key_view = logs.key
        self.kept_order = logs.order
        self.order_scratch = logs.order_scratch
        self.available = available
        self.claimed = claimed
        self.free_rows = free_rows
        self.full_rows = full_rows
        self.strategy = strategy
        self.eff = slots.eff
        self.dep = slots.dep
        self.current_kw = slots.limit
        self.member_row = member_row
        self.member_group = member_group
        self.caps = caps
        self.margin_h = margin_h
        self.f = slots.f
        self.mode = slots.mode
        self.sloped = slots.sloped
        self.occupied = slots.occupied
        self.active = slots.active
        self.rank = slots.rank
        self.status = slots.status
        self.max_kw = slots.max_kw
        self.energy = slots.energy
        self.hours = slots.hours
        self.moved = slots.moved
        self.moved_zero = slots.moved_zero
        self.moved_full = slots.moved_full
        self.row_curve = row_curve
        self.row_charger = row_charger
        self.member_start = member_start
        self.members = members
        self.span_kw = span_kw
        self.since = since
        self.site_levels = site_levels
        self.charger_levels = charger_levels
        self.due_rows = due_rows
        self.due_kind = due_kind
        if level_log.typecode != "d":
            raise ValueError("the level log must be an array of doubles")
        self.level_log = level_log
        self.level_room = logs.level_room
        self.status_t = logs.status_t
        self.status_row = logs.status_row
        self.status_code = logs.status_code
        self.target_t = logs.target_t
        self.target_row = logs.target_row
        self.span_charger = logs.span_charger
        self.span_start = logs.span_start
        self.span_value = logs.span_kw
        self.seen = logs.seen
        self.rows_buf = logs.rows
        self.kw_buf = logs.kw
        self.ahead = logs.ahead

    def set_curves(self, soc_start, piece_start, socs, line_a, line_b, unit_h):
        """Bind the curve table (its arrays are replaced when a curve is added)."""
        self.soc_start = soc_start
        self.piece_start = piece_start
        self.socs = socs
        self.line_a = line_a
        self.line_b = line_b
        self.unit_h = unit_h

    cdef Py_ssize_t _piece(self, int64_t c, double soc) noexcept:
        """Global index of the piece of curve c holding ``soc``: ``ChargeCurve._piece``."""
        cdef int64_t first = self.soc_start[c]
        cdef int64_t count = self.soc_start[c + 1] - first
        cdef int64_t k = 0  # bisect_right: the breakpoints <= soc
        while k < count and self.socs[first + k] <= soc:
            k += 1
        k -= 1
        if k < 0:
            k = 0
        if k > count - 2:
            k = count - 2
        return self.piece_start[c] + k

    cdef void _set_piece(self, Py_ssize_t j, double soc) noexcept:
        """Point row j at the piece of its curve holding ``soc``: :meth:`sim.slots.Slots.set_piece`."""
        cdef int64_t c = self.row_curve[j]
        cdef Py_ssize_t p = self._piece(c, soc)
        cdef Py_ssize_t i = p - self.piece_start[c]
        cdef double slope = self.line_b[p]
        cdef bint is_sloped = (slope if slope >= 0 else -slope) >= _FLAT
        cdef double hours = self.unit_h[p]
        self.f[A, j] = self.line_a[p]
        self.f[B, j] = slope
        self.sloped[j] = is_sloped
        self.f[SAFE_B, j] = slope if is_sloped else 1.0
        self.f[LO, j] = self.socs[self.soc_start[c] + i]
        self.f[HI, j] = self.socs[self.soc_start[c] + i + 1]
        self.f[UNIT_H, j] = hours if hours < _HUGE_H else _HUGE_H

    cdef inline int _level(self, int64_t series, double t, double value) except -1:
        """Log a level change as the recorder's ``level_at(series, t, value)`` does: append it to its log."""
        cdef Py_ssize_t n = len(self.level_log)
        cdef double* row
        array.resize_smart(self.level_log, n + 3)
        row = self.level_log.data.as_doubles + n
        row[0] = series
        row[1] = t
        row[2] = value
        self.n_levels += 1
        return 0

    cdef void _reset_logs(self) noexcept:
        """Empty the logs and step counters before a call that fills them."""
        self.steps = 0
        self.allocations = 0
        self.n_levels = 0
        self.n_status = 0
        self.n_targets = 0
        self.decide = False
        self.needs_alloc = False

    cdef void _find_power(self) noexcept:
        """Whether some row draws power (``any_power``), as the engine's ``Slots.any_power``."""
        cdef Py_ssize_t j
        self.any_power = False
        for j in range(self.mode.shape[0]):
            if self.mode[j] != 0:
                self.any_power = True
                return

    cdef void _apply(self, Py_ssize_t n, double now, double tolerance):
        """The engine's ``_apply_limits`` for rows_buf[:n] at kw_buf[:n]: plan, log status moves and spans."""
        cdef Py_ssize_t i, moved
        cdef int64_t j
        cdef signed char code
        moved = plan(self.f, self.mode, self.status, self.rows_buf[:n], self.kw_buf[:n], now, tolerance,
                     self.moved, self.moved_zero, self.moved_full)
        for i in range(moved):
            j = self.moved[i]
            code = CHARGING if not self.moved_zero[i] else (SUSPENDED_EV if self.moved_full[i] else SUSPENDED_EVSE)
            self.status[j] = code
            self.status_t[self.n_status] = now
            self.status_row[self.n_status] = j
            self.status_code[self.n_status] = code
            self.n_status += 1
        self._close_spans(self.rows_buf[:n], now, tolerance, False)

    cdef (double, double) _integrate_ahead(self) noexcept:
        """``slot_kernels.integrate`` to the breakpoint the look-ahead just checked, with
        the SoCs it found there (the same ``soc_after``, so the same bits): (kWh
        delivered, kWh drawn from the grid)."""
        cdef double delivered = 0.0, drawn = 0.0, energy
        cdef Py_ssize_t j
        for j in range(self.f.shape[1]):
            if self.mode[j] == 0:
                continue
            energy = (self.ahead[j] - self.f[SOC, j]) * self.f[CAP, j]
            self.f[SOC, j] = self.ahead[j]
            self.f[KWH, j] += energy
            self.f[ACC, j] += energy
            delivered += energy
            drawn += energy * self.f[INV_EFF, j]
        return delivered, drawn

    def segment(self, double start, double end, double base_kw, double pv_kw, bint has_pv, bint any_power):
        """The engine's ``_flush`` of [start, end] for these runs (no battery), once the site's
        fixed levels (base load, price, limit) of the current values are recorded: integrate
        every row when power flows and log the site levels as ``_record_segment`` does."""
        cdef double h = (end - start) / 3600.0
        cdef double delivered = 0.0, drawn = 0.0
        if not h > 0.0:
            raise ValueError(f"segment [{start}, {end}] is empty")
        self.n_levels = 0
        if any_power:
            delivered, drawn = integrate(self.f, self.mode, self.sloped, h)
        self._log_segment(start, h, delivered, drawn, base_kw, pv_kw, has_pv)

    cdef int _log_segment(self, double start, double h, double delivered, double drawn, double base_kw,
                          double pv_kw, bint has_pv) except -1:
        """Log the site levels of a segment of ``h`` hours from ``start``, as the engine's
        ``_record_segment`` does without a battery."""
        cdef double chargers_kw = drawn / h
        cdef double load = base_kw + chargers_kw
        cdef double demand = load + 0.0  # no battery here
        cdef double pv_now = pv_kw if has_pv else 0.0
        cdef double pv_used = demand if demand < pv_now else pv_now  # min(pv_kw, demand)
        cdef double grid = demand - pv_used - 0.0
        self._level(self.site_levels[L_GRID], start, 0.0 if grid < 0.0 else grid)
        self._level(self.site_levels[L_LOAD], start, load)
        self._level(self.site_levels[L_CHARGERS], start, chargers_kw)
        self._level(self.site_levels[L_DELIVERED], start, delivered / h)
        if has_pv:
            self._level(self.site_levels[L_PV], start, pv_used)
            self._level(self.site_levels[L_PV_CURTAILED], start, pv_now - pv_used)
        return 0

    def apply_limits(self, const int64_t[::1] rows, const double[::1] kw, double now, double tolerance):
        """The engine's ``_apply_limits``: give ``rows`` the limits ``kw``; the status moves are
        logged (written by the engine's ``_write_logs``), the closed spans go to the level log."""
        cdef Py_ssize_t i, n = rows.shape[0]
        if kw.shape[0] != n or n > self.rows_buf.shape[0]:
            raise ValueError("rows and limits differ in length, or more rows than the table has")
        self._reset_logs()
        for i in range(n):
            self.rows_buf[i] = rows[i]
            self.kw_buf[i] = kw[i]
        self._apply(n, now, tolerance)
        self._find_power()

    def open_row(self, Py_ssize_t j, double soc, double cap, double eff, double target, double target_h,
                 int64_t rank, double dep):
        """:meth:`sim.slots.Slots.open` for row j, whose curve (``row_curve[j]``) is set first;
        ``target_h`` is :meth:`sim.slots.Slots.target_hours`."""
        if j < 0 or j >= self.f.shape[1]:
            raise IndexError(f"row {j} out of range")
        self.occupied[j] = True
        self.f[SOC, j] = soc
        self.f[CEIL, j] = soc if soc > target else target  # max(target, soc)
        self.f[POWER, j] = 0.0
        self.f[LIMIT, j] = 0.0
        self.mode[j] = 0
        self.f[CAP, j] = cap
        self.f[EFF, j] = eff
        self.f[INV_EFF, j] = 1.0 / eff
        self.f[TARGET, j] = target
        self.f[TARGET_H, j] = target_h
        self.f[NEXT_T, j] = INFINITY
        self.f[CRIT, j] = INFINITY
        self.f[KWH, j] = 0.0
        self.f[DEP, j] = dep
        self.f[WAIT, j] = NAN
        self.rank[j] = rank
        self._set_piece(j, soc)

    def set_piece(self, Py_ssize_t j, double soc):
        """:meth:`sim.slots.Slots.set_piece` for row j, with its curve ``row_curve[j]``."""
        if j < 0 or j >= self.f.shape[1]:
            raise IndexError(f"row {j} out of range")
        self._set_piece(j, soc)

    def close_row(self, Py_ssize_t j):
        """:meth:`sim.slots.Slots.close` for row j (its ``ACC`` stays: it belongs to the charger's open span)."""
        if j < 0 or j >= self.f.shape[1]:
            raise IndexError(f"row {j} out of range")
        self._close_row(j)

    def unplug_row(self, Py_ssize_t j, double now, double tolerance):
        """The engine's steps on row j when its session ends: read its SoC, kWh delivered and
        efficiency, :meth:`close_row`, then close its charger's span as :meth:`close_spans`
        of row j does. Returns (soc, kWh, efficiency, spans closed)."""
        cdef double soc, kwh, eff
        if j < 0 or j >= self.f.shape[1]:
            raise IndexError(f"row {j} out of range")
        soc, kwh, eff = self.f[SOC, j], self.f[KWH, j], self.f[EFF, j]
        self._close_row(j)
        self.rows_buf[0] = j
        return soc, kwh, eff, self._close_spans(self.rows_buf[:1], now, tolerance, False)

    cdef void _close_row(self, Py_ssize_t j) noexcept:
        self.occupied[j] = False
        self.f[SOC, j] = 0.0
        self.f[CEIL, j] = 0.0
        self.f[POWER, j] = 0.0
        self.f[LIMIT, j] = 0.0
        self.mode[j] = 0
        self.f[A, j] = 0.0
        self.f[B, j] = 0.0
        self.f[SAFE_B, j] = 1.0
        self.sloped[j] = False
        self.f[LO, j] = 0.0
        self.f[HI, j] = 1.0
        self.f[CAP, j] = 1.0
        self.f[EFF, j] = 1.0
        self.f[INV_EFF, j] = 1.0
        self.f[TARGET, j] = 0.0
        self.f[NEXT_T, j] = INFINITY
        self.f[CRIT, j] = INFINITY
        self.f[KWH, j] = 0.0
        self.f[DEP, j] = NAN
        self.f[WAIT, j] = NAN

    def bind_connectors(self, list connectors, tuple code_status, check_transition, dict transitions,
                        available_status, dict plan_code, dict status_name):
        """What setting a connector's status takes (:meth:`set_status`,
        :meth:`write_status_events`): the engine's connectors by row, the status object of
        each status code, the transition check (raises on a move ``transitions`` does
        not allow), the moves allowed from each status (``TRANSITIONS``), the Available
        status, and each status's code (absent: 0) and name."""
        if len(connectors) != self.f.shape[1]:
            raise ValueError("one connector per row expected")
        self.connectors = connectors
        self.code_status = code_status
        self.check_transition = check_transition
        cdef Py_ssize_t i, k
        statuses = tuple(transitions)
        if len(statuses) > MAX_STATUSES:
            raise ValueError(f"at most {MAX_STATUSES} statuses")
        for i in range(len(statuses)):
            for k in range(len(statuses)):
                self.allowed[i][k] = statuses[k] in transitions[statuses[i]]
            self.status_plan_code[i] = plan_code.get(statuses[i], 0)
            self.status_available[i] = statuses[i] is available_status
        self.status_names = tuple(status_name[x] for x in statuses)
        self.statuses = statuses

    cdef Py_ssize_t _status_index(self, status) except -1:
        cdef Py_ssize_t i
        for i in range(len(self.statuses)):
            if self.statuses[i] is status:
                return i
        raise ValueError(f"unknown connector status {status!r}")

    cdef int _move(self, object conn, object status) except -1:
        """Set ``conn``'s status, checked against the allowed moves (``check_transition`` raises)."""
        cdef object old = conn.status
        if old is not status and not self.allowed[self._status_index(old)][self._status_index(status)]:
            self.check_transition(old, status)  # raises
        conn.status = status
        return 0

    def set_status(self, Py_ssize_t j, status, double t, list columns, dict codes, int64_t kind_code):
        """The engine's ``_set_status`` for row j's connector in one call: check the move
        (``check_transition`` raises on an invalid one), set the status, the row's
        Available flag and status code, and append its ``connector_status`` event row
        (time ``t``, the connector's vehicle, charger and connector, no value, the
        status's name) to the recorder's event columns (``Recorder.event_columns``, with
        its name codes ``codes``). Returns True.

        Returns False, changing nothing, where the row needs the engine's Python path: a
        name without a code yet (its first use decides its place among the categories)
        or one its column cannot hold yet.
        """
        cdef object conn, vehicle, found
        cdef int64_t v, d, c, o
        cdef Py_ssize_t start, i_new
        cdef array.array column, time, kind, vehicle_col, charger, connector, value, detail
        if j < 0 or j >= self.f.shape[1]:
            raise IndexError(f"row {j} out of range")
        if self.statuses is None:
            raise RuntimeError("bind_connectors first")
        conn = self.connectors[j]
        if conn.status is status:
            return True
        i_new = self._status_index(status)
        _check_event_columns(columns)
        time, kind, vehicle_col, charger, connector, value, detail = columns
        vehicle = conn.vehicle
        v = -1
        if vehicle is not None:
            found = codes.get(vehicle)
            if found is None:
                return False
            v = found
        found = codes.get(self.status_names[i_new])
        if found is None:
            return False
        d = found
        c = self.row_charger_code[j]
        o = self.row_connector_code[j]
        if kind_code < 0 or c < 0 or o < 0:
            return False
        if max(kind_code, v, c, o, d) > 32767:
            for column in (kind, vehicle_col, charger, connector, detail):
                if column.ob_descr.itemsize == 2:
                    return False  # the recorder widens its code columns first
        self._move(conn, status)
        self.available[j] = self.status_available[i_new]
        self.status[j] = self.status_plan_code[i_new]
        start = _grow_event_columns(columns, 1)
        time.data.as_doubles[start] = t
        value.data.as_doubles[start] = NAN
        _put(kind, start, kind_code)
        _put(vehicle_col, start, v)
        _put(charger, start, c)
        _put(connector, start, o)
        _put(detail, start, d)
        return True

    def write_status_events(self, list columns, int64_t kind_code):
        """Append the logged status changes to the recorder's event columns (time, kind,
        vehicle, charger, connector, value, detail: ``Recorder.event_columns``) as its
        ``connector_status`` rows (NaN value), in order; then set each touched
        connector's status to its row's code (see :meth:`bind_connectors`), its move
        checked as the engine's ``_set_status`` checks it. Returns True.

        Returns False, writing nothing, when a code is not drawn yet (a name's first use
        decides its place among the categories, so Python writes those rows) or a row is
        on a faulted charger (its status stays Faulted): the engine then writes the log
        row by row.
        """
        cdef Py_ssize_t i, n = self.n_status, start, n_touched
        cdef int64_t j
        cdef array.array time, kind, vehicle, charger, connector, value, detail
        _check_event_columns(columns)
        time, kind, vehicle, charger, connector, value, detail = columns
        if self.connectors is None:
            raise RuntimeError("bind_connectors first")
        if kind_code < 0:
            return False
        for i in range(n):
            j = self.status_row[i]
            if (self.row_faulted[j] or self.row_vehicle_code[j] < -1 or self.row_charger_code[j] < 0
                    or self.row_connector_code[j] < 0 or self.status_name_code[self.status_code[i]] < 0):
                return False
        start = _grow_event_columns(columns, n)
        n_touched = 0
        for i in range(n):
            j = self.status_row[i]
            time.data.as_doubles[start + i] = self.status_t[i]
            value.data.as_doubles[start + i] = NAN
            _put(kind, start + i, kind_code)
            _put(vehicle, start + i, self.row_vehicle_code[j])
            _put(charger, start + i, self.row_charger_code[j])
            _put(connector, start + i, self.row_connector_code[j])
            _put(detail, start + i, self.status_name_code[self.status_code[i]])
            if not self.row_mark[j]:
                self.row_mark[j] = True
                self.touched[n_touched] = j
                n_touched += 1
        for i in range(n_touched):
            self.row_mark[self.touched[i]] = False
        for i in range(n_touched):
            j = self.touched[i]
            self._move(self.connectors[j], self.code_status[self.status[j]])
        return True

    def status_log(self):
        """The connector status changes of the last call, as lists: (times, rows, codes)."""
        cdef Py_ssize_t i, n = self.n_status
        return ([self.status_t[i] for i in range(n)], [self.status_row[i] for i in range(n)],
                [self.status_code[i] for i in range(n)])

    def free_and_full(self, bint with_full, list free_views):
        """:func:`sim.slot_kernels.free_and_full` with the bound arrays (the engine's ``_free_rows``/``_full_rows``):
        the free connectors as a tuple of their views (``free_views[row]``: how the policy
        sees each row's connector), and the rows whose session is at its target, in
        plug-in order, as a list. A depot of hundreds of connectors asks at every
        decision, so the tuple is built here rather than from a list of rows."""
        cdef Py_ssize_t i, n_free, n_full
        cdef tuple free
        if len(free_views) != self.f.shape[1]:
            raise ValueError("one view per row expected")
        n_free, n_full = free_and_full(self.f, self.occupied, self.rank, self.available, self.claimed, with_full,
                                       self.free_rows, self.full_rows)
        free = PyTuple_New(n_free)
        for i in range(n_free):
            view = free_views[self.free_rows[i]]
            Py_INCREF(view)
            PyTuple_SET_ITEM(free, i, view)
        return free, [self.full_rows[i] for i in range(n_full)]

    def close_spans(self, const int64_t[::1] rows, double now, double tolerance, bint force):
        """The engine's ``_close_spans`` (:func:`sim.slot_kernels.close_spans`) with the bound arrays;
        each closed span is logged as its charger's level. Returns how many closed."""
        return self._close_spans(rows, now, tolerance, force)

    cdef Py_ssize_t _close_spans(self, const int64_t[::1] rows, double now, double tolerance, bint force) except -1:
        cdef Py_ssize_t i, closed
        closed = close_spans(self.f, self.span_kw, self.since, rows, self.row_charger, self.member_start,
                             self.members, self.seen, now, tolerance, force, self.span_charger, self.span_start,
                             self.span_value)
        for i in range(closed):
            self._level(self.charger_levels[self.span_charger[i]], self.span_start[i], self.span_value[i])
        return closed

    cdef double[::1] _allocate(self, double grid_kw, double now_s):
        """The strategy's output kW per row, as its table function gives it for this table and site
        (a view of the loop's scratch, valid until the next allocation)."""
        return builtin_view(self.strategy, self.max_kw, self.energy, self.eff, self.dep, self.hours,
                            self.current_kw, self.rank, self.member_row, self.member_group, self.caps, grid_kw, now_s,
                            self.margin_h, self.take, self.take_view, self.key_view, self.kept_order,
                            self.order_scratch)

    cdef tuple _alloc(self, double now, double eps_t, double tolerance, bint with_hours, bint waits, double epoch,
                      double grid_kw):
        """The engine's full allocation at ``now``, as ``_reallocate`` runs it for these runs.

        Fills the allocator's inputs, runs the strategy for a site of ``grid_kw``,
        re-plans the rows whose limit changed (or whose breakpoint is due, or, when
        ``waits``, whose vehicle waits for a SoC) and logs the status moves and closed
        charger spans. Returns (done, throttled); done is False, with nothing changed,
        when some session reached its target by rounding: the engine stops those in
        Python first.
        """
        cdef Py_ssize_t n_active, n_full, n, i
        cdef bint throttled
        cdef const double[::1] kw
        n_active, n_full = allocation_inputs(self.f, self.mode, self.sloped, self.occupied, with_hours, self.active,
                                             self.max_kw, self.energy, self.hours, self.rows_buf)
        if n_full:
            return False, False
        if not n_active:
            self._find_power()
            return True, False
        kw = self._allocate(grid_kw, epoch + now)
        n, throttled = changed_rows(self.f, self.active, kw, self.max_kw, now + eps_t, waits, self.rows_buf)
        if n:
            for i in range(n):
                self.kw_buf[i] = kw[self.rows_buf[i]]
            self._apply(n, now, tolerance)
        self._find_power()
        return True, throttled

    def run(self, double now, double timer_t, double timer_at, bint throttled, double until, double horizon,
            double eps_t, double tolerance, bint with_hours, double base_kw, double pv_kw, bint has_pv,
            double epoch, double grid_kw, bint targets, bint decide_first=False):
        """Handle breakpoints while they need no decision and come before ``until``.

        Each one is what the engine's timer event would do: integrate to it (and log
        the segment as ``_record_segment`` does), snap the due rows, step curve
        pieces, then either re-plan the due rows at their limits (when no row was
        throttled and none of them could now take more) or run the strategy for a site
        of ``grid_kw`` — the allocation the engine would run — and re-plan the rows it
        changed; then the timer moves to the earliest breakpoint. The results
        are in the public attributes.

        With ``targets`` (no plug swap can follow: swapping is off or no vehicle
        queues), a session reaching its target is handled here too: it is logged for
        the engine's vehicle table and its limit goes to 0, as ``_on_timer`` does.

        With ``decide_first`` (the engine's timer fired for the first breakpoint), a
        first breakpoint where a session reaches its target and a plug swap may follow
        is handled too, and the run stops after it with ``decide`` set: the engine asks
        its policy, as ``_on_timer`` does. Where that breakpoint needs a full allocation,
        it is left to the engine's update, after the decision (``needs_alloc``; the timer
        is then cleared, as ``_on_timer`` leaves it).
        """
        self._reset_logs()
        self._run(now, timer_t, timer_at, throttled, until, horizon, eps_t, tolerance, with_hours, base_kw, pv_kw,
                  has_pv, epoch, grid_kw, targets, decide_first)

    def allocate_run(self, double now, double eps_t, double tolerance, bint with_hours, bint waits, double epoch,
                     double grid_kw, double timer_t, double timer_at, double until, double horizon, double base_kw,
                     double pv_kw, bint has_pv, bint targets):
        """:meth:`_alloc`, then the timer set as the engine's ``_schedule_timer`` sets it, then
        :meth:`run` from there when the timer comes before ``until`` (pass -inf when the
        engine may not fast-forward now): the engine's allocation and what follows it, in
        one call, with one set of logs. Returns False, with nothing changed, where
        :meth:`_alloc` returns done False; else the results are in the public
        attributes (``timer_t`` and ``timer_at`` unchanged when the timer stays).
        """
        cdef bint done, throttled
        cdef double nxt = INFINITY
        cdef Py_ssize_t j
        self._reset_logs()
        done, throttled = self._alloc(now, eps_t, tolerance, with_hours, waits, epoch, grid_kw)
        if not done:
            return False
        for j in range(self.f.shape[1]):
            if self.occupied[j]:
                nxt = earliest(self.f)
                break
        if nxt > horizon:
            nxt = INFINITY
        if nxt != timer_t:
            timer_t = nxt
            if nxt < INFINITY:
                timer_at = now + (nxt - now if nxt - now > 0.0 else 0.0)
        self._run(now, timer_t, timer_at, throttled, until, horizon, eps_t, tolerance, with_hours, base_kw, pv_kw,
                  has_pv, epoch, grid_kw, targets, False)
        return True

    cdef int _run(self, double now, double timer_t, double timer_at, bint throttled, double until, double horizon,
                  double eps_t, double tolerance, bint with_hours, double base_kw, double pv_kw, bint has_pv,
                  double epoch, double grid_kw, bint targets, bint decide_first) except -1:
        """:meth:`run` without resetting the logs and counters."""
        cdef Py_ssize_t n_rows = self.f.shape[1], n_chargers = self.span_kw.shape[0]
        cdef Py_ssize_t j, i, n, n_due, n_active, p
        cdef double t, h, due, new, target, delivered, drawn
        cdef double curve_kw, nxt
        cdef signed char m
        cdef bint python, swap_target, may_decide, full, any_session
        cdef const double[::1] kw
        while timer_t < INFINITY and timer_at < until:
            if (self.n_levels + 6 + 3 * n_chargers > self.level_room
                    or self.n_status + 3 * n_rows > self.status_t.shape[0]
                    or self.n_targets + n_rows > self.target_t.shape[0]):
                break  # the logs are full: let the engine write them first
            t = timer_at
            h = (t - now) / 3600.0
            due = t + eps_t
            # look before leaping: nothing may change if this breakpoint needs Python
            python = swap_target = False
            may_decide = decide_first and self.steps == 0  # the timer's own breakpoint
            for j in range(n_rows):
                if not self.occupied[j]:
                    continue
                m = self.mode[j]
                new = soc_after(self.f, m, self.sloped[j], j, h) if m != 0 else self.f[SOC, j]
                self.ahead[j] = new
                target = self.f[TARGET, j]
                if self.f[NEXT_T, j] <= due:
                    if snapped_soc(new, self.f[CRIT, j], target) >= target - 1e-7 and not targets:
                        swap_target = True  # reaches its target, and a plug swap may follow
                        if not may_decide:
                            break
                elif m != 0 and new >= target - _EPS_SOC:
                    python = True  # would reach it by rounding: the engine stops it
                    break
            if python or (swap_target and not may_decide):
                break
            # the segment that ends here, recorded as the engine's _record_segment does
            if h > 0.0:
                delivered, drawn = self._integrate_ahead()
                self._log_segment(now, h, delivered, drawn, base_kw, pv_kw, has_pv)
                now = t
            timer_t = INFINITY
            self.steps += 1
            n_due = due_breakpoints(self.f, self.rank, due, self.due_rows, self.due_kind)
            n = 0
            for i in range(n_due):
                j = self.due_rows[i]
                if self.due_kind[i] == 1:  # at its target: the engine records it, then its limit goes to 0
                    self.target_t[self.n_targets] = now
                    self.target_row[self.n_targets] = j
                    self.n_targets += 1
                    self.rows_buf[n] = j
                    self.kw_buf[n] = 0.0
                    n += 1
                elif self.due_kind[i] == 2:
                    self._set_piece(j, self.f[SOC, j])
            if n:
                self._apply(n, now, tolerance)
            full = throttled
            if not throttled:
                # the due rows keep their limits; a full allocation only if one could now take more
                n = 0
                for i in range(n_due):
                    j = self.due_rows[i]
                    if self.f[SOC, j] < self.f[TARGET, j] - _EPS_SOC:
                        self.rows_buf[n] = j
                        self.kw_buf[n] = self.f[LIMIT, j]
                        n += 1
                if n:
                    self._apply(n, now, tolerance)
                    for i in range(n):
                        j = self.rows_buf[i]
                        if self.mode[j] == 1:
                            p = self._piece(self.row_curve[j], self.f[SOC, j])
                            curve_kw = self.line_a[p] + self.line_b[p] * self.f[SOC, j]
                            if curve_kw < 0.0:
                                curve_kw = 0.0
                            if curve_kw > self.f[LIMIT, j] + 1e-9:
                                full = True
                                break
            if full and swap_target:  # the allocation comes after the decision, in the engine's update
                self.needs_alloc = True
                timer_t = INFINITY
                self.decide = True
                break
            if full:
                self.allocations += 1
                n_active, _ = allocation_inputs(self.f, self.mode, self.sloped, self.occupied, with_hours,
                                                self.active, self.max_kw, self.energy, self.hours, self.rows_buf)
                if n_active:
                    kw = self._allocate(grid_kw, epoch + now)
                    n, throttled = changed_rows(self.f, self.active, kw, self.max_kw, now + eps_t, False,
                                                self.rows_buf)
                    if n:
                        for i in range(n):
                            self.kw_buf[i] = kw[self.rows_buf[i]]
                        self._apply(n, now, tolerance)
                else:
                    throttled = False
            # the timer moves to the earliest breakpoint, as the engine's _schedule_timer does
            nxt = INFINITY
            any_session = False
            for j in range(n_rows):
                if self.occupied[j]:
                    any_session = True
                if self.f[NEXT_T, j] < nxt:
                    nxt = self.f[NEXT_T, j]
            if not any_session or nxt > horizon:
                nxt = INFINITY
            if nxt != timer_t:
                timer_t = nxt
                if nxt < INFINITY:
                    timer_at = now + (nxt - now if nxt - now > 0.0 else 0.0)
            if swap_target:  # the engine decides now
                self.decide = True
                break
        self._find_power()
        self.now = now
        self.timer_t = timer_t
        self.timer_at = timer_at
        self.throttled = throttled
        return 0
