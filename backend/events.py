"""Domain events: what happened to a charger, a connector or a transaction, as values.

The back-end core turns version-specific OCPP messages and its own decisions into these
version-neutral events and publishes them on a :class:`backend.bus.base.Bus`. Everything
downstream (the HTTP API, incident rules, other services listening on a message broker)
reads these and never an OCPP frame, so a 1.6J and a 2.0.1 charger look the same to it.

Every event is a frozen slotted dataclass with the common fields of :class:`DomainEvent`
(``at``: aware UTC time of the fact; ``charger_id``) plus its own, and a stable ``kind``
string (``"transaction.started"``). The kind is the wire name: it is the ``kind`` key in
JSON and the routing key on the broker, so a subscriber can bind to ``"transaction.*"``.
Renaming a kind is a breaking change for every subscriber; add a new kind instead.

What to call:

* :func:`to_json` / :func:`from_json` to cross a process boundary (JSON-ready dicts,
  datetimes as ISO 8601). :func:`from_json` checks every field against its type, because
  its input may come from another service; it raises :class:`InvalidEventError` (or
  :class:`UnknownEventKindError`) and nothing else.
* :data:`EVENT_TYPES` / :data:`KINDS`: the explicit registry. A new event class is added
  to ``_ALL_EVENTS`` below and nowhere else.

Error tree::

    DepotsimError
    └── InvalidEventError          a JSON payload is not a valid domain event
        └── UnknownEventKindError  its kind is not in the registry
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from backend.errors import DepotsimError

Unit = Literal["W", "A"]


class InvalidEventError(DepotsimError):
    """A JSON payload could not be decoded into a domain event (missing or mistyped field)."""


class UnknownEventKindError(InvalidEventError):
    """A kind that no event class registered: a typo, or a producer newer than this code."""

    def __init__(self, kind: object) -> None:
        self.kind = kind
        super().__init__(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """The fields every domain event has.

    Fields are keyword-only in every subclass, because several events carry neighbouring
    numbers (``energy_wh``, ``power_w``) that are easy to swap positionally.

    Attributes:
        at: when it happened, timezone-aware; stored as UTC (an aware time in another zone
            is converted, a naive one is a bug and raises ``ValueError``).
        charger_id: the charger's identity as the back end knows it (its OCPP identity).
    """

    kind: ClassVar[str] = ""

    at: datetime
    charger_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValueError(f"{type(self).__name__}.at must be a timezone-aware datetime, got {self.at!r}")
        if self.at.tzinfo is not UTC:
            # slots + frozen: the documented way to normalise a field in __post_init__
            object.__setattr__(self, "at", self.at.astimezone(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerBooted(DomainEvent):
    """A charger sent BootNotification and the back end answered it.

    Attributes:
        ocpp_version: ``"1.6"`` or ``"2.0.1"``, the protocol the connection speaks.
        vendor: chargePointVendor / chargingStation.vendorName.
        model: chargePointModel / chargingStation.model.
        boot_status: the answer we gave: ``"Accepted"``, ``"Pending"`` or ``"Rejected"``.
    """

    kind: ClassVar[str] = "charger.booted"

    ocpp_version: str
    vendor: str
    model: str
    boot_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerOnline(DomainEvent):
    """A charger's websocket connection was accepted (it may not have booted yet)."""

    kind: ClassVar[str] = "charger.online"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerOffline(DomainEvent):
    """A charger's connection ended or its heartbeat timed out.

    Attributes:
        reason: why we consider it offline, e.g. ``"connection_closed"``, ``"heartbeat_timeout"``.
    """

    kind: ClassVar[str] = "charger.offline"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorStatusChanged(DomainEvent):
    """A connector reported a new status (StatusNotification).

    Attributes:
        connector_id: the connector (0 = the charger as a whole, as in OCPP 1.6).
        status: the status as the charger reported it (``"Available"``, ``"Charging"``, ``"Faulted"``, ...).
        error_code: the OCPP 1.6 errorCode (``"NoError"`` when fine); ``None`` for 2.0.1, which has none.
    """

    kind: ClassVar[str] = "connector.status_changed"

    connector_id: int
    status: str
    error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionStarted(DomainEvent):
    """A charging transaction began.

    Attributes:
        tx_id: transaction id as a string (1.6 uses integers, 2.0.1 strings; one type downstream).
        connector_id: the connector it runs on.
        id_tag: the authorising token, or ``None`` when the charger started without one.
        meter_start_wh: the energy register at the start, in Wh.
    """

    kind: ClassVar[str] = "transaction.started"

    tx_id: str
    connector_id: int
    id_tag: str | None
    meter_start_wh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionUpdated(DomainEvent):
    """New meter values for a running transaction.

    Attributes:
        tx_id: the transaction.
        seq_no: increases by one per update of this transaction, so a consumer can spot gaps.
        energy_wh: energy delivered since the transaction started, in Wh.
        power_w: active power import in W, if the charger reported it.
        soc: the vehicle's state of charge in percent, if reported.
    """

    kind: ClassVar[str] = "transaction.updated"

    tx_id: str
    seq_no: int
    energy_wh: float
    power_w: float | None = None
    soc: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionEnded(DomainEvent):
    """A charging transaction stopped.

    Attributes:
        tx_id: the transaction.
        meter_stop_wh: the energy register at the end, in Wh.
        reason: the stop reason the charger gave (``"Local"``, ``"EVDisconnected"``, ...), if any.
    """

    kind: ClassVar[str] = "transaction.ended"

    tx_id: str
    meter_stop_wh: float
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsChanged(DomainEvent):
    """The back end set a new charging limit on a charger or connector.

    Attributes:
        connector_id: the connector, or 0 for the whole charger.
        limit: the new limit in ``unit``.
        unit: ``"W"`` or ``"A"``, as in OCPP's chargingRateUnit.
        source: who decided it, e.g. ``"smart_charging"``, ``"operator"``, ``"api"``.
    """

    kind: ClassVar[str] = "limits.changed"

    connector_id: int
    limit: float
    unit: Unit
    source: str

    def __post_init__(self) -> None:
        # Not super(): zero-argument super() breaks in slotted dataclasses before Python 3.14.
        DomainEvent.__post_init__(self)
        if self.unit not in ("W", "A"):
            raise ValueError(f"LimitsChanged.unit must be 'W' or 'A', got {self.unit!r}")


