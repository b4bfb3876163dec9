"""The column form of an allocation: one numpy array per session attribute.

The simulator calls a strategy on every event, about 140,000 times per simulated
year, with tens to hundreds of connectors. Building a :class:`SessionNeed` per
session and looping over them in Python would dominate its run time, so every
built-in strategy is written once, as a *table kernel*: a function of the site, a
:class:`SessionTable` and the time that returns output kW per row. The simulator
keeps its session state in such arrays and calls the kernel directly (look it up
with :func:`get_table_strategy`); :func:`backend.charging.allocation.allocate`
converts ``SessionNeed`` objects with :meth:`SessionTable.from_needs` and calls the
same kernel, so there is no second copy of any strategy.

Contract of a kernel (callers rely on it):

* Rows with ``energy_kwh <= 0`` or ``max_kw <= 0`` are idle and get 0, so a caller may
  pass every connector slot, plugged in or not (idle slots: ``max_kw`` and
  ``energy_kwh`` 0, ``efficiency`` 1).
* It returns a new float64 array of output kW, one entry per row, and neither
  modifies its inputs nor keeps references to them: callers refill the same arrays
  in place between calls.
* ``rank`` breaks every tie, so the result does not depend on the row order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

from backend.charging import allocation
from backend.charging.allocation import Allocation, CapacityGroup, SessionNeed, SiteSnapshot

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

@dataclass(slots=True)
class SessionTable:
    """Column form of the sessions for one allocation; row i is one session (or one idle connector slot).

    Attributes:
        max_kw: float64, finite and >= 0: the most output kW the row can take now
            (see :class:`~backend.charging.allocation.SessionNeed`).
        efficiency: float64 in (0, 1]; idle rows hold 1.0.
        energy_kwh: float64; rows with ``energy_kwh <= 0`` or ``max_kw <= 0`` are idle
            and get 0.
        departure_s: float64 UTC POSIX seconds; NaN when the departure is unknown.
        hours_to_target: float64 hours to deliver ``energy_kwh`` at full power.
        current_kw: float64, the row's previous limit (for the preemption margin).
        rank: int64, unique per row: the tie-break order (the position of the session
            id among the sorted ids, for tables built from ``SessionNeed``).
        member_row: int64, flat capacity-group memberships: row ``member_row[k]``
            draws from group ``member_group[k]`` (an index into ``SiteSnapshot.groups``).
        member_group: int64, see ``member_row``.
    """

    max_kw: FloatArray
    efficiency: FloatArray
    energy_kwh: FloatArray
    departure_s: FloatArray
    hours_to_target: FloatArray
    current_kw: FloatArray
    rank: IntArray
    member_row: IntArray
    member_group: IntArray

    @classmethod
    def from_needs(cls, needs: Sequence[SessionNeed]) -> SessionTable:
        """The table of ``needs``, row i being ``needs[i]``; rank orders the session ids."""
        nan = math.nan
        columns = np.array(
            [
                [need.max_kw for need in needs],
                [need.efficiency for need in needs],
                [need.energy_kwh for need in needs],
                [nan if need.departure_s is None else need.departure_s for need in needs],
                [need.hours_to_target for need in needs],
                [need.current_kw for need in needs],
            ],
            dtype=np.float64,
        )  # one contiguous row per attribute
        ids = [need.session_id for need in needs]
        rank = np.empty(len(ids), dtype=np.int64)
        rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids), dtype=np.int64)
        groups = [need.groups for need in needs]
        member_group = np.array(list(chain.from_iterable(groups)), dtype=np.int64)
        member_row = np.repeat(np.arange(len(groups), dtype=np.int64), [len(of) for of in groups])
        return cls(
            max_kw=columns[0],
            efficiency=columns[1],
            energy_kwh=columns[2],
            departure_s=columns[3],
            hours_to_target=columns[4],
            current_kw=columns[5],
            rank=rank,
            member_row=member_row,
            member_group=member_group,
        )

    def __len__(self) -> int:
        return len(self.max_kw)


TableStrategy = Callable[[SiteSnapshot, SessionTable, float], FloatArray]
"""A kernel: ``(site, table, now) -> output kW per row`` (a new float64 array)."""


def register_table(name: str) -> Callable[[TableStrategy], TableStrategy]:
    """Register a table kernel under the name scenario files use.

    This also registers, through :func:`backend.charging.allocation.register`, the
    ``SessionNeed`` form of the strategy that :func:`~backend.charging.allocation.allocate`
    runs: it builds the table with :meth:`SessionTable.from_needs` and calls the kernel.
    """

    def wrap(kernel: TableStrategy) -> TableStrategy:
        allocation.register(name)(_needs_adapter(kernel))
        allocation._TABLE_REGISTRY[name] = kernel
        return kernel

    return wrap


def get_table_strategy(name: str) -> TableStrategy | None:
    """The table kernel registered as ``name``.

    Returns:
        The kernel, or None when the strategy was registered only in ``SessionNeed``
        form (with :func:`~backend.charging.allocation.register`); call it through
        :func:`~backend.charging.allocation.get_strategy` then.

    Raises:
        UnknownStrategyError: no strategy of that name exists at all.
    """
    allocation.get_strategy(name)  # loads the built-ins; names the choices if unknown
    return allocation._TABLE_REGISTRY.get(name)


def _needs_adapter(kernel: TableStrategy) -> allocation.Strategy:
    @functools.wraps(kernel)
    def strategy(site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
        return Allocation(kw=tuple(kernel(site, SessionTable.from_needs(needs), now).tolist()))

    return strategy


_caps_of: tuple[tuple[CapacityGroup, ...], FloatArray] = ((), np.zeros(0))


def group_caps(groups: tuple[CapacityGroup, ...]) -> FloatArray:
    """``max_kw`` of each group as a read-only array.

    Callers such as the simulator pass the same ``groups`` tuple on every call, so
    the array of the last tuple seen is kept and reused when the tuple is the same
    object (a tuple of frozen groups cannot change behind our back).
    """
    global _caps_of
    cached_groups, caps = _caps_of
    if groups is cached_groups:
        return caps
    caps = np.array([group.max_kw for group in groups], dtype=np.float64)
    caps.flags.writeable = False
    _caps_of = (groups, caps)
    return caps
