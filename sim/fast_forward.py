"""Fast-forward: run the breakpoints that need no decision in one compiled call.

Most engine events are charging breakpoints: a session's curve-bound power fell by
``reallocation_tolerance`` (a taper step), reached the next piece of its charge curve,
or crossed its limit. Such an event integrates the segment that ended, re-plans the
sessions at the breakpoint and, when power was freed while the grid binds, runs the
allocator again. Nothing in it needs Python: no vehicle leaves, no policy decides, no
vehicle row is written. Handled one by one as SimPy events, each cost ~60-90 µs of
interpreter time; the compiled loop (:mod:`sim.fast_forward_loop`) runs all of them
until the next event of any other process for a few microseconds each, plus the
allocator's own call where one is needed.

The steps are exactly those of the engine's Python path, in the same order and with
the same arithmetic (the per-row steps of :mod:`sim.slot_kernels`, and the strategy's
own table function for allocations, in its compiled form
:func:`backend.charging.strategies.fill_kernels.builtin`), so a run is the same
whether a breakpoint went through here or through SimPy; the tests hold every table
equal. Power-level changes are appended to the recorder's level log as they happen;
what else Python must record (connector status changes, targets reached) is logged,
and the engine writes it to its recorder after the call, in order, before anything
else happens.

The loop stops, before changing anything, at the first breakpoint that needs Python:
a session reaching its target while a plug swap may follow (the operator policy
decides), one that would reach it by rounding, the next event of another process, or
full logs. A session reaching its target with no swap possible is handled in the loop
and logged for the vehicle table. When the engine's timer fires for a breakpoint where
a swap may follow, the loop handles that one breakpoint and stops; the engine then asks
its policy (and runs any full allocation the breakpoint needs after the decision, as
its update does).
The engine then sets its timer there. It runs only for the built-in strategies whose
allocation depends on nothing but the sessions and the site (not ``cost_aware``, which
plans over the tariff), without a stationary battery (dispatched in Python at every
allocation) and while no vehicle waits for a SoC to depart.
"""

from __future__ import annotations

import numpy as np

from backend.charging.strategies import fill_kernels
from models.battery import ChargeCurve
from sim.fast_forward_loop import L_CHARGERS, L_DELIVERED, L_GRID, L_LOAD, L_PV, L_PV_CURTAILED, Loop

__all__ = [
    "L_CHARGERS", "L_DELIVERED", "L_GRID", "L_LOAD", "L_PV", "L_PV_CURTAILED", "CurveTable", "Logs", "Loop",
    "builtin_code", "builtin_kernel",
]  # fmt: skip

_HUGE_H = 1e18


def builtin_kernel(name: str) -> object:
    """The built-in table kernel of strategy ``name`` that may be fast-forwarded (None if none)."""
    from backend.charging.strategies import earliest_departure_first, equal_share, least_laxity_first, uncontrolled

    return {
        "uncontrolled": uncontrolled.uncontrolled,
        "equal_share": equal_share.equal_share,
        "earliest_departure_first": earliest_departure_first.earliest_departure_first,
        "least_laxity_first": least_laxity_first.least_laxity_first,
    }.get(name)


def builtin_code(name: str) -> int:
    """The code :func:`backend.charging.strategies.fill_kernels.builtin` knows strategy ``name`` by.

    The loop runs the built-in strategies in that one compiled call rather than
    through their Python functions; :func:`builtin_kernel` tells whether ``name``
    still is the built-in one.
    """
    return {
        "uncontrolled": fill_kernels.UNCONTROLLED,
        "equal_share": fill_kernels.EQUAL_SHARE,
        "earliest_departure_first": fill_kernels.EARLIEST_DEPARTURE_FIRST,
        "least_laxity_first": fill_kernels.LEAST_LAXITY_FIRST,
    }[name]