_ALL_EVENTS: tuple[type[DomainEvent], ...] = (
    ChargerBooted,
    ChargerOnline,
    ChargerOffline,
    ConnectorStatusChanged,
    TransactionStarted,
    TransactionUpdated,
    TransactionEnded,
    LimitsChanged,
)


def _build_registry(classes: tuple[type[DomainEvent], ...]) -> dict[str, type[DomainEvent]]:
    registry: dict[str, type[DomainEvent]] = {}
    for cls in classes:
        if not cls.kind or cls.kind in registry:
            raise RuntimeError(f"{cls.__name__} needs a unique, non-empty kind (got {cls.kind!r})")
        registry[cls.kind] = cls
    return registry


EVENT_TYPES: Mapping[str, type[DomainEvent]] = types.MappingProxyType(_build_registry(_ALL_EVENTS))
"""Every event class by its kind."""

KINDS: frozenset[str] = frozenset(EVENT_TYPES)
"""Every registered kind; subscribers' kind filters are checked against it."""

# Resolved once: the field types from_json checks input against.
_FIELD_TYPES: dict[type[DomainEvent], dict[str, Any]] = {
    cls: typing.get_type_hints(cls) for cls in EVENT_TYPES.values()
}


def to_json(event: DomainEvent) -> dict[str, Any]:
    """Return ``event`` as a JSON-ready dict: ``kind``, then its fields, ``at`` as ISO 8601."""
    out: dict[str, Any] = {"kind": event.kind}
    for f in fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def from_json(data: Mapping[str, Any]) -> DomainEvent:
    """Rebuild a domain event from :func:`to_json`'s output (possibly from another service).

    Keys the event class does not define are ignored, so a newer producer may add fields
    without breaking older consumers; missing or mistyped fields are errors.

    Raises:
        UnknownEventKindError: ``data["kind"]`` is missing from the registry.
        InvalidEventError: anything else wrong with the payload.
    """
    if not isinstance(data, Mapping):
        raise InvalidEventError(f"an event must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownEventKindError(kind)
    hints = _FIELD_TYPES[cls]
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING:
                raise InvalidEventError(f"{kind}: missing field {f.name!r}")
            continue
        values[f.name] = _decode_value(cls.kind, f.name, hints[f.name], data[f.name])
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"{kind}: {exc}") from exc


def _decode_value(kind: str, name: str, tp: Any, value: Any) -> Any:
    """Check one JSON value against a field's annotation and convert it (ISO text to datetime)."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        if value is None and type(None) in typing.get_args(tp):
            return None
        (inner,) = (arg for arg in typing.get_args(tp) if arg is not type(None))
        return _decode_value(kind, name, inner, value)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif tp is datetime:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
    elif tp is float:
        # JSON has one number type: an integral float may arrive as an int.
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this decoder was not taught
        raise TypeError(f"{kind}.{name}: no JSON decoding for {tp!r}")
    raise InvalidEventError(f"{kind}: field {name!r} expected {_describe(tp)}, got {value!r}")


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(tp))
    if tp is datetime:
        return "an ISO 8601 timestamp with offset"
    return getattr(tp, "__name__", repr(tp))
