"""Chargers, connectors and the connector status machine.

Statuses follow OCPP 1.6 ``ChargePointStatus`` so simulated chargers speak the same
language as real ones. The allowed transitions are one table (h11 style); the engine
asks :func:`check_transition` before every change, so an impossible sequence is a
loud bug rather than a silently wrong occupancy chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from scenarios.config import Scenario


class ConnectorStatus(StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    FAULTED = "Faulted"
    UNAVAILABLE = "Unavailable"


S = ConnectorStatus
_PLUGGED = {S.PREPARING, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE}

# status -> statuses it may move to
TRANSITIONS: dict[ConnectorStatus, frozenset[ConnectorStatus]] = {
    S.AVAILABLE: frozenset({S.PREPARING, S.FAULTED, S.UNAVAILABLE}),
    S.PREPARING: frozenset({S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FINISHING, S.AVAILABLE, S.FAULTED}),
    S.CHARGING: frozenset({S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FINISHING, S.FAULTED}),
    S.SUSPENDED_EV: frozenset({S.CHARGING, S.SUSPENDED_EVSE, S.FINISHING, S.FAULTED}),
    S.SUSPENDED_EVSE: frozenset({S.CHARGING, S.SUSPENDED_EV, S.FINISHING, S.FAULTED}),
    S.FINISHING: frozenset({S.AVAILABLE, S.PREPARING, S.FAULTED}),
    S.FAULTED: frozenset({S.AVAILABLE, S.UNAVAILABLE}),
    S.UNAVAILABLE: frozenset({S.AVAILABLE, S.FAULTED}),
}


class TransitionError(RuntimeError):
    """An impossible connector status change (a bug in the engine or a policy)."""


def check_transition(old: ConnectorStatus, new: ConnectorStatus) -> None:
    if new is not old and new not in TRANSITIONS[old]:
        raise TransitionError(f"connector cannot go from {old} to {new}")


@dataclass(slots=True, eq=False)
class Connector:
    """One outlet. ``vehicle`` is the id of the vehicle plugged in (or arriving)."""

    connector_id: str
    charger: Charger
    index: int
    status: ConnectorStatus = ConnectorStatus.AVAILABLE
    vehicle: str | None = None

    @property
    def is_free(self) -> bool:
        return self.status is ConnectorStatus.AVAILABLE and self.vehicle is None

    @property
    def is_plugged(self) -> bool:
        return self.status in _PLUGGED


@dataclass(slots=True, eq=False)
class Charger:
    """A dispenser with one or more connectors, possibly fed by a shared cabinet.

    Attributes:
        group_ids: capacity groups (charger-level and cabinet) its connectors draw
            from, as indices into the engine's capacity-group list.
    """

    charger_id: str
    group: str
    kind: str
    connector_kw: float
    efficiency: float
    charger_kw: float | None
    cabinet_id: str | None
    connectors: list[Connector] = field(default_factory=list)
    group_ids: tuple[int, ...] = ()
    faulted: bool = False

    @property
    def rated_kw(self) -> float:
        total = self.connector_kw * len(self.connectors)
        return min(total, self.charger_kw) if self.charger_kw else total


@dataclass(frozen=True, slots=True)
class CapacityLimit:
    """A shared hardware limit (charger or cabinet) in output kW."""

    limit_id: str
    max_kw: float


def build_chargers(config: Scenario) -> tuple[list[Charger], list[CapacityLimit]]:
    """Create chargers ('<group>-<nn>'), connectors ('<charger>/<n>') and hardware limits.

    A charger-level limit only becomes a capacity group when it actually binds (it is
    below the sum of its connectors), and likewise for cabinets; fewer groups keeps
    every allocation call cheaper.
    """
    chargers: list[Charger] = []
    limits: list[CapacityLimit] = []
    for gid, group in config.chargers.items():
        cabinet_index: int | None = None
        for i in range(group.count):
            charger_id = f"{gid}-{i + 1:02d}"
            groups: list[int] = []
            cabinet_id = None
            if group.charger_kw is not None and group.charger_kw < group.connector_kw * group.connectors_per_charger:
                groups.append(len(limits))
                limits.append(CapacityLimit(charger_id, group.charger_kw))
            if group.cabinet is not None:
                cab = group.cabinet
                number = i // cab.chargers_per_cabinet
                cabinet_id = f"{gid}-cab{number + 1:02d}"
                per_charger = min(group.charger_kw or math.inf, group.connector_kw * group.connectors_per_charger)
                members = min(cab.chargers_per_cabinet, group.count - number * cab.chargers_per_cabinet)
                if cab.max_kw < per_charger * members:
                    if i % cab.chargers_per_cabinet == 0:
                        cabinet_index = len(limits)
                        limits.append(CapacityLimit(cabinet_id, cab.max_kw))
                    assert cabinet_index is not None
                    groups.append(cabinet_index)
            charger = Charger(
                charger_id,
                gid,
                group.kind,
                group.connector_kw,
                group.effective_efficiency,
                group.charger_kw,
                cabinet_id,
                group_ids=tuple(groups),
            )
            charger.connectors = [
                Connector(f"{charger_id}/{c + 1}", charger, c + 1) for c in range(group.connectors_per_charger)
            ]
            chargers.append(charger)
    return chargers, limits