class Logs:
    """What a fast-forward leaves for the engine to record, and its scratch arrays.

    Power-level changes go straight into the recorder's level log; ``level_room`` is
    how many one call may add before it returns for the recorder to settle them.
    ``status_*`` hold the connector status changes, ``target_*`` the sessions that
    reached their target. A breakpoint adds at most 6 site levels and three per
    charger, three status changes per row and one target per row; there is room for at
    least ``steps``.
    """

    def __init__(self, rows: int, chargers: int, steps: int = 64) -> None:
        self.level_room = steps * (6 + 3 * chargers)
        status_rows = steps * 3 * rows
        self.status_t = np.zeros(status_rows)
        self.status_row = np.zeros(status_rows, dtype=np.int64)
        self.status_code = np.zeros(status_rows, dtype=np.int8)
        self.target_t = np.zeros(steps * rows)
        self.target_row = np.zeros(steps * rows, dtype=np.int64)
        # scratch: one span closing (charger, start, kW), rows and their kW, chargers seen
        self.span_charger = np.zeros(chargers, dtype=np.int64)
        self.span_start = np.zeros(chargers)
        self.span_kw = np.zeros(chargers)
        self.rows = np.zeros(rows, dtype=np.int64)
        self.kw = np.zeros(rows)
        self.ahead = np.zeros(rows)  # each row's SoC at the breakpoint ahead, as the look-ahead found it
        self.seen = np.zeros(chargers, dtype=bool)
        self.row_mark = np.zeros(rows, dtype=bool)
        self.touched = np.zeros(rows, dtype=np.int64)  # rows whose status a call's rows moved, first touch first
        self.take = np.zeros(rows)  # an allocation's wanted kW (and, where the fill works in place, its result)
        self.key = np.zeros(rows)  # ... and its order key
        self.order = np.arange(rows, dtype=np.int64)  # ... the rows' order, kept from one allocation to the next
        self.order_scratch = np.zeros(rows, dtype=np.int64)


class CurveTable:
    """Every charge curve a run uses, flat, so compiled code can step a row to its next piece.

    Curve ``c`` has pieces ``piece_start[c] .. piece_start[c + 1] - 1`` with lines
    ``a + b*s`` and hours per kWh from SoC 0 to each piece's start ``unit_h``, and
    breakpoint SoCs ``socs[soc_start[c] .. soc_start[c] + pieces]``.
    """

    def __init__(self) -> None:
        self._index: dict[int, int] = {}
        self._curves: list[ChargeCurve] = []
        self.soc_start = np.zeros(1, dtype=np.int64)
        self.piece_start = np.zeros(1, dtype=np.int64)
        self.socs = np.zeros(0)
        self.a = np.zeros(0)
        self.b = np.zeros(0)
        self.unit_h = np.zeros(0)

    def index(self, curve: ChargeCurve) -> tuple[int, bool]:
        """The curve's number, and whether it was added now (the arrays were replaced)."""
        key = id(curve)
        found = self._index.get(key)
        if found is not None:
            return found, False
        c = len(self._curves)
        self._curves.append(curve)  # keeps id(curve) from being reused
        self._index[key] = c
        lines = curve._lines
        self.soc_start = np.append(self.soc_start, self.soc_start[-1] + len(curve.socs))
        self.piece_start = np.append(self.piece_start, self.piece_start[-1] + len(lines))
        self.socs = np.append(self.socs, np.asarray(curve.socs, dtype=np.float64))
        self.a = np.append(self.a, [line[0] for line in lines])
        self.b = np.append(self.b, [line[1] for line in lines])
        # hours from SoC 0 to each piece's start (the curve also holds the one to its end)
        self.unit_h = np.append(self.unit_h, np.asarray(curve._unit_hours[: len(lines)], dtype=np.float64))
        return c, True

    def bind(self, loop: Loop) -> None:
        """Hand the current arrays to ``loop``."""
        loop.set_curves(self.soc_start, self.piece_start, self.socs, self.a, self.b, self.unit_h)
