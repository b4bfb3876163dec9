"""Smart charging in the live back end, sans-I/O: transactions in, SetChargingProfile payloads out.

The simulator and the live server share one allocator (:func:`backend.charging.allocation.allocate`);
this module is the live server's side of it. :class:`SiteModel` is the depot as configured
(grid limit, chargers, cabinets), validated once. :class:`SmartCharging` tracks the open
transactions the chargers report and, on :meth:`SmartCharging.recompute`, turns the
allocator's output kW into ready-to-send OCPP 1.6 / 2.0.1 ``SetChargingProfile`` payloads
(:class:`ProfileCommand`). It opens no socket and reads no clock but the injected one; the
websocket server (:mod:`backend.server.ocpp_server`) sends the commands and reports back.

Decisions and why:

* **Only changes are sent.** A charger that gets a profile on every meter value spends
  its flash and its operator's patience. A limit is resent when it *falls* at all, or
  *rises* by more than ``SiteModel.resend_threshold_kw``. Skipping small rises but never
  falls keeps the sum of the limits the chargers hold at or below the allocation, so the
  grid limit holds even for what was not resent.
* **Decreases first.** :meth:`SmartCharging.recompute` orders the commands so that the
  limits that fall come before the ones that rise; a driver sending them in order never
  has the site above its limit between two commands.
* **Limits are rounded down.** Amps are ``W / (phases x voltage)`` floored to 0.1 A (the
  1.6 schema's ``multipleOf``), watts floored to whole watts: rounding up could push the
  site a few watts over.
* **Unknown needs are large.** The back end rarely knows a vehicle's energy need or
  departure, so a session asks for its charger's maximum until it ends. That is what a
  depot load manager does without telematics; richer needs can come in later through
  :meth:`SmartCharging.on_meter`.
* **One profile id per connector.** A new TxProfile with the same id and stack level
  replaces the old one on the charger (1.6 §5.16.2, 2.0.1 K01), so nothing piles up.

Error tree::

    DepotsimError
    └── SiteConfigError    the site configuration holds an impossible value; names the field
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any, Final, Literal

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, allocate, strategy_names
from backend.errors import DepotsimError
from backend.ocpp.framing import OcppVersion
from sim.clock import Clock

RateUnit = Literal["W", "A"]
CurrentType = Literal["AC", "DC"]

DEFAULT_EFFICIENCY: Final[Mapping[str, float]] = {"DC": 0.94, "AC": 0.88}
"""Output / input when a charger does not say: typical of depot DC and AC chargers."""

UNKNOWN_NEED_KWH: Final = 1.0e6
"""The energy asked for when the vehicle's need is unknown: more than any battery holds."""

TX_STACK_LEVEL: Final = 1
MAX_STACK_LEVEL: Final = 0
STATION_PROFILE_ID: Final = 1
"""The profile id of a charger's ChargePointMaxProfile / ChargingStationMaxProfile; TxProfiles count up from 2."""


