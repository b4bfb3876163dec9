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
over the rows, costs more than the arithmetic, so all of it runs as C loops in
:mod:`backend.charging.strategies.fill_kernels`, compiled with Cython when the
package is installed: importing this module compiles nothing. The kernels take plain
arrays and floats; the functions here only pick the procedure.

The kernels repeat the floating-point operations of the numpy and list
implementations they replaced in the same order (numpy's pairwise summation for its
sums, sequential prefix sums), so results are bit-identical, with one deliberate
exception: rows with equal ``max_kw`` enter the water level in ``rank`` order, where
numpy's unstable sort left that order to the CPU's sort routine.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies.fill_kernels import demand_exceeds as _demand_exceeds
from backend.charging.strategies.fill_kernels import greedy_prefix as _greedy_prefix
from backend.charging.strategies.fill_kernels import greedy_serve as _greedy_serve
from backend.charging.strategies.fill_kernels import grid_fits as _grid_fits
from backend.charging.strategies.fill_kernels import order as _order  # noqa: F401  (tested against np.lexsort)
from backend.charging.strategies.fill_kernels import pairwise_sum as _pairwise_sum  # noqa: F401  (tested)
from backend.charging.strategies.fill_kernels import wanted as _wanted
from backend.charging.strategies.fill_kernels import water_level as _water_level
from backend.charging.strategies.fill_kernels import water_serve as _water_serve
from backend.charging.table import FloatArray, SessionTable, group_caps


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
    caps = group_caps(site.groups)
    if len(caps) and _demand_exceeds(take, table.member_row, table.member_group, caps):
        return _water_serve(take, table.efficiency, table.member_row, table.member_group, caps, grid_kw)
    return _water_level(take, table.efficiency, table.rank, grid_kw)
