"""Smart-charging allocation: frozen snapshots in, per-session power limits out.

This is the one place where a charging strategy decides how much power each
plugged-in session may draw. It is a pure function of its inputs (no clock, no I/O),
so the simulator calls it on every change and the live back end calls it the same
way when a charger reports a new session or new needs.

Conventions (kept deliberately simple so that both callers agree):

* Power limits are **output kW** (what the connector delivers to the vehicle).
  The grid sees ``kw / efficiency``.
* Times are **UTC POSIX seconds** (floats); ``now`` and ``departure_s`` share that base.
* Capacity groups (a charger's shared power, a power cabinet) cap the *sum of output
  kW* of their member sessions. The site constraint caps the *sum of grid-side kW*
  (``kw / efficiency``) of all sessions at ``SiteSnapshot.grid_kw``.

Call :func:`allocate`; strategies register themselves in
:mod:`backend.charging.strategies` under the names used in scenario files. Each
built-in is one array kernel over a :class:`~backend.charging.table.SessionTable`
(the simulator calls it directly through ``get_table_strategy``); the functions
registered here for the built-ins only convert ``SessionNeed`` objects to that table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.errors import DepotsimError


class UnknownStrategyError(DepotsimError):
    """A strategy name that no module registered."""


@dataclass(frozen=True, slots=True)
class SessionNeed:
    """What one plugged-in session can take and still needs, at the time of the call.

    Attributes:
        session_id: stable id of the session (unique within one call).
        max_kw: the most output kW this session can take right now: the minimum of the
            connector rating, the vehicle's AC/DC limit and its charge curve at the
            current SoC. Always >= 0.
        efficiency: charger efficiency (output / input), in (0, 1].
        energy_kwh: energy still needed to reach the target SoC (output side, kWh).
        departure_s: planned departure (UTC POSIX seconds) or None if unknown.
        hours_to_target: hours needed to deliver ``energy_kwh`` when charging at the
            most the connector and the vehicle's charge curve allow (taper included).
            The caller knows the curve; the allocator uses this for laxity.
        groups: indices into ``SiteSnapshot.groups`` this session draws from
            (for example its charger and its power cabinet).
        current_kw: the limit the session got from the previous allocation (0 when new
            or suspended); priority strategies use it to avoid needless preemption.
    """

    session_id: str
    max_kw: float
    efficiency: float
    energy_kwh: float
    departure_s: float | None
    hours_to_target: float
    groups: tuple[int, ...] = ()
    current_kw: float = 0.0


@dataclass(frozen=True, slots=True)
class CapacityGroup:
    """Shared hardware power: the sum of member sessions' output kW must stay <= max_kw."""

    group_id: str
    max_kw: float


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    """The site as the allocator sees it.

    Attributes:
        grid_kw: grid-side kW available to charging (connection limit minus other
            loads, plus PV and stationary-battery discharge the site can use).
            ``math.inf`` when the site has no limit.
        groups: shared hardware limits (chargers, cabinets).
        prices: tariff change points ``(start_s, price_per_kwh)`` sorted by time; the
            first entry starts at or before ``now`` and the list covers at least every
            session's departure. Empty when the strategy does not need prices.
        preemption_margin_h: laxity-ordered strategies let a session that is charging
            keep its place until a waiting one's laxity is this many hours lower. Without
            it, sessions of nearly equal laxity swap at every event (a waiting session's
            laxity falls while a charging one's holds), which real chargers would see as a
            storm of start/stop commands.
        free_kw: grid-side kW the site has now at no energy cost: on-site PV above the
            other loads, which would otherwise be curtailed (part of ``grid_kw``).
            ``cost_aware`` lets sessions it holds back for a cheaper period charge from it.
    """

    grid_kw: float
    groups: tuple[CapacityGroup, ...] = ()
    prices: tuple[tuple[float, float], ...] = ()
    preemption_margin_h: float = 0.0
    free_kw: float = 0.0


@dataclass(frozen=True, slots=True)
class Allocation:
    """Per-session output kW limits, aligned with the ``needs`` passed to allocate()."""

    kw: tuple[float, ...]

    def by_session(self, needs: Sequence[SessionNeed]) -> dict[str, float]:
        """Map session ids to their limit (handy for the live back end and tests)."""
        return {need.session_id: kw for need, kw in zip(needs, self.kw, strict=True)}


Strategy = Callable[[SiteSnapshot, Sequence[SessionNeed], float], Allocation]

_REGISTRY: dict[str, Strategy] = {}
# Array kernels by name (see backend.charging.table); a name registered again through
# register() alone loses its kernel, so the two forms of a strategy never disagree.
_TABLE_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Strategy], Strategy]:
    """Register a strategy function under the name scenario files use.

    Strategies written against the array form register with
    :func:`backend.charging.table.register_table` instead, which registers the
    ``SessionNeed`` adapter here too.
    """

    def wrap(func: Strategy) -> Strategy:
        _REGISTRY[name] = func
        _TABLE_REGISTRY.pop(name, None)
        return func

    return wrap


def strategy_names() -> tuple[str, ...]:
    """Names of all registered strategies, in registration order."""
    _load_builtin()
    return tuple(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by name; raise UnknownStrategyError naming the choices."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown charging strategy {name!r}; expected one of {', '.join(_REGISTRY)}"
        ) from None


def allocate(strategy: str, site: SiteSnapshot, needs: Sequence[SessionNeed], now: float) -> Allocation:
    """Run the named strategy: sessions and limits in, per-session kW limits out."""
    return get_strategy(strategy)(site, needs, now)


def _load_builtin() -> None:
    # Importing the package registers every built-in strategy module.
    import backend.charging.strategies  # noqa: F401