class SiteConfigError(DepotsimError):
    """The site configuration holds an impossible value; the message names the field path."""

    def __init__(self, path: str, expected: str, got: object, source: str = "site") -> None:
        self.source, self.path, self.expected, self.got = source, path, expected, got
        super().__init__(f"{source}: {path}: expected {expected}, got {got!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerSpec:
    """One charger as smart charging sees it.

    Attributes:
        max_kw: the most output kW the charger delivers, shared by its connectors.
        current: ``"DC"`` or ``"AC"``; sets the default efficiency.
        efficiency: output / input in (0, 1]; None takes :data:`DEFAULT_EFFICIENCY`.
        unit: the chargingRateUnit the charger accepts (what it advertises in
            ChargingScheduleAllowedChargingRateUnit / its device model).
        phases: phases used to turn watts into amps (unit ``"A"`` only).
        voltage_v: phase-to-neutral voltage used to turn watts into amps.
        cabinet: the power cabinet feeding it, a key of ``SiteModel.cabinets``, or None.
        station_max_kw: when set, the charger gets a ChargePointMaxProfile (1.6) /
            ChargingStationMaxProfile (2.0.1) with this limit, and its sessions share it.
    """

    max_kw: float
    current: CurrentType = "DC"
    efficiency: float | None = None
    unit: RateUnit = "W"
    phases: int = 3
    voltage_v: float = 230.0
    cabinet: str | None = None
    station_max_kw: float | None = None

    @property
    def eta(self) -> float:
        """The efficiency to use: the configured one or the default for the current type."""
        return self.efficiency if self.efficiency is not None else DEFAULT_EFFICIENCY[self.current]

    @property
    def capacity_kw(self) -> float:
        """The output kW its connectors share: the rating, capped by the station limit."""
        return self.max_kw if self.station_max_kw is None else min(self.max_kw, self.station_max_kw)


DEFAULT_CHARGER: Final = ChargerSpec(max_kw=150.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteModel:
    """The depot's power configuration, validated once (see :func:`site_from_mapping`).

    Attributes:
        grid_kw: grid-side kW available to charging; the allocation never exceeds it.
        strategy: a registered charging strategy name (``equal_share`` by default).
        chargers: per charger id, its spec.
        default_charger: the spec of a charger not listed (a depot that adds chargers
            should not leave them uncontrolled).
        cabinets: cabinet id -> the output kW its chargers share.
        resend_threshold_kw: how much a limit must rise before it is resent.
    """

    grid_kw: float
    strategy: str = "equal_share"
    chargers: Mapping[str, ChargerSpec] = field(default_factory=dict)
    default_charger: ChargerSpec = DEFAULT_CHARGER
    cabinets: Mapping[str, float] = field(default_factory=dict)
    resend_threshold_kw: float = 0.1

    def __post_init__(self) -> None:
        if not _number(self.grid_kw) or self.grid_kw < 0:
            raise SiteConfigError("grid_kw", "a number >= 0", self.grid_kw)
        if self.strategy not in strategy_names():
            raise SiteConfigError("strategy", f"one of {', '.join(strategy_names())}", self.strategy)
        if not _number(self.resend_threshold_kw) or self.resend_threshold_kw < 0:
            raise SiteConfigError("resend_threshold_kw", "a number >= 0", self.resend_threshold_kw)
        for cabinet, kw in self.cabinets.items():
            if not _number(kw) or kw <= 0:
                raise SiteConfigError(f"cabinets.{cabinet}", "a number > 0 (kW)", kw)
        _check_charger("default_charger", self.default_charger, self.cabinets)
        for charger_id, spec in self.chargers.items():
            _check_charger(f"chargers.{charger_id}", spec, self.cabinets)
        object.__setattr__(self, "chargers", dict(self.chargers))
        object.__setattr__(self, "cabinets", dict(self.cabinets))

    def charger(self, charger_id: str) -> ChargerSpec:
        """The spec of ``charger_id``, or the default for a charger not listed."""
        return self.chargers.get(charger_id, self.default_charger)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_charger(path: str, spec: ChargerSpec, cabinets: Mapping[str, float]) -> None:
    if not _number(spec.max_kw) or spec.max_kw <= 0:
        raise SiteConfigError(f"{path}.max_kw", "a number > 0 (kW)", spec.max_kw)
    if spec.current not in DEFAULT_EFFICIENCY:
        raise SiteConfigError(f"{path}.current", "'AC' or 'DC'", spec.current)
    if spec.efficiency is not None and (not _number(spec.efficiency) or not 0 < spec.efficiency <= 1):
        raise SiteConfigError(f"{path}.efficiency", "a number in (0, 1]", spec.efficiency)
    if spec.unit not in ("W", "A"):
        raise SiteConfigError(f"{path}.unit", "'W' or 'A'", spec.unit)
    if isinstance(spec.phases, bool) or spec.phases not in (1, 2, 3):
        raise SiteConfigError(f"{path}.phases", "1, 2 or 3", spec.phases)
    if not _number(spec.voltage_v) or spec.voltage_v <= 0:
        raise SiteConfigError(f"{path}.voltage_v", "a number > 0 (V)", spec.voltage_v)
    if spec.cabinet is not None and spec.cabinet not in cabinets:
        raise SiteConfigError(f"{path}.cabinet", f"one of the cabinets ({', '.join(cabinets) or 'none'})", spec.cabinet)
    if spec.station_max_kw is not None and (not _number(spec.station_max_kw) or spec.station_max_kw <= 0):
        raise SiteConfigError(f"{path}.station_max_kw", "a number > 0 (kW) or null", spec.station_max_kw)


_CHARGER_KEYS: Final = frozenset(
    {"max_kw", "current", "efficiency", "unit", "phases", "voltage_v", "cabinet", "station_max_kw"}
)
_SITE_KEYS: Final = frozenset({"grid_kw", "strategy", "chargers", "default_charger", "cabinets", "resend_threshold_kw"})


def site_from_mapping(data: object, source: str = "site") -> SiteModel:
    """Build a :class:`SiteModel` from parsed YAML/JSON, naming ``source`` and the field in every error.

    Example::

        grid_kw: 400
        strategy: equal_share
        cabinets: {CAB-1: 300}
        default_charger: {max_kw: 150}
        chargers:
          CP-1: {max_kw: 150, cabinet: CAB-1, station_max_kw: 120}
          AC-1: {max_kw: 22, current: AC, unit: A, phases: 3, voltage_v: 230}

    Raises:
        SiteConfigError: a missing, unknown or impossible field.
    """
    try:
        return _site_from_mapping(data, source)
    except SiteConfigError as err:
        if err.source == source:
            raise
        raise SiteConfigError(err.path, err.expected, err.got, source) from None


def _site_from_mapping(data: object, source: str) -> SiteModel:
    root = _mapping(data, "(top level)", source)
    _no_unknown(root, _SITE_KEYS, "", source)
    if "grid_kw" not in root:
        raise SiteConfigError("grid_kw", "the grid limit in kW", None, source)
    cabinets = _mapping(root.get("cabinets", {}), "cabinets", source)
    chargers = {
        str(charger_id): _charger_spec(spec, f"chargers.{charger_id}", source)
        for charger_id, spec in _mapping(root.get("chargers", {}), "chargers", source).items()
    }
    kwargs: dict[str, Any] = {
        "grid_kw": root["grid_kw"],
        "chargers": chargers,
        "cabinets": {str(k): v for k, v in cabinets.items()},
    }
    for key in ("strategy", "resend_threshold_kw"):
        if key in root:
            kwargs[key] = root[key]
    if "default_charger" in root:
        kwargs["default_charger"] = _charger_spec(root["default_charger"], "default_charger", source)
    return SiteModel(**kwargs)


def _charger_spec(data: object, path: str, source: str) -> ChargerSpec:
    spec = _mapping(data, path, source)
    _no_unknown(spec, _CHARGER_KEYS, f"{path}.", source)
    if "max_kw" not in spec:
        raise SiteConfigError(f"{path}.max_kw", "the charger's output kW", None, source)
    try:
        return ChargerSpec(**spec)
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise SiteConfigError(path, "charger fields", str(exc), source) from None


def _mapping(data: object, path: str, source: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SiteConfigError(path, "a mapping", data, source)
    return dict(data)


def _no_unknown(data: Mapping[str, Any], allowed: frozenset[str], prefix: str, source: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise SiteConfigError(f"{prefix}{unknown[0]}", f"one of {', '.join(sorted(allowed))}", "unknown field", source)


# -- the running state -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileCommand:
    """One SetChargingProfile to send, ready for :meth:`OcppServer.call`.

    Attributes:
        charger_id: where to send it.
        connector_id: the 1.6 connectorId / 2.0.1 evseId (0 for a station profile).
        tx_id: the transaction it limits, or None for a station profile.
        purpose: ``TxProfile``, ``ChargePointMaxProfile`` or ``ChargingStationMaxProfile``.
        limit_kw: the output kW the limit stands for (after rounding down).
        unit: the chargingRateUnit of ``limit``.
        limit: the value in the payload.
        payload: the SetChargingProfile request payload, schema-valid for ``version``.
        version: the connection's OCPP version.
        rising: the limit goes up (or is new); a driver sends these only once the others
            were answered, so the site never peaks between two commands.
    """

    charger_id: str
    connector_id: int
    tx_id: str | None
    purpose: str
    limit_kw: float
    unit: RateUnit
    limit: float
    payload: dict[str, Any]
    version: OcppVersion
    rising: bool = False
    action: str = "SetChargingProfile"


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationEntry:
    """One running transaction's current limit, for the API.

    ``limit_kw`` / ``limit`` are None until the first profile for it is computed.
    """

    charger_id: str
    connector_id: int
    tx_id: str
    limit_kw: float | None
    unit: RateUnit
    limit: float | None


@dataclass(slots=True)
class _Tx:
    charger_id: str
    connector_id: int
    tx_id: str
    version: OcppVersion
    started_s: float
    power_w: float | None = None
    soc: float | None = None
    energy_wh: float | None = None
    sent: ProfileCommand | None = None


class SmartCharging:
    """The live site's allocator state: which transactions run, and the limits they were given.

    Feed it with :meth:`on_transaction_started`, :meth:`on_meter` and
    :meth:`on_transaction_ended` as the chargers report; then call :meth:`recompute` and
    send what it returns, in order. Report a profile the charger did not accept with
    :meth:`on_profile_failed`, so the next recompute sends it again. Not thread-safe: one
    driver (the server's event loop) calls it.
    """

    def __init__(self, site: SiteModel, clock: Clock) -> None:
        """Start with no transactions; ``clock`` stamps station profiles and feeds the allocator."""
        self.site = site
        self._clock = clock
        self._txs: dict[tuple[str, str], _Tx] = {}
        self._profile_ids: dict[tuple[str, int], int] = {}
        self._station_sent: set[str] = set()

    # -- inputs ----------------------------------------------------------------------------------

    def on_transaction_started(
        self, charger_id: str, connector_id: int, tx_id: str, version: OcppVersion | str = OcppVersion.V16
    ) -> None:
        """A transaction began on ``connector_id`` (1.6 connector / 2.0.1 EVSE); idempotent.

        A transaction on connector 0 cannot take a TxProfile (it names no connector), nor can
        a 1.6 one whose id is not an integer (the 1.6 profile's transactionId is one), so
        neither is tracked.
        """
        version = OcppVersion(version)
        if connector_id < 1 or (charger_id, tx_id) in self._txs:
            return
        if version is OcppVersion.V16 and not tx_id.lstrip("-").isdigit():
            return
        now_s = self._clock.now().timestamp()
        self._txs[(charger_id, tx_id)] = _Tx(charger_id, connector_id, tx_id, version, now_s)

    def on_meter(
        self,
        charger_id: str,
        tx_id: str,
        power_w: float | None = None,
        soc: float | None = None,
        energy_wh: float | None = None,
    ) -> None:
        """New readings of a running transaction; kept for the needs (unknown transactions are ignored)."""
        tx = self._txs.get((charger_id, tx_id))
        if tx is None:
            return
        tx.power_w = power_w if power_w is not None else tx.power_w
        tx.soc = soc if soc is not None else tx.soc
        tx.energy_wh = energy_wh if energy_wh is not None else tx.energy_wh

    def on_transaction_ended(self, charger_id: str, tx_id: str) -> None:
        """A transaction stopped: its power goes back to the others at the next recompute."""
        self._txs.pop((charger_id, tx_id), None)

    def on_profile_failed(self, command: ProfileCommand) -> None:
        """The charger did not accept ``command``: forget it was sent, so the next recompute retries."""
        if command.tx_id is None:
            self._station_sent.discard(command.charger_id)
            return
        tx = self._txs.get((command.charger_id, command.tx_id))
        if tx is not None and tx.sent is command:
            tx.sent = None

    # -- outputs ---------------------------------------------------------------------------------

    def recompute(self) -> list[ProfileCommand]:
        """Allocate the grid over the running transactions; return the profiles that changed.

        Station profiles come first, then falling limits, then rising ones (see the module
        docstring). The limits of all transactions, as last returned, sum (grid side) to
        at most ``site.grid_kw``.
        """
        txs = sorted(self._txs.values(), key=lambda tx: (tx.started_s, tx.charger_id, tx.tx_id))
        station = self._station_commands(txs)
        if not txs:
            return station
        groups: list[CapacityGroup] = []
        group_index: dict[str, int] = {}

        def group(group_id: str, max_kw: float) -> int:
            if group_id not in group_index:
                group_index[group_id] = len(groups)
                groups.append(CapacityGroup(group_id, max_kw))
            return group_index[group_id]

        needs = []
        for tx in txs:
            spec = self.site.charger(tx.charger_id)
            members = [group(f"charger:{tx.charger_id}", spec.capacity_kw)]
            if spec.cabinet is not None:
                members.append(group(f"cabinet:{spec.cabinet}", self.site.cabinets[spec.cabinet]))
            needs.append(
                SessionNeed(
                    session_id=f"{tx.charger_id}/{tx.tx_id}",
                    max_kw=spec.max_kw,
                    efficiency=spec.eta,
                    energy_kwh=UNKNOWN_NEED_KWH,
                    departure_s=None,
                    hours_to_target=UNKNOWN_NEED_KWH / spec.max_kw,
                    groups=tuple(members),
                    current_kw=tx.sent.limit_kw if tx.sent is not None else 0.0,
                )
            )
        snapshot = SiteSnapshot(grid_kw=self.site.grid_kw, groups=tuple(groups))
        allocation = allocate(self.site.strategy, snapshot, needs, self._clock.now().timestamp())
        falling: list[ProfileCommand] = []
        rising: list[ProfileCommand] = []
        for tx, kw in zip(txs, allocation.kw, strict=True):
            command = self._tx_command(tx, kw)
            previous = tx.sent
            if previous is not None and command.limit_kw < previous.limit_kw - 1e-9:
                falling.append(command)
            elif previous is None or command.limit_kw - previous.limit_kw > self.site.resend_threshold_kw:
                command = replace(command, rising=True)
                rising.append(command)
            else:
                continue
            tx.sent = command
        return station + falling + rising

    def current_allocation(self) -> list[AllocationEntry]:
        """Every running transaction with the limit it was last given, by start time."""
        txs = sorted(list(self._txs.values()), key=lambda tx: (tx.started_s, tx.charger_id, tx.tx_id))
        return [
            AllocationEntry(
                charger_id=tx.charger_id,
                connector_id=tx.connector_id,
                tx_id=tx.tx_id,
                limit_kw=None if tx.sent is None else tx.sent.limit_kw,
                unit=self.site.charger(tx.charger_id).unit,
                limit=None if tx.sent is None else tx.sent.limit,
            )
            for tx in txs
        ]

    # -- payloads --------------------------------------------------------------------------------

    def _tx_command(self, tx: _Tx, kw: float) -> ProfileCommand:
        spec = self.site.charger(tx.charger_id)
        limit, limit_kw = _limit(spec, kw)
        profile_id = self._profile_id(tx.charger_id, tx.connector_id)
        payload = _payload(tx.version, spec, "TxProfile", tx.connector_id, profile_id, limit, tx.tx_id, None)
        return ProfileCommand(
            charger_id=tx.charger_id,
            connector_id=tx.connector_id,
            tx_id=tx.tx_id,
            purpose="TxProfile",
            limit_kw=limit_kw,
            unit=spec.unit,
            limit=limit,
            payload=payload,
            version=tx.version,
        )

    def _station_commands(self, txs: list[_Tx]) -> list[ProfileCommand]:
        """A station profile for each charger that has one configured and has not got it yet."""
        out: list[ProfileCommand] = []
        for tx in txs:
            spec = self.site.charger(tx.charger_id)
            if spec.station_max_kw is None or tx.charger_id in self._station_sent:
                continue
            self._station_sent.add(tx.charger_id)
            purpose = "ChargePointMaxProfile" if tx.version is OcppVersion.V16 else "ChargingStationMaxProfile"
            limit, limit_kw = _limit(spec, spec.station_max_kw)
            start = self._clock.now().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            payload = _payload(tx.version, spec, purpose, 0, STATION_PROFILE_ID, limit, None, start)
            out.append(
                ProfileCommand(
                    charger_id=tx.charger_id,
                    connector_id=0,
                    tx_id=None,
                    purpose=purpose,
                    limit_kw=limit_kw,
                    unit=spec.unit,
                    limit=limit,
                    payload=payload,
                    version=tx.version,
                )
            )
        return out

    def _profile_id(self, charger_id: str, connector_id: int) -> int:
        key = (charger_id, connector_id)
        if key not in self._profile_ids:
            self._profile_ids[key] = STATION_PROFILE_ID + 1 + sum(1 for c, _ in self._profile_ids if c == charger_id)
        return self._profile_ids[key]


def _limit(spec: ChargerSpec, kw: float) -> tuple[float, float]:
    """The payload limit in the charger's unit, rounded down, and the output kW it stands for."""
    watts = max(0.0, kw) * 1000.0
    if spec.unit == "W":
        limit = float(math.floor(watts + 1e-6))
        return limit, limit / 1000.0
    per_amp = spec.phases * spec.voltage_v
    amps = math.floor(watts / per_amp * 10 + 1e-6) / 10
    return amps, amps * per_amp / 1000.0


def _payload(
    version: OcppVersion,
    spec: ChargerSpec,
    purpose: str,
    connector_id: int,
    profile_id: int,
    limit: float,
    tx_id: str | None,
    start: str | None,
) -> dict[str, Any]:
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
    if spec.unit == "A":
        period["numberPhases"] = spec.phases
    # A transaction's profile runs from its start (Relative); a station cap from now (Absolute).
    kind = "Relative" if start is None else "Absolute"
    if version is OcppVersion.V16:
        schedule: dict[str, Any] = {"chargingRateUnit": spec.unit, "chargingSchedulePeriod": [period]}
        if start is not None:
            schedule["startSchedule"] = start
        profile: dict[str, Any] = {
            "chargingProfileId": profile_id,
            "stackLevel": TX_STACK_LEVEL if tx_id is not None else MAX_STACK_LEVEL,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind,
            "chargingSchedule": schedule,
        }
        if tx_id is not None:
            # 1.6 transaction ids are the integers we handed out in StartTransaction.
            profile["transactionId"] = int(tx_id)
        return {"connectorId": connector_id, "csChargingProfiles": profile}
    schedule201: dict[str, Any] = {"id": profile_id, "chargingRateUnit": spec.unit, "chargingSchedulePeriod": [period]}
    if start is not None:
        schedule201["startSchedule"] = start
    profile201: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": TX_STACK_LEVEL if tx_id is not None else MAX_STACK_LEVEL,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule201],
    }
    if tx_id is not None:
        profile201["transactionId"] = tx_id
    return {"evseId": connector_id, "chargingProfile": profile201}


__all__ = [
    "AllocationEntry",
    "ChargerSpec",
    "ProfileCommand",
    "SiteConfigError",
    "SiteModel",
    "SmartCharging",
    "site_from_mapping",
]
