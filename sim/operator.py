"""The operator-agent interface: observe the depot, return plug actions.

An operator policy decides which queued vehicle goes on which free connector, and
(with plug swapping) when a vehicle that reached its target is unplugged to make room.
The engine calls :meth:`OperatorPolicy.decide` whenever the queue is not empty and
something changed (an arrival, a freed or repaired connector, a vehicle reaching its
target). A policy sees only the frozen :class:`DepotObservation`, so it can be written,
tested and swapped in from Python without touching the engine::

    class MyPolicy:
        def decide(self, obs):
            ...
            return [PlugIn("city-007", "dc150-03/1")]

    run_scenario("scenarios/bus_depot.yaml", policy=MyPolicy())

The engine checks every action and raises :class:`~sim.errors.PolicyError` for an
impossible one (unknown ids, busy or faulted connector, AC/DC mismatch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

from models.fast_init import init_by_slot


@init_by_slot
@dataclass(frozen=True, slots=True)
class WaitingVehicle:
    """A vehicle in the queue for a connector."""

    vehicle_id: str
    queued_at: float
    next_departure: float | None
    soc: float
    kinds: frozenset[str]


@init_by_slot
@dataclass(frozen=True, slots=True)
class FreeConnector:
    """A connector ready for a vehicle."""

    connector_id: str
    charger_id: str
    kind: str
    kw: float


@init_by_slot
@dataclass(frozen=True, slots=True)
class FullVehicle:
    """A plugged vehicle at its target SoC (a plug-swap candidate)."""

    vehicle_id: str
    connector_id: str
    kind: str
    next_departure: float | None


@init_by_slot
@dataclass(frozen=True, slots=True)
class DepotObservation:
    """What a policy sees. Times are seconds after the run start.

    Attributes:
        now: current simulated time.
        waiting: queued vehicles, in the order they joined the queue.
        free: free connectors, in charger order.
        full: plugged vehicles at target (empty unless plug swapping is enabled).
        plug_swap: whether the scenario allows plug swapping.
        ordered: ``waiting`` sorted by the policy's :meth:`QueuePolicy.queue_key`, when
            the engine keeps the queue in that order for it (see there); else None.
    """

    now: float
    waiting: tuple[WaitingVehicle, ...]
    free: tuple[FreeConnector, ...]
    full: tuple[FullVehicle, ...]
    plug_swap: bool
    ordered: tuple[WaitingVehicle, ...] | None = None


@init_by_slot
@dataclass(frozen=True, slots=True)
class PlugIn:
    """Plug a queued vehicle into a free connector now."""

    vehicle_id: str
    connector_id: str


@init_by_slot
@dataclass(frozen=True, slots=True)
class Swap:
    """Unplug a full vehicle and plug a queued one into its connector after the move delay."""

    unplug_vehicle_id: str
    plug_vehicle_id: str


Action = PlugIn | Swap


class OperatorPolicy(Protocol):
    def decide(self, obs: DepotObservation) -> Sequence[Action]:
        """Return the plug actions to carry out now (possibly none)."""
        ...


class QueuePolicy:
    """Serve the queue in :meth:`order`; first compatible free connector; then swaps.

    Subclasses choose the queue order, a function of the waiting vehicles alone, in
    one of two ways:

    - a :meth:`queue_key` of one vehicle's view (the order is the stable sort by it).
      The engine then keeps its queue sorted by that key as vehicles join, leave or
      change their next departure, and hands the order over as the observation's
      ``ordered``: a decision costs no sort, where a sort of a few hundred queued
      vehicles per decision would cost more than the rest of the decision;
    - or :meth:`order` itself. While the observation's ``waiting`` is the same tuple
      (the engine passes the same one until the queue changes), it is not called again.

    Swaps hand the connector of the full vehicle that departs last to the next waiting
    vehicle.
    """

    name = "queue"
    _last: tuple[Sequence[WaitingVehicle], Sequence[WaitingVehicle]] | None = None

    def queue_key(self, vehicle: WaitingVehicle) -> tuple[float, ...] | None:
        """A sort key of the queue order (None, the default: queue order)."""
        return None

    def order(self, waiting: Sequence[WaitingVehicle]) -> Sequence[WaitingVehicle]:
        """The waiting vehicles in the order they are served: stably sorted by :meth:`queue_key`."""
        if type(self).queue_key is QueuePolicy.queue_key:
            return list(waiting)
        return sorted(waiting, key=self.queue_key)

    def keeps_sorted(self) -> bool:
        """Whether the order is :meth:`queue_key`'s, so the engine may keep the queue sorted by it."""
        return type(self).queue_key is not QueuePolicy.queue_key and type(self).order is QueuePolicy.order

    def decide(self, obs: DepotObservation) -> list[Action]:
        actions: list[Action] = []
        free = list(obs.free)
        unserved: list[WaitingVehicle] = []
        ordered = obs.ordered
        if ordered is None:
            last = self._last
            if last is not None and last[0] is obs.waiting:
                ordered = last[1]
            else:
                ordered = self.order(obs.waiting)
                self._last = (obs.waiting, ordered)
        for k, vehicle in enumerate(ordered):
            if not free:  # the rest of the queue can only be served by swaps
                unserved.extend(ordered[k:])
                break
            for i, conn in enumerate(free):
                if conn.kind in vehicle.kinds:
                    actions.append(PlugIn(vehicle.vehicle_id, conn.connector_id))
                    del free[i]
                    break
            else:
                unserved.append(vehicle)
        if obs.plug_swap and unserved and obs.full:
            try:  # latest departure first, ties in the given order (reverse sorts stay stable)
                full = sorted(obs.full, key=_NEXT_DEPARTURE, reverse=True)
            except TypeError:  # a vehicle without a next departure: it goes first
                full = sorted(obs.full, key=lambda f: -(f.next_departure if f.next_departure is not None else 1e18))
            for vehicle in unserved:
                if not full:
                    break
                for i, candidate in enumerate(full):
                    if candidate.kind in vehicle.kinds:
                        actions.append(Swap(candidate.vehicle_id, vehicle.vehicle_id))
                        del full[i]
                        break
        return actions


class FirstFreePolicy(QueuePolicy):
    """First come, first served."""

    name = "first_free"


class EarliestDeparturePolicy(QueuePolicy):
    """The queued vehicle that leaves soonest plugs in first."""

    name = "earliest_departure"

    def queue_key(self, vehicle: WaitingVehicle) -> tuple[float, ...]:
        """By next departure (none: last), ties by time queued (then by queue position)."""
        departure = vehicle.next_departure
        return (departure if departure is not None else math.inf, vehicle.queued_at)


_NEXT_DEPARTURE = attrgetter("next_departure")

BUILTIN_POLICIES: dict[str, type[QueuePolicy]] = {
    "first_free": FirstFreePolicy,
    "earliest_departure": EarliestDeparturePolicy,
}
